// Private (pipeline): the activation bytes a Flux request takes on each of
// its networks (pipeline/common/activation_estimate.h has the model).
// Torch-free.
//
// Threading: pure functions.
#pragma once

#include <functional>
#include <string_view>

#include "pipeline/common/activation_estimate.h"
#include "pipeline/flux/flux_spec.h"

namespace tp::flux {

struct FluxWorkspace {
  uint64_t text_encoder = 0, text_encoder_2 = 0, transformer = 0, vae = 0;
};

// `target(component)`: where that network's activations live ("text_encoder", "transformer", "vae", ...).
FluxWorkspace estimate_workspace(const FluxSpec& spec, const nn::RequestShape& request,
                                 const std::function<nn::ActivationTarget(std::string_view)>& target);

}  // namespace tp::flux
