// expand_pipeline_components: each configured pipeline's folder is read once,
// described by its family (pipeline/family.h), and its networks become
// registry models.
#include <filesystem>
#include <map>

#include "pipeline/family.h"
#include "twistedpic/pipeline.h"
#include "weights/hf_cache.h"

namespace tp {
inline namespace v0 {
namespace {

// Two networks are one model when they read the same files into the same dtype on the same device.
std::string sharing_key(const DiffusersComponent& c, const ModelConfig& m) {
  std::string key = std::string(dtype_config_name(m.dtype)) + "|" + m.device;
  for (const auto& f : c.weight_files) {
    std::error_code ec;
    auto canonical = std::filesystem::weakly_canonical(f, ec);
    key += "|" + (ec ? f : canonical).string();
  }
  return key;
}

bool runs_class(const PipelineFamily& family, std::string_view class_name) {
  for (std::string_view c : family.folder_classes)
    if (c == class_name) return true;
  return false;
}

}  // namespace

Expected<RegistryConfig> expand_pipeline_components(RegistryConfig config, const ExpandOptions& options) {
  std::vector<ModelConfig> models;
  std::map<std::string, std::string> shared;  // sharing key -> model name
  for (ModelConfig& m : config.models) {
    const PipelineFamily* family = find_family(m.pipeline_type);
    if (!family) {
      models.push_back(std::move(m));
      continue;
    }
    const std::string where = "model '" + m.name + "'";
    auto resolved = resolve_model_source(m.source);
    if (!resolved) return make_error(resolved.error().code, where + ": " + resolved.error().message);
    const std::filesystem::path root = *resolved;
    auto folder = read_diffusers_folder(root);
    if (!folder) return make_error(folder.error().code, where + ": " + folder.error().message);
    if (!runs_class(*family, folder->class_name))
      return unimplemented(where + ": " + root.string() + " holds a '" + folder->class_name + "', not a " +
                           std::string(family->folder_classes.front()));
    PipelineConfig p{m.name, m.pipeline_type, root, {}, nullptr};
    for (const NetworkSpec& spec : family->networks) {
      const DiffusersComponent* c = folder->find(spec.component);
      if (!c || !c->has_weights()) {
        if (!spec.required) continue;
        return not_found(where + ": the pipeline in " + root.string() + " has no '" + spec.component +
                         "' (its weights are missing)");
      }
      if (c->class_name != spec.class_name)
        return unimplemented(where + ": component '" + spec.component + "' is a '" + c->class_name +
                             "'; twistedpic runs a '" + spec.class_name + "' there");
      auto [it, fresh] = shared.emplace(sharing_key(*c, m), m.name + "/" + spec.component);
      if (fresh) {
        ModelConfig unit = m;
        unit.name = it->second;
        unit.source = c->folder.string();
        unit.pipeline_type = m.pipeline_type + ":" + spec.component;
        unit.size_bytes = 0;
        unit.workspace_bytes = spec.denoiser ? m.workspace_bytes : 0;
        if (spec.text_encoder && options.text_encoders_unload_after)
          unit.policy.unload_after = options.text_encoders_unload_after;
        models.push_back(std::move(unit));
      }
      p.components.emplace_back(spec.component, it->second);
    }
    TP_ASSIGN_OR_RETURN(p.spec, family->describe(*folder, where));
    config.pipelines.push_back(std::move(p));
  }
  config.models = std::move(models);
  TP_TRY(validate_registry_config(config));
  return config;
}

}  // namespace v0
}  // namespace tp
