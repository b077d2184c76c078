// Private (pipeline, torch): the Flux runner (flux_pipeline.cpp), made from a
// FluxSpec; runners.cpp registers it.
#pragma once

#include <memory>

#include "pipeline/runner.h"

namespace tp::flux {

// Errors: kFailedPrecondition for a spec that is not Flux's; kNotFound when a
// network the spec needs has no registry model.
// RunOverrides::initial_latents are the noise as drawn, (B, C, h, w) before
// packing; final_latents receives the packed latents, as diffusers'
// output_type="latent" gives them.
Expected<std::unique_ptr<PipelineRunner>> make_runner(ModelRegistry& registry, const PipelineConfig& pipeline);

}  // namespace tp::flux
