// expand_pipeline_components: a configured SD3 pipeline becomes one registry
// model per network. Torch-free (part of twistedpic_core).
#include <map>

#include "weights/diffusers_folder.h"
#include "weights/hf_cache.h"
#include "twistedpic/pipeline.h"

namespace tp {
inline namespace v0 {
namespace {

struct NetworkSpec {
  const char* component;
  const char* class_name;
  bool required;
};

// SD3's networks, in load order, with the classes we implement.
constexpr NetworkSpec kSd3Networks[] = {
    {"text_encoder", "CLIPTextModelWithProjection", true},
    {"text_encoder_2", "CLIPTextModelWithProjection", true},
    {"text_encoder_3", "T5EncoderModel", false},
    {"transformer", "SD3Transformer2DModel", true},
    {"vae", "AutoencoderKL", true},
};

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

}  // namespace

Expected<RegistryConfig> expand_pipeline_components(RegistryConfig config, const ExpandOptions& options) {
  std::vector<ModelConfig> models;
  std::map<std::string, std::string> shared;  // sharing key -> model name
  for (ModelConfig& m : config.models) {
    if (m.pipeline_type != "sd3") {
      models.push_back(std::move(m));
      continue;
    }
    const std::string where = "model '" + m.name + "'";
    TP_ASSIGN_OR_RETURN(std::filesystem::path root, resolve_model_source(m.source));
    auto folder = read_diffusers_folder(root);
    if (!folder) return make_error(folder.error().code, where + ": " + folder.error().message);
    if (folder->class_name != "StableDiffusion3Pipeline")
      return unimplemented(where + ": " + root.string() + " holds a '" + folder->class_name +
                           "', not a StableDiffusion3Pipeline");
    PipelineConfig p{m.name, m.pipeline_type, root, {}};
    for (const NetworkSpec& spec : kSd3Networks) {
      const DiffusersComponent* c = folder->find(spec.component);
      if (!c || !c->has_weights()) {
        if (!spec.required) continue;
        return not_found(where + ": the pipeline in " + root.string() + " has no '" + spec.component +
                         "' (its weights are missing)");
      }
      if (c->class_name != spec.class_name)
        return unimplemented(where + ": component '" + spec.component + "' is a '" + c->class_name +
                             "'; twistedpic runs a '" + spec.class_name + "' there");
      const std::string key = sharing_key(*c, m);
      auto [it, fresh] = shared.emplace(key, m.name + "/" + spec.component);
      if (fresh) {
        ModelConfig unit = m;
        unit.name = it->second;
        unit.source = c->folder.string();
        unit.pipeline_type = std::string("sd3:") + spec.component;
        unit.size_bytes = 0;
        unit.workspace_bytes = std::string_view(spec.component) == "transformer" ? m.workspace_bytes : 0;
        if (std::string_view(spec.component).starts_with("text_encoder") && options.text_encoders_unload_after)
          unit.policy.unload_after = options.text_encoders_unload_after;
        models.push_back(std::move(unit));
      }
      p.components.emplace_back(spec.component, it->second);
    }
    config.pipelines.push_back(std::move(p));
  }
  config.models = std::move(models);
  TP_TRY(validate_registry_config(config));
  return config;
}

}  // namespace v0
}  // namespace tp
