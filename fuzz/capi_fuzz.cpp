// libFuzzer target for the C ABI (capi/include/twistedpic/tp.h), compiled with
// the registry shims (capi/src) over the torch-free layers: without the torch
// layer, a registry on real weights uses the CPU device (weights/default_options.h).
//
// Each input drives, through tp.h only:
//   1. tp_registry_options_* setters with fuzzed values (preset strings,
//      simulated device sizes, background-thread flags, host policies whose
//      vtables have fuzzed sizes and callbacks that return fuzzed victims,
//      out-of-range ones included), tp_set_log_callback with fuzzed levels;
//   2. tp_registry_create_from_string with a fuzzed config: either raw bytes or
//      a generated config whose every field is fuzzed;
//   3. a fuzzed sequence of acquire/release/preload/unload/unload_all/tick/
//      list/stats/subscribe/unsubscribe calls with fuzzed names, tiers,
//      struct sizes and indices, NULL and wrong-kind handles, and the registry
//      destroyed while leases live.
// Every call must return a known code and follow the error protocol (an error
// object exactly when requested and failed, carrying the same code and a
// message); TP_INTERNAL (an exception caught at the boundary) is a bug. At the
// end every host policy's destroy has run exactly once, and ASan/LSan check
// that nothing leaked.
#include <fuzzer/FuzzedDataProvider.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "capi_protocol.h"
#include "twistedpic/config.h"
#include "twistedpic/tp.h"

