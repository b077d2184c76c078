// Registry configuration: JSON parsing (nlohmann-json), presets and validation.
#include "twistedpic/config.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "util/bytes.h"
#include "util/file.h"
#include "util/json.h"

namespace tp {
inline namespace v0 {
namespace {

using json = nlohmann::json;

// A config is a few KiB; refuse to read anything absurd.
constexpr uint64_t kMaxConfigFileBytes = 16ull << 20;

// Reads fields of one JSON object and reports errors as "<origin>: <path>: <problem>".
class Reader {
 public:
  Reader(std::string_view origin, std::string path, const json& obj) : origin_(origin), path_(std::move(path)), obj_(obj) {}

  tl::unexpected<Error> error(std::string_view field, std::string_view problem) const {
    return invalid_argument(std::string(origin_) + ": " + join(field) + ": " + std::string(problem));
  }
  std::string join(std::string_view field) const {
    if (path_.empty()) return std::string(field);
    if (field.empty()) return path_;
    return path_ + "." + std::string(field);
  }

  // Fields present in the object but not in `known`.
  Status reject_unknown(std::initializer_list<std::string_view> known) const {
    for (auto it = obj_.begin(); it != obj_.end(); ++it) {
      bool ok = false;
      for (auto k : known) ok = ok || it.key() == k;
      if (!ok) return error(it.key(), "unknown field");
    }
    return ok_status();
  }

  const json* get(std::string_view field) const {
    auto it = obj_.find(std::string(field));
    return it == obj_.end() ? nullptr : &*it;
  }

  Status read_string(std::string_view field, std::string& out) const {
    const json* v = get(field);
    if (!v) return ok_status();
    if (!v->is_string()) return error(field, "expected a string, got " + std::string(v->type_name()));
    out = v->get<std::string>();
    return ok_status();
  }

  Status read_bool(std::string_view field, bool& out) const {
    const json* v = get(field);
    if (!v) return ok_status();
    if (!v->is_boolean()) return error(field, "expected true or false, got " + std::string(v->type_name()));
    out = v->get<bool>();
    return ok_status();
  }

  Status read_int(std::string_view field, int& out) const {
    const json* v = get(field);
    if (!v) return ok_status();
    if (!v->is_number_integer()) return error(field, "expected an integer, got " + v->dump());
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int>::max()))
      return error(field, "integer " + v->dump() + " is out of range");
    auto x = v->get<int64_t>();
    if (x < std::numeric_limits<int>::min() || x > std::numeric_limits<int>::max())
      return error(field, "integer " + v->dump() + " is out of range");
    out = static_cast<int>(x);
    return ok_status();
  }

  Status read_number(std::string_view field, double& out) const {
    const json* v = get(field);
    if (!v) return ok_status();
    if (!v->is_number()) return error(field, "expected a number, got " + v->dump());
    out = v->get<double>();
    if (!std::isfinite(out)) return error(field, "expected a finite number");
    return ok_status();
  }

  Status read_bytes(std::string_view field, uint64_t& out) const {
    const json* v = get(field);
    if (!v) return ok_status();
    if (v->is_number_unsigned()) {
      out = v->get<uint64_t>();
      return ok_status();
    }
    if (v->is_string()) {
      auto parsed = parse_byte_size(v->get<std::string>());
      if (!parsed) return error(field, parsed.error().message);
      out = *parsed;
      return ok_status();
    }
    return error(field, "expected a byte size (a non-negative integer or a string like \"4GiB\"), got " + v->dump());
  }

  Status read_millis(std::string_view field, std::chrono::milliseconds& out) const {
    const json* v = get(field);
    if (!v) return ok_status();
    if (!v->is_number_integer() || v->get<int64_t>() < 0)
      return error(field, "expected a non-negative integer of milliseconds, got " + v->dump());
    out = std::chrono::milliseconds(v->get<int64_t>());
    return ok_status();
  }

  // "host" | "disk" | "keep"/false (stay on the device).
  Status read_unload_tier(std::string_view field, std::optional<Tier>& out, bool allow_keep) const {
    const json* v = get(field);
    if (!v || v->is_null()) return ok_status();
    if (allow_keep && v->is_boolean()) {
      out = v->get<bool>() ? Tier::kHost : Tier::kDevice;
      return ok_status();
    }
    if (v->is_string()) {
      std::string s = v->get<std::string>();
      if (s == "host") out = Tier::kHost;
      else if (s == "disk") out = Tier::kDisk;
      else if (allow_keep && (s == "keep" || s == "never")) out = Tier::kDevice;
      if (out) return ok_status();
    }
    return error(field, std::string("expected ") + (allow_keep ? "\"host\", \"disk\", \"keep\" or a boolean" : "\"host\" or \"disk\"") +
                            ", got " + v->dump());
  }

  Expected<Reader> object(std::string_view field) const {
    const json* v = get(field);
    static const json kEmpty = json::object();
    if (!v) return Reader(origin_, join(field), kEmpty);
    if (!v->is_object()) return error(field, "expected an object, got " + std::string(v->type_name()));
    return Reader(origin_, join(field), *v);
  }

  const json& raw() const { return obj_; }
  std::string_view origin() const { return origin_; }

 private:
  std::string_view origin_;
  std::string path_;
  const json& obj_;
};

Status read_policy(const Reader& r, PolicyConfig& p) {
  TP_TRY(r.reject_unknown({"eager", "unload_after", "idle_timeout_s", "idle_unload_to", "lru", "pressure", "clean_caches"}));
  TP_TRY(r.read_bool("eager", p.eager));
  std::optional<Tier> unload_after, idle_to;
  TP_TRY(r.read_unload_tier("unload_after", unload_after, true));
  if (unload_after) p.unload_after = *unload_after;
  TP_TRY(r.read_number("idle_timeout_s", p.idle_timeout_s));
  TP_TRY(r.read_unload_tier("idle_unload_to", idle_to, false));
  if (idle_to) p.idle_unload_to = *idle_to;
  TP_TRY(r.read_bool("clean_caches", p.clean_caches));
  TP_ASSIGN_OR_RETURN(Reader lru, r.object("lru"));
  TP_TRY(lru.reject_unknown({"max_models", "max_bytes"}));
  int max_models = static_cast<int>(p.lru_max_models);
  TP_TRY(lru.read_int("max_models", max_models));
  if (max_models < 0) return lru.error("max_models", "must be >= 0 (0: no limit)");
  p.lru_max_models = static_cast<size_t>(max_models);
  TP_TRY(lru.read_bytes("max_bytes", p.lru_max_bytes));
  TP_ASSIGN_OR_RETURN(Reader pressure, r.object("pressure"));
  TP_TRY(pressure.reject_unknown({"min_free_bytes", "min_free_fraction"}));
  TP_TRY(pressure.read_bytes("min_free_bytes", p.min_free_bytes));
  TP_TRY(pressure.read_number("min_free_fraction", p.min_free_fraction));
  if (!(p.min_free_fraction >= 0 && p.min_free_fraction < 1))
    return pressure.error("min_free_fraction", "must be in [0, 1), a fraction of the device's memory");
  return ok_status();
}

Status read_model(const Reader& r, const std::string& name, ModelConfig& m) {
  TP_TRY(r.reject_unknown({"model_id", "path", "source", "pipeline_type", "components", "checkpoint", "dtype", "device",
                           "component_devices", "priority", "pinned", "eager", "workspace_bytes", "size_bytes", "policy"}));
  m.name = name;
  int sources = 0;
  for (const char* key : {"model_id", "path", "source"}) {
    if (r.get(key)) {
      ++sources;
      TP_TRY(r.read_string(key, m.source));
    }
  }
  if (sources == 0) return r.error("", "missing \"model_id\" (a Hugging Face id) or \"path\" (a diffusers folder)");
  if (sources > 1) return r.error("", "give only one of \"model_id\", \"path\" and \"source\"");
  if (m.source.empty()) return r.error(r.get("model_id") ? "model_id" : r.get("path") ? "path" : "source", "must not be empty");
  m.pipeline_type = kDetectPipelineType;  // absent: model_index.json's class decides (expand_pipeline_components)
  TP_TRY(r.read_string("pipeline_type", m.pipeline_type));
  if (const json* components = r.get("components")) {
    if (!components->is_object()) return r.error("components", "must be an object: component -> weights file");
    for (auto it = components->begin(); it != components->end(); ++it) {
      if (!it->is_string() || it->get<std::string>().empty())
        return r.error("components." + it.key(), "must be the path of a weights file");
      m.component_files[it.key()] = it->get<std::string>();
    }
  }
  if (r.get("checkpoint")) {
    TP_TRY(r.read_string("checkpoint", m.checkpoint));
    if (m.checkpoint.empty()) return r.error("checkpoint", "must be the path of a single-file checkpoint");
  }
  std::string dtype;
  TP_TRY(r.read_string("dtype", dtype));
  if (!dtype.empty()) {
    auto t = dtype_from_config_name(dtype);
    if (!t || (*t != DType::kF32 && *t != DType::kF16 && *t != DType::kBF16))
      return r.error("dtype", "unknown dtype '" + dtype + "' (expected fp32, fp16 or bf16)");
    m.dtype = *t;
  }
  TP_TRY(r.read_string("device", m.device));
  if (const json* devices = r.get("component_devices")) {
    if (!devices->is_object()) return r.error("component_devices", "must be an object: component -> device name");
    for (auto it = devices->begin(); it != devices->end(); ++it) {
      if (!it->is_string() || it->get<std::string>().empty())
        return r.error("component_devices." + it.key(), "must be a device name such as 'cuda:1' or 'auto'");
      m.component_devices[it.key()] = it->get<std::string>();
    }
  }
  TP_TRY(r.read_int("priority", m.priority));
  TP_TRY(r.read_bool("pinned", m.pinned));
  if (r.get("eager")) {
    bool eager = false;
    TP_TRY(r.read_bool("eager", eager));
    m.eager = eager;
  }
  TP_TRY(r.read_bytes("workspace_bytes", m.workspace_bytes));
  TP_TRY(r.read_bytes("size_bytes", m.size_bytes));
  TP_ASSIGN_OR_RETURN(Reader pol, r.object("policy"));
  TP_TRY(pol.reject_unknown({"unload_after", "idle_timeout_s", "idle_unload_to"}));
  TP_TRY(pol.read_unload_tier("unload_after", m.policy.unload_after, true));
  if (pol.get("idle_timeout_s")) {
    double t = 0;
    TP_TRY(pol.read_number("idle_timeout_s", t));
    m.policy.idle_timeout_s = t;
  }
  TP_TRY(pol.read_unload_tier("idle_unload_to", m.policy.idle_unload_to, false));
  return ok_status();
}

}  // namespace

