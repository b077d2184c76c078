// C shims: registry options, registry, model list, stats, events and leases.
// Validate -> call C++ -> map Error. No business logic.
#include <chrono>
#include <cstring>
#include <cstddef>
#include <optional>
#include <tuple>

#include "tp_internal.h"
#include "weights/default_options.h"
#include "twistedpic/pipeline.h"
#include "twistedpic/registry.h"
#include "twistedpic/testing/simulated_backend.h"
#include "twistedpic/testing/simulated_device.h"

tp::capi::OptionsFactory tp::capi::default_options = [] {
  return tp::Expected<tp::RegistryOptions>(tp::registry_options_on(tp::default_cpu_device()));
};

tp::capi::RuntimeDevicesFactory tp::capi::runtime_devices = [] {
  std::shared_ptr<tp::Device> cpu = tp::default_cpu_device();
  tp::DeviceStats d;
  d.name = cpu->name();
  if (auto mem = cpu->monitor().query()) {
    d.total_bytes = mem->total_bytes;
    d.free_bytes = mem->free_bytes;
  }
  return std::vector<tp::DeviceStats>{std::move(d)};
};

using tp::capi::copy_prefix;
using tp::capi::fail;
using tp::capi::kDead;
using tp::capi::kLeaseMagic;
using tp::capi::kOptionsMagic;
using tp::capi::kRegistryMagic;

namespace {

// A tp_memory_policy_vtable as a tp::MemoryPolicy; calls destroy once, on destruction.
class VtablePolicy final : public tp::MemoryPolicy {
 public:
  VtablePolicy(const tp_memory_policy_vtable& vt, void* user_data) : vt_(vt), user_data_(user_data) {}
  ~VtablePolicy() override {
    if (vt_.destroy) vt_.destroy(user_data_);
  }
  std::string_view name() const override { return "host"; }

  // The host's indices, a ranking cheapest first, become evictions in that
  // order; the registry keeps the legal ones until `need` is covered
  // (take_ranked, registry/admission.h).
  std::vector<tp::Eviction> select_victims(const tp::RegistryView& view, uint64_t need, tp::Reason reason) override {
    const bool sized = vt_.rank_victims != nullptr;
    if ((!sized && !vt_.select_victims) || view.models.empty()) return {};
    // Elements are the library's tp_policy_model for rank_victims (which is
    // told their size) and v0.1's prefix of it for select_victims.
    const size_t stride = sized ? sizeof(tp_policy_model) : tp::capi::kPolicyModelV01Size;
    std::vector<std::byte> array(view.models.size() * stride);
    std::vector<std::string> names(view.models.size());
    for (size_t i = 0; i < view.models.size(); ++i) {
      const tp::ModelView& m = view.models[i];
      names[i] = std::string(m.name);
      const tp_policy_model row{names[i].c_str(), static_cast<int32_t>(m.state), static_cast<int32_t>(m.tier),
                                m.device_bytes, m.host_bytes, m.leases, m.config->pinned ? 1 : 0,
                                m.config->priority, m.evictable() ? 1 : 0,
                                m.load_count == 0 ? -1.0
                                                  : std::chrono::duration<double>(view.now - m.last_use).count()};
      std::memcpy(array.data() + i * stride, &row, std::min(stride, sizeof row));
    }
    const auto* models = reinterpret_cast<const tp_policy_model*>(array.data());
    const auto count = static_cast<uint32_t>(view.models.size());
    std::vector<uint32_t> picked(count);
    uint32_t n = sized ? vt_.rank_victims(picked.data(), count, models, count, static_cast<uint32_t>(stride), need,
                                          user_data_)
                       : vt_.select_victims(picked.data(), count, models, count, need, user_data_);
    std::vector<tp::Eviction> out;
    for (uint32_t i = 0; i < n && i < count; ++i)
      if (picked[i] < count) out.push_back({names[picked[i]], tp::Tier::kHost, reason});
    return out;
  }

  void on_access(const tp::ModelView& m) override {
    if (vt_.on_access) vt_.on_access(std::string(m.name).c_str(), user_data_);
  }

 private:
  tp_memory_policy_vtable vt_;
  void* user_data_;
};

}  // namespace

