// Private (pipeline, torch): the SDXL runner (sdxl_pipeline.cpp), made from an
// SdxlSpec; runners.cpp registers it.
#pragma once

#include <memory>

#include "pipeline/runner.h"

namespace tp::sdxl {

// Errors: kFailedPrecondition for a spec that is not SDXL's; kNotFound when a
// network the spec needs has no registry model.
// RunOverrides::initial_latents are the noise as drawn, (B, C, h, w), before
// the scheduler's init_noise_sigma scales it; final_latents receives the
// denoised latents, as diffusers' output_type="latent" gives them.
Expected<std::unique_ptr<PipelineRunner>> make_runner(ModelRegistry& registry, const PipelineConfig& pipeline);

}  // namespace tp::sdxl
