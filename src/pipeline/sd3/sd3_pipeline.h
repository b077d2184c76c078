// Private (pipeline, torch): the SD3 / 3.5 runner (sd3_pipeline.cpp), made
// from an Sd3Spec; runners.cpp registers it.
#pragma once

#include <memory>

#include "pipeline/runner.h"

namespace tp::sd3 {

// Errors: kFailedPrecondition for a spec that is not SD3's; kNotFound when a
// network the spec needs has no registry model.
Expected<std::unique_ptr<PipelineRunner>> make_runner(ModelRegistry& registry, const PipelineConfig& pipeline);

}  // namespace tp::sd3