namespace {
Expected<RegistryConfig> parse_document(const nlohmann::json& doc, std::string_view origin);
}  // namespace

const ModelConfig* RegistryConfig::find(std::string_view name) const {
  for (const auto& m : models)
    if (m.name == name) return &m;
  return nullptr;
}

Expected<PolicyConfig> policy_preset(std::string_view name) {
  PolicyConfig p;
  if (name == "max_gpu_availability") {
    p.unload_after = Tier::kHost;
    p.clean_caches = true;
    p.min_free_fraction = kAvailabilityHeadroom;
  } else if (name == "balanced") {
    p.unload_after = Tier::kDevice;
    p.clean_caches = true;
  } else if (name == "max_speed") {
    p.unload_after = Tier::kDevice;
    p.clean_caches = false;
  } else {
    return invalid_argument("unknown preset '" + std::string(name) +
                            "' (expected max_gpu_availability, balanced or max_speed)");
  }
  return p;
}

Expected<uint64_t> parse_byte_size(std::string_view text) { return detail::parse_byte_size(text); }

Expected<RegistryConfig> parse_registry_config(std::string_view json_text, std::string_view origin) {
  // Strict: a key twice in one object (two models of one name, a field given
  // twice) is an error naming the key; nlohmann alone would keep the last.
  TP_ASSIGN_OR_RETURN(json doc, detail::parse_json(json_text, origin));
  try {
    return parse_document(doc, origin);
  } catch (const json::exception& e) {  // the readers check types first; this is a last line
    return invalid_argument(std::string(origin) + ": " + e.what());
  }
}

