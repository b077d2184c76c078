// Private (pipeline, torch): the interface each family's implementation of
// Pipeline offers (tp::Pipeline forwards to it), with the overrides the parity
// tests use.
//
// Threading: generate() may be called from several threads at once.
#pragma once

#include <ATen/Tensor.h>

#include <functional>
#include <string>

#include "twistedpic/pipeline.h"

namespace tp {
inline namespace v0 {

struct RunOverrides {
  at::Tensor initial_latents;           // instead of the seeded noise, when defined
  at::Tensor* final_latents = nullptr;  // receives the denoised latents
  // Called as each network's lease begins (after admission), with the model
  // and the workspace the pipeline asked for (the activation-estimate test's hook).
  std::function<void(const std::string& model, uint64_t workspace_bytes)> on_lease = {};
};

class PipelineRunner {
 public:
  virtual ~PipelineRunner() = default;
  virtual Expected<GenerateResult> generate(const GenerateRequest& request, const RunOverrides& overrides) = 0;
  virtual int default_width() const = 0;
  virtual int default_height() const = 0;
  virtual int size_multiple() const = 0;
};

// Makes the runnable pipeline of `pipeline` from the spec its family described.
using RunnerFactory = Expected<std::unique_ptr<PipelineRunner>> (*)(ModelRegistry& registry,
                                                                    const PipelineConfig& pipeline);
// The runner factory of `pipeline_type` (runners.cpp), or nullptr.
RunnerFactory find_runner(std::string_view pipeline_type);

// Pipeline::generate with overrides, for the parity tests.
Expected<GenerateResult> generate_with_overrides(Pipeline& pipeline, const GenerateRequest& request,
                                                 const RunOverrides& overrides);

}  // namespace v0
}  // namespace tp