namespace {

using tp_fuzz::check;
using tp_fuzz::Err;

// ---- host callbacks ------------------------------------------------------------------

struct PolicyState {
  std::vector<uint32_t> picks;  // victims it names, in range or not
  bool added = false;
  std::atomic<int> destroyed{0};
  std::atomic<int> accesses{0};
};

uint32_t select_victims(uint32_t* out, uint32_t max_out, const tp_policy_model* models, uint32_t count, uint64_t,
                        void* user_data) {
  check(out && models && count > 0 && max_out >= count);
  for (uint32_t i = 0; i < count; ++i) {
    const tp_policy_model& m = models[i];
    check(m.name && m.name[0] && m.state >= TP_STATE_UNLOADED && m.state <= TP_STATE_FAILED);
    check(m.tier >= TP_TIER_DEVICE && m.tier <= TP_TIER_DISK && (m.pinned == 0 || m.pinned == 1));
    check(m.evictable == 0 || m.evictable == 1);
  }
  auto* s = static_cast<PolicyState*>(user_data);
  uint32_t n = 0;
  for (uint32_t p : s->picks)
    if (n < max_out) out[n++] = p;
  return n;
}

void on_access(const char* model, void* user_data) {
  check(model && model[0]);
  ++static_cast<PolicyState*>(user_data)->accesses;
}

void destroy_policy(void* user_data) { ++static_cast<PolicyState*>(user_data)->destroyed; }

std::atomic<uint64_t> g_events{0};

void on_event(const tp_event* ev, void* user_data) {
  check(ev && ev->struct_size == sizeof(tp_event) && ev->model && ev->model[0] && ev->error);
  check(ev->from >= TP_TIER_DEVICE && ev->from <= TP_TIER_DISK && ev->to >= TP_TIER_DEVICE && ev->to <= TP_TIER_DISK);
  check(ev->reason >= 0 && ev->reason < TP_REASON_SLOTS && (ev->failed == 0 || ev->failed == 1));
  check(user_data == &g_events);
  ++g_events;
}

void on_log(int32_t level, const char* logger, const char* msg, size_t len, void*) {
  check(level >= TP_LOG_TRACE && level < TP_LOG_OFF && logger && msg && std::strlen(msg) == len);
}

// ---- fuzzed values ---------------------------------------------------------------------

const char* const kNames[] = {"a", "b", "c", "sd3_large", "x y", "\xc3\xa9t\xc3\xa9"};

std::string pick_name(FuzzedDataProvider& f, const std::vector<std::string>& names) {
  switch (f.ConsumeIntegralInRange(0, 5)) {
    case 0: return f.ConsumeRandomLengthString(16);
    case 1: return kNames[f.ConsumeIntegralInRange<size_t>(0, std::size(kNames) - 1)];
    default: return names.empty() ? std::string("a") : names[f.ConsumeIntegralInRange<size_t>(0, names.size() - 1)];
  }
}

int32_t pick_tier(FuzzedDataProvider& f) {
  static const int32_t kTiers[] = {TP_TIER_HOST, TP_TIER_DISK, TP_TIER_HOST, TP_TIER_DISK, TP_TIER_DEVICE, -1, 3};
  return f.ConsumeBool() ? f.PickValueInArray(kTiers) : f.ConsumeIntegral<int32_t>();
}

// `s` as a JSON string; bytes that are not UTF-8 become U+FFFD.
std::string json_string(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string json_bytes(FuzzedDataProvider& f) {
  static const char* const kSizes[] = {"0", "1", "256", "\"256MiB\"", "\"1GiB\"", "\"1.5GiB\"", "\"3GB\"", "\"16EiB\"",
                                       "-1", "\"\"", "1e3", "\"4 gib\""};
  if (f.ConsumeBool()) return f.PickValueInArray(kSizes);
  return std::to_string(f.ConsumeIntegralInRange<uint64_t>(0, 8) * (256ull << 20) + f.ConsumeIntegralInRange(0, 3));
}

std::string json_unload(FuzzedDataProvider& f) {
  static const char* const kValues[] = {"\"host\"", "\"disk\"", "\"keep\"", "\"never\"", "true", "false", "null",
                                        "\"device\"", "3"};
  return f.PickValueInArray(kValues);
}

std::string json_seconds(FuzzedDataProvider& f) {
  static const char* const kValues[] = {"-1", "0", "0.001", "0.5", "1", "30", "1e9", "1e300", "\"5\""};
  return f.PickValueInArray(kValues);
}

// A config whose fields are all fuzzed; its models' names go to `names`.
std::string generated_config(FuzzedDataProvider& f, std::vector<std::string>& names) {
  std::string models;
  const int n = f.ConsumeIntegralInRange(1, 4);
  for (int i = 0; i < n; ++i) {
    std::string name = f.ConsumeBool() ? std::string(kNames[i]) : f.ConsumeRandomLengthString(8);
    names.push_back(name);
    std::string m = json_string(name) + ": {";
    m += f.ConsumeBool() ? "\"path\": " + json_string("/nonexistent/twistedpic-fuzz/" + name)
                         : "\"model_id\": " + json_string(f.ConsumeBool() ? "org/" + name : name);
    m += ", \"size_bytes\": " + json_bytes(f);
    if (f.ConsumeBool()) m += ", \"workspace_bytes\": " + json_bytes(f);
    if (f.ConsumeBool()) m += ", \"priority\": " + std::to_string(f.ConsumeIntegralInRange(-3, 3));
    if (f.ConsumeBool()) m += std::string(", \"pinned\": ") + (f.ConsumeBool() ? "true" : "false");
    if (f.ConsumeBool()) m += std::string(", \"eager\": ") + (f.ConsumeBool() ? "true" : "false");
    if (f.ConsumeBool()) m += std::string(", \"dtype\": ") + (f.ConsumeBool() ? "\"fp16\"" : "\"fp32\"");
    if (f.ConsumeBool())
      m += ", \"policy\": {\"unload_after\": " + json_unload(f) + ", \"idle_timeout_s\": " + json_seconds(f) +
           ", \"idle_unload_to\": " + (f.ConsumeBool() ? "\"host\"" : "\"disk\"") + "}";
    models += (i ? ", " : "") + m + "}";
  }
  std::string c = "{\"models\": {" + models + "}";
  static const char* const kPresets[] = {"\"max_gpu_availability\"", "\"balanced\"", "\"max_speed\"", "\"fast\""};
  if (f.ConsumeBool()) c += ", \"preset\": " + std::string(f.PickValueInArray(kPresets));
  if (f.ConsumeBool()) {
    c += ", \"policy\": {\"unload_after\": " + json_unload(f) + ", \"idle_timeout_s\": " + json_seconds(f);
    if (f.ConsumeBool()) c += std::string(", \"idle_unload_to\": ") + (f.ConsumeBool() ? "\"host\"" : "\"disk\"");
    if (f.ConsumeBool()) c += std::string(", \"eager\": ") + (f.ConsumeBool() ? "true" : "false");
    if (f.ConsumeBool())
      c += ", \"lru\": {\"max_models\": " + std::to_string(f.ConsumeIntegralInRange(-1, 3)) +
           ", \"max_bytes\": " + json_bytes(f) + "}";
    if (f.ConsumeBool()) c += ", \"pressure\": {\"min_free_bytes\": " + json_bytes(f) + "}";
    if (f.ConsumeBool()) c += std::string(", \"clean_caches\": ") + (f.ConsumeBool() ? "true" : "false");
    c += "}";
  }
  if (f.ConsumeBool()) c += ", \"host_budget_bytes\": " + json_bytes(f);
  if (f.ConsumeBool()) c += ", \"device_budget_bytes\": " + json_bytes(f);
  if (f.ConsumeBool()) c += ", \"admission_timeout_ms\": " + std::to_string(f.ConsumeIntegralInRange(-1, 3));
  if (f.ConsumeBool()) c += ", \"monitor_interval_ms\": " + std::to_string(f.ConsumeIntegralInRange(0, 20));
  return c + "}";
}

// ---- one input ---------------------------------------------------------------------------

struct Lease {
  tp_model* handle;
  std::string name;
};

void run(FuzzedDataProvider& f) {
  std::deque<PolicyState> policies;

  // 1. Options.
  tp_registry_options* opts = nullptr;
  {
    Err e(f.ConsumeBool());
    check(e.done(tp_registry_options_create(nullptr, e.ptr())) == TP_INVALID_ARGUMENT);
  }
  {
    Err e(f.ConsumeBool());
    check(e.done(tp_registry_options_create(&opts, e.ptr())) == TP_OK && opts);
  }
  bool simulated = false;
  const int setters = f.ConsumeIntegralInRange(0, 8);
  for (int i = 0; i < setters; ++i) {
    Err e(f.ConsumeBool());
    tp_registry_options* target = f.ConsumeIntegralInRange(0, 15) == 0 ? nullptr : opts;
    switch (f.ConsumeIntegralInRange(0, 5)) {
      case 0: {
        static const char* const kPresets[] = {"max_gpu_availability", "balanced", "max_speed", "", "MAX_SPEED"};
        std::string preset = f.ConsumeBool() ? f.PickValueInArray(kPresets) : f.ConsumeRandomLengthString(24);
        tp_code c = e.done(tp_registry_options_set_preset(target, f.ConsumeIntegralInRange(0, 15) ? preset.c_str() : nullptr,
                                                          e.ptr()));
        check(c == TP_OK || c == TP_INVALID_ARGUMENT);
        break;
      }
      case 1: {
        uint64_t bytes = f.ConsumeBool() ? f.ConsumeIntegralInRange<uint64_t>(0, 16) << 28 : f.ConsumeIntegral<uint64_t>();
        tp_code c = e.done(tp_registry_options_use_simulated_device(target, bytes, e.ptr()));
        check(c == (target && bytes ? TP_OK : TP_INVALID_ARGUMENT));
        if (c == TP_OK) simulated = true;
        break;
      }
      case 2: {
        int32_t enabled = f.ConsumeBool() ? f.ConsumeIntegralInRange(0, 1) : f.ConsumeIntegral<int32_t>();
        tp_code c = e.done(tp_registry_options_set_background_thread(target, enabled, e.ptr()));
        check(c == (target && (enabled == 0 || enabled == 1) ? TP_OK : TP_INVALID_ARGUMENT));
        break;
      }
      case 3: {
        PolicyState& s = policies.emplace_back();
        const int picks = f.ConsumeIntegralInRange(0, 4);
        for (int k = 0; k < picks; ++k) s.picks.push_back(f.ConsumeIntegralInRange<uint32_t>(0, 6));
        tp_memory_policy_vtable vt{};
        vt.struct_size = f.ConsumeBool() ? sizeof vt : f.ConsumeIntegralInRange<uint32_t>(0, 2 * sizeof vt);
        vt.select_victims = f.ConsumeBool() ? select_victims : nullptr;
        vt.on_access = f.ConsumeBool() ? on_access : nullptr;
        vt.destroy = destroy_policy;
        tp_code c = e.done(tp_registry_options_add_policy(target, f.ConsumeIntegralInRange(0, 15) ? &vt : nullptr, &s,
                                                          e.ptr()));
        s.added = c == TP_OK;
        break;
      }
      case 4: {
        int32_t level = f.ConsumeBool() ? f.ConsumeIntegralInRange(TP_LOG_TRACE, TP_LOG_OFF) : f.ConsumeIntegral<int32_t>();
        tp_code c = e.done(tp_set_log_callback(on_log, nullptr, level, e.ptr()));
        check(c == (level >= TP_LOG_TRACE && level <= TP_LOG_OFF ? TP_OK : TP_INVALID_ARGUMENT));
        break;
      }
      case 5: {  // a wrong-kind handle
        tp_code c = e.done(tp_registry_tick(reinterpret_cast<tp_registry*>(opts), e.ptr()));
        check(c == TP_INVALID_ARGUMENT);
        break;
      }
    }
  }

  // 2. The registry.
  std::vector<std::string> names;
  const bool raw = f.ConsumeIntegralInRange(0, 3) == 0;
  std::string config = raw ? f.ConsumeRandomLengthString(2048) : generated_config(f, names);
  const bool with_opts = f.ConsumeIntegralInRange(0, 7) != 0;
  bool hold_leases = false;  // only when an acquire cannot wait long for a lease to end
  if (auto parsed = tp::parse_registry_config(config)) {
    names.clear();
    for (const auto& m : parsed->models) names.push_back(m.name);
    hold_leases = parsed->admission_timeout <= std::chrono::milliseconds(5);
  }
  tp_registry* reg = nullptr;
  {
    Err e(f.ConsumeBool());
    tp_code c = e.done(tp_registry_create_from_string(&reg, config.c_str(), with_opts ? opts : nullptr, e.ptr()));
    check((c == TP_OK) == (reg != nullptr));
    if (c == TP_OK) simulated = simulated && with_opts;
  }
  {
    Err e(f.ConsumeBool());
    tp_registry* none = nullptr;
    check(e.done(tp_registry_create_from_string(&none, nullptr, opts, e.ptr())) == TP_INVALID_ARGUMENT && !none);
  }

  // 3. Operations.
  std::vector<Lease> leases;
  std::vector<int32_t> subscriptions;
  uint64_t acquired = 0;
  const int ops = f.ConsumeIntegralInRange(0, 48);
  for (int i = 0; i < ops && f.remaining_bytes() > 0; ++i) {
    Err e(f.ConsumeBool());
    const std::string name = pick_name(f, names);
    switch (f.ConsumeIntegralInRange(0, 13)) {
      case 0: case 1: case 2: {
        tp_model* lease = nullptr;
        tp_code c = e.done(tp_model_acquire(&lease, reg, name.c_str(), e.ptr()));
        check((c == TP_OK) == (lease != nullptr));
        if (!reg) check(c == TP_INVALID_ARGUMENT);
        if (c != TP_OK) break;
        ++acquired;
        check(std::strcmp(tp_model_name(lease), name.c_str()) == 0);
        if (simulated) check(tp_model_device_bytes(lease) > 0);
        if (hold_leases && leases.size() < 3) leases.push_back({lease, name});
        else tp_model_release(lease);
        break;
      }
      case 3: case 4:
        if (!leases.empty()) {
          size_t k = f.ConsumeIntegralInRange<size_t>(0, leases.size() - 1);
          tp_model_release(leases[k].handle);
          leases.erase(leases.begin() + static_cast<std::ptrdiff_t>(k));
        } else {
          tp_model_release(nullptr);
          tp_model_release(reinterpret_cast<tp_model*>(opts));  // wrong kind: ignored
        }
        break;
      case 5: {
        tp_code c = e.done(tp_registry_preload(reg, f.ConsumeIntegralInRange(0, 15) ? name.c_str() : nullptr, e.ptr()));
        if (!reg) check(c == TP_INVALID_ARGUMENT);
        break;
      }
      case 6: {
        int64_t returned = -12345;
        const int32_t tier = pick_tier(f);
        tp_code c = e.done(tp_registry_unload(f.ConsumeBool() ? &returned : nullptr, reg, name.c_str(), tier, e.ptr()));
        if (tier != TP_TIER_HOST && tier != TP_TIER_DISK) {
          check(c == TP_INVALID_ARGUMENT);
        } else if (reg) {
          for (const auto& l : leases)
            if (l.name == name) check(c == TP_FAILED_PRECONDITION);
        }
        if (c != TP_OK) check(returned == -12345);  // untouched on failure
        break;
      }
      case 7: {
        const int32_t tier = pick_tier(f);
        tp_code c = e.done(tp_registry_unload_all(reg, tier, e.ptr()));
        if (tier != TP_TIER_HOST && tier != TP_TIER_DISK) check(c == TP_INVALID_ARGUMENT);
        else if (reg) check(c == (leases.empty() ? TP_OK : TP_FAILED_PRECONDITION));
        break;
      }
      case 8:
        check(e.done(tp_registry_tick(reg, e.ptr())) == (reg ? TP_OK : TP_INVALID_ARGUMENT));
        break;
      case 9: {
        tp_model_list* list = nullptr;
        tp_code c = e.done(tp_registry_list(f.ConsumeIntegralInRange(0, 15) ? &list : nullptr, reg, e.ptr()));
        if (c != TP_OK) {
          check(list == nullptr);
          break;
        }
        uint32_t count = 0;
        {
          Err e2(false);
          check(e2.done(tp_registry_model_count(&count, reg, nullptr)) == TP_OK);
        }
        check(tp_model_list_count(list) == count && count == names.size());
        const int gets = f.ConsumeIntegralInRange(0, 4);
        for (int g = 0; g < gets; ++g) {
          tp_model_info rows[2];
          std::memset(rows, 0xab, sizeof rows);
          rows[0].struct_size = f.ConsumeBool() ? sizeof(tp_model_info) : f.ConsumeIntegralInRange<uint32_t>(0, 2 * sizeof(tp_model_info));
          const uint32_t index = f.ConsumeBool() ? f.ConsumeIntegralInRange<uint32_t>(0, count) : f.ConsumeIntegral<uint32_t>();
          Err e3(f.ConsumeBool());
          tp_code gc = e3.done(tp_model_list_get(&rows[0], list, index, e3.ptr()));
          // The library accepts any size from v0.1's 120 bytes (tp_model_info grew in v0.2).
          check(gc == (index < count && rows[0].struct_size >= 120 ? TP_OK : TP_INVALID_ARGUMENT));
          if (gc != TP_OK) continue;
          const tp_model_info& r = rows[0];
          check(r.name && r.source && r.pipeline_type && r.dtype && r.last_error);
          if (r.struct_size >= sizeof(tp_model_info)) check(r.device != nullptr);
          check(r.state >= TP_STATE_UNLOADED && r.state <= TP_STATE_FAILED && r.tier >= TP_TIER_DEVICE && r.tier <= TP_TIER_DISK);
          check(std::strcmp(r.dtype, "fp32") == 0 || std::strcmp(r.dtype, "fp16") == 0 || std::strcmp(r.dtype, "bf16") == 0);
          check(std::strcmp(tp_state_name(r.state), "?") != 0 && std::strcmp(tp_tier_name(r.tier), "?") != 0);
          if (r.leases > 0) check(r.state == TP_STATE_RESIDENT && r.device_bytes > 0);
        }
        tp_model_list_free(list);
        break;
      }
      case 10: {
        tp_stats stats[2];
        std::memset(stats, 0xcd, sizeof stats);
        stats[0].struct_size = f.ConsumeBool() ? sizeof(tp_stats) : f.ConsumeIntegralInRange<uint32_t>(0, 2 * sizeof(tp_stats));
        tp_code c = e.done(tp_registry_stats(&stats[0], reg, e.ptr()));
        if (!reg) check(c == TP_INVALID_ARGUMENT);
        else check(c == (stats[0].struct_size >= sizeof(tp_stats) ? TP_OK : TP_INVALID_ARGUMENT));
        if (c == TP_OK) check(stats[0].hits + stats[0].misses == acquired);
        break;
      }
      case 11: {
        int32_t id = -1;
        tp_code c = e.done(tp_registry_subscribe(f.ConsumeBool() ? &id : nullptr, reg,
                                                 f.ConsumeIntegralInRange(0, 15) ? on_event : nullptr, &g_events, e.ptr()));
        if (c == TP_OK && id != -1) subscriptions.push_back(id);
        break;
      }
      case 12: {
        int32_t id = subscriptions.empty() || f.ConsumeBool() ? f.ConsumeIntegral<int32_t>()
                                                               : subscriptions[f.ConsumeIntegralInRange<size_t>(0, subscriptions.size() - 1)];
        tp_code c = e.done(tp_registry_unsubscribe(reg, id, e.ptr()));
        check(c == TP_OK || c == TP_NOT_FOUND || c == TP_INVALID_ARGUMENT);
        if (c == TP_OK) subscriptions.erase(std::remove(subscriptions.begin(), subscriptions.end(), id), subscriptions.end());
        break;
      }
      case 13:  // destroyed while leases may be live
        tp_registry_destroy(reg);
        reg = nullptr;
        break;
    }
  }

  // 4. Teardown, in a fuzzed order: leases may outlive the registry.
  const bool leases_first = f.ConsumeBool();
  if (leases_first)
    for (auto& l : leases) tp_model_release(l.handle);
  tp_registry_destroy(reg);
  if (!leases_first)
    for (auto& l : leases) tp_model_release(l.handle);
  tp_registry_options_destroy(opts);
  tp_registry_options_destroy(nullptr);
  for (const PolicyState& s : policies) check(s.destroyed == (s.added ? 1 : 0));  // exactly once, or never
  Err e(false);
  check(e.done(tp_set_log_callback(on_log, nullptr, TP_LOG_WARN, nullptr)) == TP_OK);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Keep the log quiet, and keep the Hugging Face cache of the machine out of reach.
  tp_set_log_callback(on_log, nullptr, TP_LOG_WARN, nullptr);
  setenv("HF_HUB_CACHE", "/nonexistent/twistedpic-fuzz/hub", 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider f(data, size);
  run(f);
  return 0;
}
