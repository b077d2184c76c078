// Private (pipeline, torch): FLUX.1 transformers saved in the original Black
// Forest Labs key layout (flux1-dev.safetensors, flux1-schnell.safetensors,
// as ComfyUI and stable-diffusion.cpp read them), mapped to diffusers' names.
//
// A diffusers folder whose transformer/ holds such a file (beside the
// diffusers config.json) runs as it is: FluxTransformer::bind maps the names.
// The fused projections (double blocks' qkv, single blocks' qkv + MLP) become
// row slices, views of the same arena; final_layer's modulation, stored
// (shift, scale), is copied once as (scale, shift).
//
// Threading: pure functions.
#pragma once

#include "pipeline/common/layers.h"
#include "pipeline/flux/flux_spec.h"
#include "twistedpic/expected.h"

namespace tp::flux {

// Whether `weights` are in the Black Forest Labs layout (optionally under
// "model.diffusion_model.", as in ComfyUI's full checkpoints).
bool is_bfl_layout(const nn::TensorMap& weights);

// Errors: kInvalidArgument naming (a few of) the keys of `weights` when they
// are in neither diffusers' layout nor the Black Forest Labs one.
Status check_known_layout(const nn::TensorMap& weights);

// The same tensors under diffusers' names.
// Errors: kInvalidArgument naming the keys that are not recognised (a few,
// and how many), or a fused tensor whose rows do not split by the config.
Expected<nn::TensorMap> from_bfl_layout(const nn::TensorMap& weights, const TransformerConfig& config);

}  // namespace tp::flux
