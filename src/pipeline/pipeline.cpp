// tp::Pipeline: finds the configured pipeline's family and forwards to the
// runner it makes from the pipeline's spec.
#include "twistedpic/pipeline.h"

#include <algorithm>

#include "pipeline/common/generation.h"
#include "pipeline/family.h"
#include "pipeline/runner.h"

namespace tp {
inline namespace v0 {

struct Pipeline::Impl {
  std::string name, type;
  std::unique_ptr<PipelineRunner> runner;
  std::span<const std::string_view> options;  // the request options its family reads
  ModelRegistry* registry = nullptr;           // outlives the pipeline (pipeline.h)

  // Generates. When an allocation fails (out of memory), frees what it can
  // and tries once more: the allocator's cached blocks, then every unleased
  // model on the device, moved to the pinned host tier (the cheapest place
  // to reload from), smallest first. Progress restarts with the second try.
  // After each generation the cached blocks go back to the driver as the
  // policy decides (ModelRegistry::release_caches).
  Expected<GenerateResult> generate(const GenerateRequest& request, const RunOverrides& overrides) const {
    Expected<GenerateResult> result = runner->generate(request, overrides);
    if (!result && nn::is_out_of_memory(result.error())) result = once_more(request, overrides, result.error());
    registry->release_caches();
    return result;
  }

  Expected<GenerateResult> once_more(const GenerateRequest& request, const RunOverrides& overrides,
                                     const Error& first) const {
    const uint64_t cached = registry->release_caches(/*force=*/true);
    std::vector<ModelInfo> models = registry->list();
    std::sort(models.begin(), models.end(),
              [](const ModelInfo& a, const ModelInfo& b) { return a.device_bytes < b.device_bytes; });
    uint64_t moved_bytes = 0;
    int moved = 0;
    for (const ModelInfo& m : models) {
      if (m.tier != Tier::kDevice || m.leases > 0) continue;
      if (auto r = registry->unload(m.name, Tier::kHost)) {  // a lease taken since list() keeps it: skip
        moved_bytes += m.device_bytes;
        ++moved;
      }
    }
    const std::string freed = "handed back " + std::to_string(cached) + " cached bytes and moved " +
                              std::to_string(moved) + " unleased model(s) (" + std::to_string(moved_bytes) +
                              " bytes) off the device";
    Expected<GenerateResult> again = runner->generate(request, overrides);
    if (again) {
      again->warnings.push_back("ran out of memory at first (" + first.message + "); " + freed +
                                " and generated on the second try");
      return again;
    }
    if (!nn::is_out_of_memory(again.error())) return again;
    const RegistryStats st = registry->stats();
    return resource_exhausted(again.error().message + "; out of memory again after it " + freed +
                              ": the device has " + std::to_string(st.device_free_bytes) + " of " +
                              std::to_string(st.device_total_bytes) + " bytes free, models hold " +
                              std::to_string(st.device_bytes) + ", other processes " +
                              std::to_string(st.other_process_bytes));
  }

  // Errors: kUnimplemented for an option this pipeline's type does not read.
  Status check_options(const GenerateRequest& request) const {
    for (const auto& [key, value] : request.options) {
      if (std::find(options.begin(), options.end(), key) != options.end()) continue;
      std::string known;
      for (std::string_view k : options) known += (known.empty() ? "" : ", ") + std::string(k);
      return unimplemented("generate: option '" + key + "' is not supported by " + type + " pipelines" +
                           (known.empty() ? std::string(" (they take none)") : " (supported: " + known + ")"));
    }
    return {};
  }
};

Pipeline::Pipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pipeline::~Pipeline() = default;

const std::string& Pipeline::name() const { return impl_->name; }
const std::string& Pipeline::pipeline_type() const { return impl_->type; }
int Pipeline::default_width() const { return impl_->runner->default_width(); }
int Pipeline::default_height() const { return impl_->runner->default_height(); }
int Pipeline::size_multiple() const { return impl_->runner->size_multiple(); }

Expected<GenerateResult> Pipeline::generate(const GenerateRequest& request) {
  TP_TRY(impl_->check_options(request));
  return impl_->generate(request, {});
}

Expected<GenerateResult> generate_with_overrides(Pipeline& pipeline, const GenerateRequest& request,
                                                 const RunOverrides& overrides) {
  TP_TRY(pipeline.impl_->check_options(request));
  return pipeline.impl_->generate(request, overrides);
}

Expected<std::unique_ptr<Pipeline>> Pipeline::create(ModelRegistry& registry, std::string_view model) {
  const RegistryConfig& config = registry.config();
  const PipelineConfig* p = config.find_pipeline(model);
  const std::string where = "pipeline '" + std::string(model) + "'";
  if (!p) {
    if (const ModelConfig* m = config.find(model)) {
      if (const size_t colon = m->pipeline_type.find(':'); colon != std::string::npos)
        return invalid_argument(where + ": it is the '" + m->pipeline_type.substr(colon + 1) + "' network of a " +
                                m->pipeline_type.substr(0, colon) + " pipeline, not a pipeline");
      if (find_family(m->pipeline_type))
        return failed_precondition(where + ": its networks are not registry models; create the registry from "
                                   "expand_pipeline_components(config)");
      return unimplemented(where + ": pipeline type '" + m->pipeline_type + "' is not supported (supported: " +
                           family_names() + ")");
    }
    return not_found(where + ": no such model in the registry");
  }
  const RunnerFactory make_runner = find_runner(p->pipeline_type);
  if (!make_runner || !p->spec)
    return failed_precondition(where + ": it was not described by expand_pipeline_components; create the "
                               "registry from its result");
  TP_ASSIGN_OR_RETURN(std::unique_ptr<PipelineRunner> runner, make_runner(registry, *p));
  const PipelineFamily* family = find_family(p->pipeline_type);
  return std::unique_ptr<Pipeline>(new Pipeline(std::make_unique<Impl>(
      Impl{p->name, p->pipeline_type, std::move(runner),
           family ? family->request_options : std::span<const std::string_view>(), &registry})));
}

}  // namespace v0
}  // namespace tp