struct tp_registry_options {
  uint32_t magic = kOptionsMagic;
  std::string preset;
  uint64_t simulated_bytes = 0;
  std::vector<std::pair<std::string, uint64_t>> simulated_devices;  // named, in the order added
  bool background_thread = true;
  std::vector<std::shared_ptr<tp::MemoryPolicy>> policies;  // host policies, first consulted first
  std::optional<tp::Tier> text_encoders_unload_after;       // unset: the models' policy
};

struct tp_model {
  uint32_t magic = kLeaseMagic;
  tp::ModelLease lease;
};

struct tp_plan {
  tp::LoadPlan plan;
};

struct tp_model_list {
  std::vector<tp::ModelInfo> rows;
  std::vector<std::string> dtypes;
  tp::TimePoint now;
};

struct tp_device_list {
  std::vector<tp::DeviceStats> devices;
};


namespace {


tp_code create_registry(tp_registry** out, tp::Expected<tp::RegistryConfig> config, tp_registry_options* opts,
                        tp_error** out_err) {
  if (!config) return fail(out_err, config.error());
  // Pipelines become one registry model per network, as in C++; on a
  // simulated device (byte counts, no tensors) models stay as configured.
  const bool simulated = opts && (opts->simulated_bytes > 0 || !opts->simulated_devices.empty());
  if (!simulated) {
    tp::ExpandOptions expand;
    if (opts) expand.text_encoders_unload_after = opts->text_encoders_unload_after;
    config = tp::expand_pipeline_components(std::move(*config), expand);
    if (!config) return fail(out_err, config.error());
  }
  if (opts && !opts->preset.empty()) {
    auto preset = tp::policy_preset(opts->preset);
    if (!preset) return fail(out_err, preset.error());
    config->policy = *preset;
  }
  tp::RegistryOptions options;
  if (opts && opts->simulated_bytes > 0) {
    auto device = std::make_shared<tp::SimulatedDevice>(opts->simulated_bytes);
    options.backend = std::make_shared<tp::SimulatedBackend>(device);
    options.monitor = device;
  } else if (simulated) {
    for (const auto& [name, bytes] : opts->simulated_devices) {
      auto device = std::make_shared<tp::SimulatedDevice>(bytes);
      options.devices.push_back({name, std::make_shared<tp::SimulatedBackend>(device), device, {}});
    }
  } else {
    auto defaults = tp::capi::default_options();
    if (!defaults) return fail(out_err, defaults.error());
    options = std::move(*defaults);
  }
  if (opts) {
    options.background_thread = opts->background_thread;
    options.policies = opts->policies;
  }
  auto registry = tp::ModelRegistry::create(std::move(*config), std::move(options));
  if (!registry) return fail(out_err, registry.error());
  if (opts) opts->policies.clear();  // now owned by the registry
  auto handle = std::make_unique<tp_registry>();
  handle->registry = std::move(*registry);
  *out = handle.release();
  return TP_OK;
}

tp::Tier to_tier(int32_t tier) { return static_cast<tp::Tier>(tier); }

// Reasons this library knows (tp::Reason's values, 0..kReasonCount-1); may
// exceed TP_REASON_SLOTS, which is frozen at v0.1's 7.
constexpr int32_t kReasonCount = static_cast<int32_t>(std::tuple_size_v<decltype(tp::RegistryStats::evictions_by_reason)>);
static_assert(kReasonCount >= TP_REASON_SLOTS, "tp_stats.evictions has v0.1's 7 slots");

// Every TP_* constant equals its tp:: enumerator.
#define TP_SAME(c, e) static_assert((c) == static_cast<int32_t>(e), #c " != " #e)
TP_SAME(TP_TIER_DEVICE, tp::Tier::kDevice);
TP_SAME(TP_TIER_HOST, tp::Tier::kHost);
TP_SAME(TP_TIER_DISK, tp::Tier::kDisk);
TP_SAME(TP_STATE_UNLOADED, tp::ModelState::kUnloaded);
TP_SAME(TP_STATE_LOADING, tp::ModelState::kLoading);
TP_SAME(TP_STATE_RESIDENT, tp::ModelState::kResident);
TP_SAME(TP_STATE_OFFLOADED, tp::ModelState::kOffloaded);
TP_SAME(TP_STATE_UNLOADING, tp::ModelState::kUnloading);
TP_SAME(TP_STATE_FAILED, tp::ModelState::kFailed);
TP_SAME(TP_REASON_LAZY, tp::Reason::kLazy);
TP_SAME(TP_REASON_EAGER, tp::Reason::kEager);
TP_SAME(TP_REASON_TTL, tp::Reason::kTtl);
TP_SAME(TP_REASON_LRU, tp::Reason::kLru);
TP_SAME(TP_REASON_PRESSURE, tp::Reason::kPressure);
TP_SAME(TP_REASON_EXPLICIT, tp::Reason::kExplicit);
TP_SAME(TP_REASON_UNLOAD_AFTER, tp::Reason::kUnloadAfter);
#undef TP_SAME

}  // namespace

