// Internal (torch): the tensors of a TensorWeights as at::Tensor views of its
// device arena, made without copies (a WeightTensor::transposed one, as a
// checkpoint stores it, is a transposed, non-contiguous view). Views must not outlive the lease that
// keeps the weights resident, and the kernels queued on them must be noted
// (note_use) before it ends.
#pragma once

#include <ATen/Tensor.h>

#include <string>
#include <unordered_map>

#include "weights/tensor_weights.h"

namespace tp::torch_bridge {

at::ScalarType scalar_type(DType t);

// The torch device of `weights`' arena: kCPU on a host-memory device, else its name ("cuda:0").
at::Device device_of(const TensorWeights& weights);

// REQUIRES: weights.on_device().
Expected<std::unordered_map<std::string, at::Tensor>> tensor_views(const TensorWeights& weights);

// The work queued so far on torch's current stream (of the weights' CUDA
// device) is the last that reads `weights`: TensorWeights::note_use with that
// stream, so that freeing the arena waits for it. Call it when done with the
// views, before the lease ends. A no-op off the device; never throws.
void note_use(const TensorWeights& weights) noexcept;

}  // namespace tp::torch_bridge
