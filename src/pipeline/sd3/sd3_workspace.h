// Private (pipeline): the activation bytes an SD3 / 3.5 request takes on
// each of its networks (pipeline/common/activation_estimate.h has the model).
// Torch-free.
//
// Threading: pure functions.
#pragma once

#include <functional>
#include <string_view>

#include "pipeline/common/activation_estimate.h"
#include "pipeline/sd3/sd3_spec.h"

namespace tp::sd3 {

struct Sd3Workspace {
  uint64_t text_encoder = 0, text_encoder_2 = 0, text_encoder_3 = 0;  // text_encoder_3: 0 without T5
  uint64_t transformer = 0, vae = 0;
};

// `target(component)`: where that network's activations live ("text_encoder", "transformer", "vae", ...).
Sd3Workspace estimate_workspace(const Sd3Spec& spec, const nn::RequestShape& request,
                                const std::function<nn::ActivationTarget(std::string_view)>& target);

}  // namespace tp::sd3