extern "C" {

const char* tp_tier_name(int32_t tier) {
  return tier >= 0 && tier <= 2 ? tp::tier_name(static_cast<tp::Tier>(tier)).data() : "?";
}
const char* tp_state_name(int32_t state) {
  return state >= 0 && state <= 5 ? tp::state_name(static_cast<tp::ModelState>(state)).data() : "?";
}
const char* tp_reason_name(int32_t reason) {
  return reason >= 0 && reason < kReasonCount ? tp::reason_name(static_cast<tp::Reason>(reason)).data() : "?";
}

tp_code tp_registry_options_create(tp_registry_options** out, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out, out_err);
  *out = new tp_registry_options();
  return TP_OK;
  TP_CAPI_END(out_err)
}

void tp_registry_options_destroy(tp_registry_options* opts) {
  if (!opts || opts->magic != kOptionsMagic) return;
  opts->magic = kDead;
  delete opts;  // unused policies call their destroy here
}

tp_code tp_registry_options_set_preset(tp_registry_options* opts, const char* preset, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_HANDLE(opts, kOptionsMagic, "tp_registry_options", out_err);
  TP_CAPI_REQUIRE(preset, out_err);
  auto p = tp::policy_preset(preset);
  if (!p) return fail(out_err, p.error());
  opts->preset = preset;
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_registry_options_use_simulated_device(tp_registry_options* opts, uint64_t total_bytes, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_HANDLE(opts, kOptionsMagic, "tp_registry_options", out_err);
  if (total_bytes == 0) return fail(out_err, TP_INVALID_ARGUMENT, "total_bytes must be positive");
  if (!opts->simulated_devices.empty())
    return fail(out_err, TP_FAILED_PRECONDITION,
                "these options already have " + std::to_string(opts->simulated_devices.size()) +
                    " named simulated device(s) (tp_registry_options_add_simulated_device): use one or those, not both");
  opts->simulated_bytes = total_bytes;
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_registry_options_add_simulated_device(tp_registry_options* opts, const char* name, uint64_t total_bytes,
                                                 tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_HANDLE(opts, kOptionsMagic, "tp_registry_options", out_err);
  TP_CAPI_REQUIRE(name, out_err);
  if (opts->simulated_bytes > 0)
    return fail(out_err, TP_FAILED_PRECONDITION,
                "these options already use one simulated device (tp_registry_options_use_simulated_device): "
                "add named devices or use one, not both");
  if (*name == '\0') return fail(out_err, TP_INVALID_ARGUMENT, "name must not be empty");
  if (total_bytes == 0) return fail(out_err, TP_INVALID_ARGUMENT, "total_bytes must be positive");
  for (const auto& added : opts->simulated_devices)
    if (added.first == name)
      return fail(out_err, TP_INVALID_ARGUMENT, "a simulated device named '" + added.first + "' was already added");
  opts->simulated_devices.emplace_back(name, total_bytes);
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_registry_options_set_background_thread(tp_registry_options* opts, int32_t enabled, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_HANDLE(opts, kOptionsMagic, "tp_registry_options", out_err);
  if (enabled != 0 && enabled != 1) return fail(out_err, TP_INVALID_ARGUMENT, "enabled must be 0 or 1");
  opts->background_thread = enabled == 1;
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_registry_options_set_text_encoder_offload(tp_registry_options* opts, int32_t tier, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_HANDLE(opts, kOptionsMagic, "tp_registry_options", out_err);
  if (tier == -1) {
    opts->text_encoders_unload_after.reset();
  } else if (tier == TP_TIER_HOST || tier == TP_TIER_DISK) {
    opts->text_encoders_unload_after = static_cast<tp::Tier>(tier);
  } else {
    return fail(out_err, TP_INVALID_ARGUMENT,
                "tier " + std::to_string(tier) + " is not TP_TIER_HOST, TP_TIER_DISK or -1 (the models' policy)");
  }
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_registry_options_add_policy(tp_registry_options* opts, const tp_memory_policy_vtable* vtable,
                                       void* user_data, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_HANDLE(opts, kOptionsMagic, "tp_registry_options", out_err);
  TP_CAPI_REQUIRE(vtable, out_err);
  TP_CHECK_STRUCT_SIZE(vtable, tp_memory_policy_vtable, out_err);
  // Only the caller's prefix is read: a v0.1 vtable has no rank_victims.
  const tp_memory_policy_vtable vt = tp::capi::read_prefix(vtable);
  // Nothing may throw once the policy exists: on failure the caller keeps user_data.
  opts->policies.reserve(opts->policies.size() + 1);
  auto policy = std::make_shared<VtablePolicy>(vt, user_data);
  opts->policies.insert(opts->policies.begin(), std::move(policy));
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_registry_create_from_file(tp_registry** out, const char* config_path, tp_registry_options* opts,
                                     tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out, out_err);
  TP_CAPI_REQUIRE(config_path, out_err);
  if (opts) TP_CHECK_HANDLE(opts, kOptionsMagic, "tp_registry_options", out_err);
  return create_registry(out, tp::load_registry_config(config_path), opts, out_err);
  TP_CAPI_END(out_err)
}

tp_code tp_registry_create_from_string(tp_registry** out, const char* config_json, tp_registry_options* opts,
                                       tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out, out_err);
  TP_CAPI_REQUIRE(config_json, out_err);
  if (opts) TP_CHECK_HANDLE(opts, kOptionsMagic, "tp_registry_options", out_err);
  return create_registry(out, tp::parse_registry_config(config_json), opts, out_err);
  TP_CAPI_END(out_err)
}

void tp_registry_destroy(tp_registry* reg) {
  if (!reg || reg->magic != kRegistryMagic) return;
  reg->magic = kDead;
  delete reg;  // live leases keep the models until released
}

tp_code tp_registry_model_count(uint32_t* out, const tp_registry* reg, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out, out_err);
  TP_CHECK_HANDLE(reg, kRegistryMagic, "tp_registry", out_err);
  *out = static_cast<uint32_t>(reg->registry->config().models.size());
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_registry_list(tp_model_list** out, const tp_registry* reg, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out, out_err);
  TP_CHECK_HANDLE(reg, kRegistryMagic, "tp_registry", out_err);
  auto list = std::make_unique<tp_model_list>();
  list->rows = reg->registry->list();
  list->now = std::chrono::steady_clock::now();
  for (const auto& r : list->rows) list->dtypes.emplace_back(tp::dtype_config_name(r.dtype));
  *out = list.release();
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_registry_info(tp_model_list** out, const tp_registry* reg, const char* model, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out, out_err);
  TP_CHECK_HANDLE(reg, kRegistryMagic, "tp_registry", out_err);
  TP_CAPI_REQUIRE(model, out_err);
  auto info = reg->registry->info(model);
  if (!info) return fail(out_err, info.error());
  auto list = std::make_unique<tp_model_list>();
  list->rows.push_back(std::move(*info));
  list->now = std::chrono::steady_clock::now();
  list->dtypes.emplace_back(tp::dtype_config_name(list->rows[0].dtype));
  *out = list.release();
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_registry_plan(tp_plan** out, const tp_registry* reg, const char* model, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out, out_err);
  TP_CHECK_HANDLE(reg, kRegistryMagic, "tp_registry", out_err);
  TP_CAPI_REQUIRE(model, out_err);
  auto plan = reg->registry->plan(model);
  if (!plan) return fail(out_err, plan.error());
  *out = new tp_plan{std::move(*plan)};
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_plan_get_info(tp_plan_info* out, const tp_plan* plan, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out, out_err);
  TP_CAPI_REQUIRE(plan, out_err);
  TP_CHECK_STRUCT_SIZE(out, tp_plan_info, out_err);
  const tp::LoadPlan& p = plan->plan;
  tp_plan_info info{};
  info.struct_size = sizeof(tp_plan_info);
  info.fits = p.fits ? 1 : 0;
  info.resident = p.resident ? 1 : 0;
  info.from = static_cast<int32_t>(p.from);
  info.bytes_to_move = p.bytes_to_move;
  info.needed_bytes = p.needed_bytes;
  info.free_bytes = p.free_bytes;
  info.bytes_evicted = p.bytes_evicted;
  info.eviction_count = static_cast<uint32_t>(p.evictions.size());
  info.explanation = p.explanation.c_str();
  copy_prefix(out, info);
  return TP_OK;
  TP_CAPI_END(out_err)
}

const char* tp_plan_eviction(const tp_plan* plan, uint32_t index) {
  return plan && index < plan->plan.evictions.size() ? plan->plan.evictions[index].model.c_str() : "";
}

void tp_plan_free(tp_plan* plan) { delete plan; }

uint32_t tp_model_list_count(const tp_model_list* list) { return list ? static_cast<uint32_t>(list->rows.size()) : 0; }

tp_code tp_model_list_get(tp_model_info* out, const tp_model_list* list, uint32_t index, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out, out_err);
  TP_CAPI_REQUIRE(list, out_err);
  TP_CHECK_STRUCT_SIZE(out, tp_model_info, out_err);
  if (index >= list->rows.size())
    return fail(out_err, TP_INVALID_ARGUMENT,
                "index " + std::to_string(index) + " is out of range (" + std::to_string(list->rows.size()) + " models)");
  const tp::ModelInfo& r = list->rows[index];
  auto seconds = [](tp::Duration d) { return std::chrono::duration<double>(d).count(); };
  tp_model_info info{};
  info.struct_size = sizeof(tp_model_info);
  info.name = r.name.c_str();
  info.source = r.source.c_str();
  info.pipeline_type = r.pipeline_type.c_str();
  info.dtype = list->dtypes[index].c_str();
  info.state = static_cast<int32_t>(r.state);
  info.tier = static_cast<int32_t>(r.tier);
  info.device_bytes = r.device_bytes;
  info.host_bytes = r.host_bytes;
  info.leases = r.leases;
  info.pinned = r.pinned ? 1 : 0;
  info.priority = r.priority;
  info.last_use_age_s = r.last_use ? seconds(list->now - *r.last_use) : -1.0;
  info.expires_in_s = r.expires_at ? std::max(0.0, seconds(*r.expires_at - list->now)) : -1.0;
  info.load_count = r.load_count;
  info.last_load_ms = r.last_load_time.count();
  info.last_error = r.last_error.c_str();
  info.device = r.device.c_str();
  copy_prefix(out, info);
  return TP_OK;
  TP_CAPI_END(out_err)
}

void tp_model_list_free(tp_model_list* list) { delete list; }

tp_code tp_registry_devices(tp_device_list** out, const tp_registry* reg, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out, out_err);
  TP_CHECK_HANDLE(reg, kRegistryMagic, "tp_registry", out_err);
  auto list = std::make_unique<tp_device_list>();
  list->devices = reg->registry->stats().devices;
  *out = list.release();
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_runtime_devices(tp_device_list** out, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out, out_err);
  auto list = std::make_unique<tp_device_list>();
  list->devices = tp::capi::runtime_devices();
  *out = list.release();
  return TP_OK;
  TP_CAPI_END(out_err)
}

uint32_t tp_device_list_count(const tp_device_list* list) {
  return list ? static_cast<uint32_t>(list->devices.size()) : 0;
}

tp_code tp_device_list_get(tp_device_info* out, const tp_device_list* list, uint32_t index, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out, out_err);
  TP_CAPI_REQUIRE(list, out_err);
  TP_CHECK_STRUCT_SIZE(out, tp_device_info, out_err);
  if (index >= list->devices.size())
    return fail(out_err, TP_INVALID_ARGUMENT,
                "index " + std::to_string(index) + " is out of range (" + std::to_string(list->devices.size()) +
                    " devices)");
  const tp::DeviceStats& d = list->devices[index];
  tp_device_info info{};
  info.struct_size = sizeof(tp_device_info);
  info.name = d.name.c_str();
  info.total_bytes = d.total_bytes;
  info.free_bytes = d.free_bytes;
  info.process_bytes = d.process_bytes;
  info.other_process_bytes = d.other_process_bytes;
  info.headroom_bytes = d.headroom_bytes;
  info.budget_bytes = d.budget_bytes;
  info.held_bytes = d.held_bytes;
  info.peak_bytes = d.peak_bytes;
  info.reserved_bytes = d.reserved_bytes;
  info.scratch_bytes = d.scratch_bytes;
  info.admission_queue = d.admission_queue;
  info.resident_models = d.resident_models;
  copy_prefix(out, info);
  return TP_OK;
  TP_CAPI_END(out_err)
}

