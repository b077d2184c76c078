// Private (pipeline): the torch-free description of one configured pipeline.
//
// expand_pipeline_components() reads a pipeline's diffusers folder once and
// keeps what the pipeline needs from it in a PipelineSpec: each network's
// parsed config, the tokenizers, the scheduler and the sampling defaults,
// checked to fit together. The spec travels in RegistryConfig (as
// PipelineConfig::spec), and Pipeline::create builds from it without reading
// the folder again. Each family derives its own spec (sd3/sd3_spec.h).
//
// Threading: a spec is immutable once made; share it freely.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <string_view>

#include "twistedpic/dtype.h"
#include "twistedpic/expected.h"

namespace tp {
inline namespace v0 {

// The settings a model is meant to be sampled with, from the optional
// generation_defaults.json beside its model_index.json:
//   {"num_inference_steps": 20, "guidance_scale": 2.5}
// (diffusers' argument names; each key optional, others ignored). Without the
// file or a key: the family's defaults (SD3: diffusers' 28 and 7).
struct GenerationDefaults {
  int steps = 28;
  double guidance_scale = 7.0;
  // T5 tokens, diffusers' pipeline default: 256 (SD3, FLUX.1 [schnell]-style), 512 (FLUX.1 [dev]-style).
  int max_sequence_length = 256;
};

// Reads generation_defaults.json's parsed object over `defaults`; a wrong
// type or a value out of range (steps 1..1000, a finite guidance) is
// kInvalidArgument naming `origin`.
Expected<GenerationDefaults> parse_generation_defaults(const nlohmann::json& j, std::string_view origin,
                                                       GenerationDefaults defaults = {});

// Reads `root`/generation_defaults.json when there is one, else `defaults`.
Expected<GenerationDefaults> read_generation_defaults(const std::filesystem::path& root,
                                                      GenerationDefaults defaults = {});

struct PipelineSpec {
  virtual ~PipelineSpec() = default;
  std::string family;           // the pipeline_type: "sd3"
  std::filesystem::path root;   // the folder it was read from, for messages
  GenerationDefaults defaults;

  // The dtype `component`'s weights are loaded in, given the configured one
  // (expand_pipeline_components asks for each network). Default: unchanged.
  virtual DType network_dtype(std::string_view component, DType configured) const {
    (void)component;
    return configured;
  }
};

}  // namespace v0
}  // namespace tp
