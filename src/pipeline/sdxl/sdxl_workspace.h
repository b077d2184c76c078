// Private (pipeline): the activation bytes an SDXL request takes on each of
// its networks (pipeline/common/activation_estimate.h has the model).
// Torch-free.
//
// Threading: pure functions.
#pragma once

#include <functional>
#include <string_view>

#include "pipeline/common/activation_estimate.h"
#include "pipeline/sdxl/sdxl_spec.h"

namespace tp::sdxl {

struct SdxlWorkspace {
  uint64_t text_encoder = 0, text_encoder_2 = 0, unet = 0, vae = 0;
};

// `target(component)`: where that network's activations live ("text_encoder", "unet", "vae", ...).
// request.cfg: guidance on; request.encode_negatives: the negatives are encoded
// (not the zeros of force_zeros_for_empty_prompt).
SdxlWorkspace estimate_workspace(const SdxlSpec& spec, const nn::RequestShape& request,
                                 const std::function<nn::ActivationTarget(std::string_view)>& target);

}  // namespace tp::sdxl
