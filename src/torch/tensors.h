// Internal (torch): the tensors of a TensorWeights as at::Tensor views of its
// device arena, made without copies. Views must not outlive the lease that
// keeps the weights resident.
#pragma once

#include <ATen/Tensor.h>

#include <string>
#include <unordered_map>

#include "weights/tensor_weights.h"

namespace tp::torch_bridge {

at::ScalarType scalar_type(DType t);

// REQUIRES: weights.on_device().
Expected<std::unordered_map<std::string, at::Tensor>> tensor_views(const TensorWeights& weights);

}  // namespace tp::torch_bridge
