// expand_pipeline_components: each configured pipeline's folder is read once,
// described by its family (pipeline/family.h), and its networks become
// registry models.
#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/family.h"
#include "twistedpic/pipeline.h"
#include "weights/hf_cache.h"
#include "weights/safetensors.h"
#include "weights/weights_digest.h"

namespace tp {
inline namespace v0 {
namespace {

// Two networks are one model when their weights are the same bytes, read
// into the same dtype on the same device: the same files, or files with the
// same content (copies in other folders, two Hugging Face cache repos). The
// content is compared only between networks whose safetensors headers and
// sizes agree, and each file's content digest is cached
// (weights/weights_digest.h), so a network is read whole at most once per
// version of its files, and only when it may have a twin.
class SharedNetworks {
 public:
  // The model an earlier network with the same weights became, or nullptr.
  const std::string* find(const DiffusersComponent& c, const ModelConfig& m) {
    Candidate x{prefix(m), paths(c), {}, {}, c.weight_files, {}};
    for (const Candidate& e : entries_)
      if (e.prefix == x.prefix && e.paths == x.paths) return &e.model;
    for (Candidate& e : entries_) {
      if (e.prefix != x.prefix || !header(e) || !header(x) || *e.header != *x.header) continue;
      if (content(e) && content(x) && *e.content == *x.content) return &e.model;
    }
    pending_ = std::move(x);
    return nullptr;
  }

  // Records the network that find() last missed as `model`.
  void add(std::string model) {
    pending_.model = std::move(model);
    entries_.push_back(std::move(pending_));
  }

 private:
  struct Candidate {
    std::string prefix, paths;
    std::optional<std::string> header, content;  // computed when needed; "" when unreadable
    std::vector<std::filesystem::path> files;
    std::string model;
  };

  static std::string prefix(const ModelConfig& m) { return std::string(dtype_config_name(m.dtype)) + "|" + m.device; }

  static std::string paths(const DiffusersComponent& c) {
    std::string key;
    for (const auto& f : c.weight_files) {
      std::error_code ec;
      auto canonical = std::filesystem::weakly_canonical(f, ec);
      key += "|" + (ec ? f : canonical).string();
    }
    return key;
  }

  // A digest, or nullptr when the files cannot be read (the load will say why;
  // such a network is shared by path only).
  static const std::string* header(Candidate& c) {
    if (!c.header) c.header = detail::weights_header_digest(c.files).value_or("");
    return c.header->empty() ? nullptr : &*c.header;
  }
  static const std::string* content(Candidate& c) {
    if (!c.content) c.content = detail::weights_content_digest(c.files).value_or("");
    return c.content->empty() ? nullptr : &*c.content;
  }

  std::vector<Candidate> entries_;
  Candidate pending_;
};

bool has_network(const PipelineFamily& family, const std::string& component) {
  return std::any_of(family.networks.begin(), family.networks.end(),
                     [&](const NetworkSpec& n) { return component == n.component; });
}

// "a sd3 pipeline has no network 'x' (its networks: transformer, vae, ...)"
std::string no_network(const PipelineFamily& family, const std::string& component) {
  std::string names;
  for (const NetworkSpec& n : family.networks) names += (names.empty() ? "" : ", ") + std::string(n.component);
  return "a " + std::string(family.pipeline_type) + " pipeline has no network '" + component + "' (its networks: " +
         names + ")";
}

// ModelConfig::component_files: a network's weights from one file (Flux's
// flux1-dev.safetensors) instead of its folder, whose config.json still describes it.
Status use_component_files(DiffusersFolder& folder, const PipelineFamily& family, const ModelConfig& m,
                           const std::string& where) {
  for (const auto& entry : m.component_files) {
    const std::string& component = entry.first;  // not a structured binding: clang 14 cannot capture one
    const std::string& file = entry.second;
    const std::string field = where + ": components." + component;
    if (!has_network(family, component)) return invalid_argument(field + ": " + no_network(family, component));
    auto c = std::find_if(folder.components.begin(), folder.components.end(),
                          [&](const DiffusersComponent& x) { return x.name == component; });
    if (c == folder.components.end() || c->config_file.empty())
      return not_found(field + ": " + folder.root.string() + " has no '" + component + "' config.json to describe " +
                       file);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) return not_found(field + ": " + file + " is not a file");
    c->weight_files = {std::filesystem::path(file)};
    c->weights_index.clear();
  }
  return {};
}

// ModelConfig::checkpoint: each network's part of the single file (none without one).
using CheckpointParts = std::map<std::string, std::shared_ptr<const TensorSelection>>;
Expected<CheckpointParts> checkpoint_parts(const PipelineFamily& family, const PipelineSpec& spec, const ModelConfig& m,
                                           const std::string& where) {
  if (m.checkpoint.empty()) return CheckpointParts{};
  if (!family.checkpoint)
    return unimplemented(where + ": checkpoint: the '" + std::string(family.pipeline_type) +
                         "' family reads no single-file checkpoint (" + m.checkpoint + ")");
  if (!m.component_files.empty())
    return invalid_argument(where + ": give either \"checkpoint\" or \"components\", not both");
  auto header = read_safetensors_header(m.checkpoint);
  if (!header) return make_error(header.error().code, where + ": checkpoint: " + header.error().message);
  auto parts = family.checkpoint(spec, *header, m.checkpoint);
  if (!parts) return make_error(parts.error().code, where + ": " + parts.error().message);
  return std::move(*parts);
}

bool runs_class(const PipelineFamily& family, std::string_view class_name) {
  for (std::string_view c : family.folder_classes)
    if (c == class_name) return true;
  return false;
}

}  // namespace

Expected<RegistryConfig> expand_pipeline_components(RegistryConfig config, const ExpandOptions& options) {
  std::vector<ModelConfig> models;
  SharedNetworks shared;
  for (ModelConfig& m : config.models) {
    // pipeline_type "auto": the family that runs the folder's model_index.json class.
    const bool detect = m.pipeline_type == kDetectPipelineType;
    const PipelineFamily* family = detect ? nullptr : find_family(m.pipeline_type);
    if (!family && !detect) {
      models.push_back(std::move(m));
      continue;
    }
    const std::string where = "model '" + m.name + "'";
    auto resolved = resolve_model_source(m.source);
    if (!resolved) return make_error(resolved.error().code, where + ": " + resolved.error().message);
    const std::filesystem::path root = *resolved;
    // With a single-file checkpoint the folder gives configs, tokenizers and scheduler; its weights may be absent.
    auto folder = read_diffusers_folder(root, /*require_weights=*/m.checkpoint.empty());
    if (!folder) return make_error(folder.error().code, where + ": " + folder.error().message);
    if (detect) {
      family = find_family_for_class(folder->class_name);
      if (!family)
        return unimplemented(where + ": " + root.string() + " holds a '" + folder->class_name +
                             "'; twistedpic runs " + folder_class_names());
      m.pipeline_type = std::string(family->pipeline_type);
    }
    if (!runs_class(*family, folder->class_name))
      return unimplemented(where + ": " + root.string() + " holds a '" + folder->class_name + "', not a " +
                           std::string(family->folder_classes.front()));
    TP_TRY(use_component_files(*folder, *family, m, where));
    for (const auto& entry : m.component_devices)
      if (!has_network(*family, entry.first))
        return invalid_argument(where + ": component_devices." + entry.first + ": " + no_network(*family, entry.first));
    PipelineConfig p{m.name, m.pipeline_type, root, {}, nullptr};
    TP_ASSIGN_OR_RETURN(p.spec, family->describe(*folder, where));
    TP_ASSIGN_OR_RETURN(const CheckpointParts parts, checkpoint_parts(*family, *p.spec, m, where));
    for (const NetworkSpec& spec : family->networks) {
      const DiffusersComponent* c = folder->find(spec.component);
      const auto part = parts.find(spec.component);
      if (part != parts.end()) {
        if (!c || c->config_file.empty())
          return not_found(where + ": " + root.string() + " has no '" + spec.component + "' config.json to describe " +
                           part->second->what + " in " + m.checkpoint);
      } else if (!c || !c->has_weights()) {
        if (!spec.required) continue;
        return not_found(where + ": the pipeline in " + root.string() + " has no '" + spec.component +
                         "' (its weights are missing)");
      }
      if (c->class_name != spec.class_name)
        return unimplemented(where + ": component '" + spec.component + "' is a '" + c->class_name +
                             "'; twistedpic runs a '" + spec.class_name + "' there");
      ModelConfig net = m;
      net.dtype = p.spec->network_dtype(spec.component, m.dtype);
      if (auto d = m.component_devices.find(spec.component); d != m.component_devices.end()) net.device = d->second;
      net.component_devices.clear();
      // A part of a checkpoint is its own model: the file's digest would take the four parts for twins.
      const std::string* twin = part == parts.end() ? shared.find(*c, net) : nullptr;
      const std::string unit_name = twin ? *twin : m.name + "/" + spec.component;
      if (!twin) {
        if (part == parts.end()) shared.add(unit_name);
        ModelConfig unit = net;
        unit.name = unit_name;
        unit.source = m.component_files.count(spec.component) ? c->weight_files.front().string() : c->folder.string();
        unit.component_files.clear();
        unit.checkpoint.clear();
        if (part != parts.end()) {
          unit.source = m.checkpoint;
          unit.tensor_selection = part->second;
        }
        unit.pipeline_type = m.pipeline_type + ":" + spec.component;
        unit.size_bytes = 0;
        unit.workspace_bytes = spec.denoiser ? m.workspace_bytes : 0;
        if (spec.text_encoder && options.text_encoders_unload_after)
          unit.policy.unload_after = options.text_encoders_unload_after;
        models.push_back(std::move(unit));
      }
      p.components.emplace_back(spec.component, unit_name);
    }
    config.pipelines.push_back(std::move(p));
  }
  config.models = std::move(models);
  TP_TRY(validate_registry_config(config));
  return config;
}

}  // namespace v0
}  // namespace tp
