// tp::Pipeline: finds the configured pipeline's family and forwards to the
// runner it makes from the pipeline's spec.
#include "twistedpic/pipeline.h"

#include <algorithm>

#include "pipeline/family.h"
#include "pipeline/runner.h"

namespace tp {
inline namespace v0 {

struct Pipeline::Impl {
  std::string name, type;
  std::unique_ptr<PipelineRunner> runner;
  std::span<const std::string_view> options;  // the request options its family reads
  ModelRegistry* registry = nullptr;           // outlives the pipeline (pipeline.h)

  // After each generation the allocator's cached blocks go back to the driver
  // as the policy decides (ModelRegistry::release_caches).
  Expected<GenerateResult> after_generation(Expected<GenerateResult> result) const {
    registry->release_caches();
    return result;
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
  return impl_->after_generation(impl_->runner->generate(request, {}));
}

Expected<GenerateResult> generate_with_overrides(Pipeline& pipeline, const GenerateRequest& request,
                                                 const RunOverrides& overrides) {
  TP_TRY(pipeline.impl_->check_options(request));
  return pipeline.impl_->after_generation(pipeline.impl_->runner->generate(request, overrides));
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