namespace {

Expected<RegistryConfig> parse_document(const json& doc, std::string_view origin) {
  if (!doc.is_object()) return invalid_argument(std::string(origin) + ": the config must be a JSON object");
  Reader root(origin, "", doc);
  // "server": `twistedpic serve`'s settings, read by the server layer
  // (src/server/server_config.cpp); the registry only checks it is an object.
  TP_TRY(root.reject_unknown({"preset", "models", "policy", "host_budget_bytes", "device_budget_bytes", "devices",
                              "admission_timeout_ms", "monitor_interval_ms", "version", "server"}));
  TP_TRY(root.object("server"));
  RegistryConfig config;
  TP_TRY(root.read_string("preset", config.preset));
  if (!config.preset.empty()) {
    auto preset = policy_preset(config.preset);
    if (!preset) return root.error("preset", preset.error().message);
    config.policy = *preset;
  }
  TP_ASSIGN_OR_RETURN(Reader policy, root.object("policy"));
  TP_TRY(read_policy(policy, config.policy));
  if (root.get("host_budget_bytes")) {
    uint64_t b = 0;
    TP_TRY(root.read_bytes("host_budget_bytes", b));
    config.host_budget_bytes = b;
  }
  TP_TRY(root.read_bytes("device_budget_bytes", config.device_budget_bytes));
  TP_ASSIGN_OR_RETURN(Reader devices, root.object("devices"));
  for (auto it = devices.raw().begin(); it != devices.raw().end(); ++it) {
    TP_ASSIGN_OR_RETURN(Reader d, devices.object(it.key()));
    TP_TRY(d.reject_unknown({"budget_bytes"}));
    DeviceConfig dc;
    if (d.get("budget_bytes")) {
      uint64_t b = 0;
      TP_TRY(d.read_bytes("budget_bytes", b));
      dc.budget_bytes = b;
    }
    config.devices.emplace(it.key(), dc);
  }
  TP_TRY(root.read_millis("admission_timeout_ms", config.admission_timeout));
  TP_TRY(root.read_millis("monitor_interval_ms", config.monitor_interval));

  const json* models = root.get("models");
  if (!models) return root.error("models", "missing: declare at least one model");
  if (!models->is_object())
    return root.error("models", "expected an object mapping names to models, got " + std::string(models->type_name()));
  for (auto it = models->begin(); it != models->end(); ++it) {
    if (!it->is_object()) return root.error("models." + it.key(), "expected an object, got " + std::string(it->type_name()));
    ModelConfig m;
    TP_TRY(read_model(Reader(origin, "models." + it.key(), *it), it.key(), m));
    config.models.push_back(std::move(m));
  }
  if (auto st = validate_registry_config(config); !st)
    return invalid_argument(std::string(origin) + ": " + st.error().message);
  return config;
}

}  // namespace

