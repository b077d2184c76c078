// Private (pipeline, torch): what every family's runner keeps and does the
// same way (sd3/, flux/, sdxl/ *_pipeline.cpp): the registry, the pipeline's
// name, its spec and binding key; sizes from the spec; generate() running
// the family's run() with torch's exceptions turned into errors; and the
// registry models make_runner() gives each network.
//
// Threading: as PipelineRunner (runner.h).
#pragma once

#include <initializer_list>
#include <memory>
#include <string>

#include "pipeline/common/generation.h"
#include "pipeline/runner.h"

namespace tp::nn {

// `Spec` has default_side(), size_multiple(), defaults and root.
template <class Spec>
class FamilyRunner : public PipelineRunner {
 public:
  int default_width() const override { return spec_->default_side(); }
  int default_height() const override { return spec_->default_side(); }
  int size_multiple() const override { return spec_->size_multiple(); }

  Expected<GenerateResult> generate(const GenerateRequest& request, const RunOverrides& overrides) final {
    GenerateResult result;
    return guard_torch(name_, [&] { return run(request, overrides, result); });
  }

 protected:
  FamilyRunner(ModelRegistry& registry, std::string name, std::shared_ptr<const Spec> spec)
      : registry_(registry), name_(std::move(name)), spec_(std::move(spec)), key_(spec_->root.string()) {}

  // The family's text-to-image, filling `result`.
  virtual Expected<GenerateResult> run(const GenerateRequest& request, const RunOverrides& overrides,
                                       GenerateResult& result) = 0;
  Settings settings(const GenerateRequest& r) const {
    return settings_of(r, default_width(), default_height(), spec_->defaults);
  }

  ModelRegistry& registry_;
  const std::string name_;
  const std::shared_ptr<const Spec> spec_;
  const std::string key_;  // tells this folder's bindings apart
};

// One network of make_runner(): the registry model that runs `component`.
struct NetworkSlot {
  const char* component;
  std::string* model;
  bool required = true;
};

// Fills each slot from the pipeline's components.
// Errors: kNotFound when a required network has no registry model.
inline Status assign_networks(const PipelineConfig& p, std::initializer_list<NetworkSlot> slots) {
  for (const NetworkSlot& s : slots) {
    if (const std::string* m = p.model_for(s.component)) *s.model = *m;
    if (s.required && s.model->empty())
      return not_found("pipeline '" + p.name + "': its '" + s.component + "' network is missing from the registry config");
  }
  return {};
}

// The pipeline's spec as `Spec`. Errors: kFailedPrecondition naming the family when it is another's.
template <class Spec>
Expected<std::shared_ptr<const Spec>> spec_of(const PipelineConfig& p, const char* family) {
  auto spec = std::dynamic_pointer_cast<const Spec>(p.spec);
  if (!spec) return failed_precondition("pipeline '" + p.name + "': its description is not " + family + " one");
  return spec;
}

}  // namespace tp::nn