void tp_device_list_free(tp_device_list* list) { delete list; }

tp_code tp_registry_preload(tp_registry* reg, const char* model, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_HANDLE(reg, kRegistryMagic, "tp_registry", out_err);
  TP_CAPI_REQUIRE(model, out_err);
  if (auto st = reg->registry->preload(model); !st) return fail(out_err, st.error());
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_registry_unload(int64_t* out_bytes_returned, tp_registry* reg, const char* model, int32_t tier,
                           tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_HANDLE(reg, kRegistryMagic, "tp_registry", out_err);
  TP_CAPI_REQUIRE(model, out_err);
  if (tier != TP_TIER_HOST && tier != TP_TIER_DISK)
    return fail(out_err, TP_INVALID_ARGUMENT, "tier must be TP_TIER_HOST or TP_TIER_DISK, got " + std::to_string(tier));
  auto r = reg->registry->unload(model, to_tier(tier));
  if (!r) return fail(out_err, r.error());
  if (out_bytes_returned) *out_bytes_returned = r->bytes_returned;
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_registry_unload_all(tp_registry* reg, int32_t tier, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_HANDLE(reg, kRegistryMagic, "tp_registry", out_err);
  if (tier != TP_TIER_HOST && tier != TP_TIER_DISK)
    return fail(out_err, TP_INVALID_ARGUMENT, "tier must be TP_TIER_HOST or TP_TIER_DISK, got " + std::to_string(tier));
  if (auto st = reg->registry->unload_all(to_tier(tier)); !st) return fail(out_err, st.error());
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_registry_tick(tp_registry* reg, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_HANDLE(reg, kRegistryMagic, "tp_registry", out_err);
  reg->registry->tick();
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_registry_stats(tp_stats* out, const tp_registry* reg, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out, out_err);
  TP_CHECK_HANDLE(reg, kRegistryMagic, "tp_registry", out_err);
  TP_CHECK_STRUCT_SIZE(out, tp_stats, out_err);
  tp::RegistryStats s = reg->registry->stats();
  tp_stats c{};
  c.struct_size = sizeof(tp_stats);
  c.hits = s.hits;
  c.misses = s.misses;
  c.loads = s.loads;
  c.reloads = s.reloads;
  c.load_failures = s.load_failures;
  c.admission_waits = s.admission_waits;
  c.admission_failures = s.admission_failures;
  for (size_t i = 0; i < TP_REASON_SLOTS; ++i) c.evictions[i] = s.evictions_by_reason[i];
  c.bytes_to_device = s.bytes_to_device;
  c.bytes_to_host = s.bytes_to_host;
  c.bytes_returned = s.bytes_returned;
  c.device_bytes = s.device_bytes;
  c.peak_device_bytes = s.peak_device_bytes;
  c.host_bytes = s.host_bytes;
  c.load_ms_p50 = s.load_ms.quantile(0.5);
  c.load_ms_p95 = s.load_ms.quantile(0.95);
  c.reload_ms_p50 = s.reload_ms.quantile(0.5);
  c.reload_ms_p95 = s.reload_ms.quantile(0.95);
  copy_prefix(out, c);
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_registry_evictions(uint64_t* out, const tp_registry* reg, int32_t reason, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out, out_err);
  TP_CHECK_HANDLE(reg, kRegistryMagic, "tp_registry", out_err);
  if (reason < 0 || reason >= kReasonCount)
    return fail(out_err, TP_INVALID_ARGUMENT,
                "reason " + std::to_string(reason) + " is not a TP_REASON_* this library knows (0.." +
                    std::to_string(kReasonCount - 1) + ")");
  *out = reg->registry->stats().evictions(static_cast<tp::Reason>(reason));
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_registry_stat(uint64_t* out, const tp_registry* reg, const char* name, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out, out_err);
  TP_CHECK_HANDLE(reg, kRegistryMagic, "tp_registry", out_err);
  TP_CAPI_REQUIRE(name, out_err);
  const tp::RegistryStats s = reg->registry->stats();
  const std::pair<const char*, uint64_t> known[] = {
      {"admission_queue", s.admission_queue},         {"admission_queue_bytes", s.admission_queue_bytes},
      {"admission_waits", s.admission_waits},         {"admission_failures", s.admission_failures},
      {"admission_cancels", s.admission_cancels},     {"device_total_bytes", s.device_total_bytes},
      {"device_free_bytes", s.device_free_bytes},     {"process_bytes", s.process_bytes},
      {"other_process_bytes", s.other_process_bytes}, {"headroom_bytes", s.headroom_bytes},
      {"cache_releases", s.cache_releases},           {"cache_bytes_returned", s.cache_bytes_returned},
  };
  std::string names;
  for (const auto& [n, v] : known) {
    if (std::strcmp(n, name) == 0) {
      *out = v;
      return TP_OK;
    }
    names += (names.empty() ? "" : ", ") + std::string(n);
  }
  return fail(out_err, TP_INVALID_ARGUMENT,
              "statistic '" + std::string(name) + "' is not one this library knows (known: " + names + ")");
  TP_CAPI_END(out_err)
}

tp_code tp_registry_subscribe(int32_t* out_id, tp_registry* reg, tp_event_fn fn, void* user_data, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_HANDLE(reg, kRegistryMagic, "tp_registry", out_err);
  TP_CAPI_REQUIRE(fn, out_err);
  int id = reg->registry->subscribe([fn, user_data](const tp::ResidencyEvent& e) {
    tp_event ev{sizeof(tp_event),
                e.model.c_str(),
                static_cast<int32_t>(e.from),
                static_cast<int32_t>(e.to),
                static_cast<int32_t>(e.reason),
                e.failed ? 1 : 0,
                e.bytes,
                e.ms,
                e.bytes_returned,
                e.error.c_str()};
    fn(&ev, user_data);
  });
  if (out_id) *out_id = id;
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_registry_unsubscribe(tp_registry* reg, int32_t id, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_HANDLE(reg, kRegistryMagic, "tp_registry", out_err);
  if (auto st = reg->registry->unsubscribe(id); !st) return fail(out_err, st.error());
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_model_acquire(tp_model** out, tp_registry* reg, const char* model, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out, out_err);
  TP_CHECK_HANDLE(reg, kRegistryMagic, "tp_registry", out_err);
  TP_CAPI_REQUIRE(model, out_err);
  auto lease = reg->registry->acquire(model);
  if (!lease) return fail(out_err, lease.error());
  auto handle = std::make_unique<tp_model>();
  handle->lease = std::move(*lease);
  *out = handle.release();
  return TP_OK;
  TP_CAPI_END(out_err)
}

void tp_model_release(tp_model* lease) {
  if (!lease || lease->magic != kLeaseMagic) return;
  lease->magic = kDead;
  delete lease;  // ~ModelLease releases; never throws
}

const char* tp_model_name(const tp_model* lease) {
  return lease && lease->magic == kLeaseMagic ? lease->lease.name().c_str() : "";
}

uint64_t tp_model_device_bytes(const tp_model* lease) {
  return lease && lease->magic == kLeaseMagic ? lease->lease.weights().device_bytes() : 0;
}

}  // extern "C"