Expected<RegistryConfig> load_registry_config(const std::filesystem::path& file) {
  // ReadOnlyFile refuses a directory, a FIFO or a device (kInvalidArgument,
  // "<file>: is a directory, not a regular file") without blocking; a missing
  // file is kNotFound.
  TP_ASSIGN_OR_RETURN(std::string text, detail::read_text_file(file, kMaxConfigFileBytes));
  return parse_registry_config(text, file.string());
}

namespace {
// A device name: letters, digits and ':._-' ("cuda:1", "cpu", "simulated:0");
// `or_default`: "" (the registry's first device) too.
bool valid_device_name(std::string_view name, bool or_default) {
  if (name.empty()) return or_default;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == ':' || c == '.' || c == '_' || c == '-';
  });
}
}  // namespace

Status validate_registry_config(const RegistryConfig& config) {
  // Durations are added to steady-clock time points: keep them far from overflow.
  constexpr double kMaxSeconds = 10.0 * 365 * 24 * 3600;
  const auto too_long = [&](double seconds) { return seconds > kMaxSeconds; };
  const std::string limit = " must be at most " + std::to_string(static_cast<int64_t>(kMaxSeconds)) + " s (10 years)";
  if (config.models.empty()) return invalid_argument("models: declare at least one model");
  std::set<std::string, std::less<>> names;
  for (const auto& m : config.models) {
    std::string where = "models." + m.name;
    if (m.name.empty()) return invalid_argument("models: a model has an empty name");
    // Names travel as C strings (tp.h), in messages and in network names.
    if (std::any_of(m.name.begin(), m.name.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }))
      return invalid_argument("models: model name " + detail::quote(m.name) + " contains a control character");
    if (!names.insert(m.name).second) return invalid_argument(where + ": duplicate model name");
    if (m.source.empty()) return invalid_argument(where + ": empty source");
    if (m.pipeline_type.empty()) return invalid_argument(where + ".pipeline_type: must not be empty");
    if (!valid_device_name(m.device, true))
      return invalid_argument(where + ".device: model '" + m.name + "': 'device' is " + detail::quote(m.device) +
                              "; expected a device name such as 'cuda:1' or 'cpu', 'auto', or nothing for the "
                              "registry's first device");
    for (const auto& [component, device] : m.component_devices)
      if (device.empty() || !valid_device_name(device, false))
        return invalid_argument(where + ".component_devices." + component + ": " + detail::quote(device) +
                                " is not a device name (such as 'cuda:1' or 'auto')");
    if (m.policy.idle_unload_to == Tier::kDevice) return invalid_argument(where + ".policy.idle_unload_to: must be host or disk");
    if (m.policy.idle_timeout_s && too_long(*m.policy.idle_timeout_s))
      return invalid_argument(where + ".policy.idle_timeout_s:" + limit);
  }
  for (const auto& [name, d] : config.devices)
    if (name.empty() || name == kAutoModelDevice || !valid_device_name(name, false))
      return invalid_argument("devices." + name + ": " + detail::quote(name) + " is not a device name (such as 'cuda:1')");
  if (too_long(config.policy.idle_timeout_s)) return invalid_argument("policy.idle_timeout_s:" + limit);
  if (config.admission_timeout.count() < 0 || too_long(config.admission_timeout.count() / 1000.0))
    return invalid_argument("admission_timeout_ms: must be between 0 and 10 years");
  if (too_long(config.monitor_interval.count() / 1000.0)) return invalid_argument("monitor_interval_ms:" + limit);
  if (config.policy.idle_unload_to == Tier::kDevice) return invalid_argument("policy.idle_unload_to: must be host or disk");
  if (!(config.policy.min_free_fraction >= 0 && config.policy.min_free_fraction < 1))
    return invalid_argument("policy.pressure.min_free_fraction: must be in [0, 1)");
  if (config.monitor_interval.count() <= 0) return invalid_argument("monitor_interval_ms: must be positive");
  return ok_status();
}

}  // namespace v0
}  // namespace tp
