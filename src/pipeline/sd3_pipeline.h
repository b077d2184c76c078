// Internal (torch): the pieces of Pipeline that tests reach into.
#pragma once

#include <ATen/Tensor.h>

#include "pipeline/sd3_model.h"
#include "twistedpic/pipeline.h"
#include "weights/tensor_weights.h"

namespace tp::sd3 {

// The component tensors of a lease's weights, as views.
// Errors: kFailedPrecondition when the weights are not TensorWeights on the device.
Expected<TensorMap> lease_tensors(const ModelLease& lease);

struct RunOverrides {
  at::Tensor initial_latents;         // instead of the seeded noise, when defined
  at::Tensor* final_latents = nullptr;  // receives the denoised latents
};

// Pipeline::generate with overrides, for parity tests.
Expected<GenerateResult> generate(Pipeline& pipeline, const GenerateRequest& request, const RunOverrides& overrides);

}  // namespace tp::sd3
