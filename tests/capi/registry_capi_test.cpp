// The C ABI's registry, leases, events, stats and host policies, and its bad
// input: NULLs, dead handles, unknown names, invalid parameters. Compiled as
// C++ against tp.h only.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "support/capi_error.h"
#include "twistedpic/tp.h"

namespace {

constexpr uint64_t kGiB = 1ull << 30;

const char* kConfig = R"({
  "models": {
    "a": {"model_id": "org/a", "pipeline_type": "sd3", "size_bytes": "4GiB", "dtype": "fp16"},
    "b": {"path": "/models/b", "pipeline_type": "sd3", "size_bytes": "4GiB", "priority": 3},
    "c": {"path": "/models/c", "pipeline_type": "sd3", "size_bytes": "4GiB"}
  },
  "host_budget_bytes": "16GiB"
})";

using Error = CapiError;

// kConfig, failing an admission at once instead of waiting for leases to end.
const char* kConfigNoWait = R"({
  "models": {
    "a": {"model_id": "org/a", "pipeline_type": "sd3", "size_bytes": "4GiB", "dtype": "fp16"},
    "b": {"path": "/models/b", "pipeline_type": "sd3", "size_bytes": "4GiB", "priority": 3},
    "c": {"path": "/models/c", "pipeline_type": "sd3", "size_bytes": "4GiB"}
  },
  "host_budget_bytes": "16GiB", "admission_timeout_ms": 0
})";

tp_registry* make_registry(const char* preset = nullptr, uint64_t device = 10 * kGiB, tp_registry_options* o = nullptr,
                           const char* config = kConfig) {
  tp_registry_options* opts = o;
  if (!opts) {
    EXPECT_EQ(tp_registry_options_create(&opts, nullptr), TP_OK);
  }
  EXPECT_EQ(tp_registry_options_use_simulated_device(opts, device, nullptr), TP_OK);
  EXPECT_EQ(tp_registry_options_set_background_thread(opts, 0, nullptr), TP_OK);
  if (preset) {
    EXPECT_EQ(tp_registry_options_set_preset(opts, preset, nullptr), TP_OK);
  }
  tp_registry* reg = nullptr;
  Error err;
  EXPECT_EQ(tp_registry_create_from_string(&reg, config, opts, err.out()), TP_OK) << err.message();
  tp_registry_options_destroy(opts);
  return reg;
}

tp_model_info row(const tp_registry* reg, const char* name) {
  tp_model_list* list = nullptr;
  EXPECT_EQ(tp_registry_list(&list, reg, nullptr), TP_OK);
  tp_model_info info{};
  for (uint32_t i = 0; i < tp_model_list_count(list); ++i) {
    tp_model_info r{};
    r.struct_size = sizeof r;
    EXPECT_EQ(tp_model_list_get(&r, list, i, nullptr), TP_OK);
    if (std::strcmp(r.name, name) == 0) {
      info = r;
      info.name = info.source = info.pipeline_type = info.dtype = info.last_error = info.device = "";  // list is freed below
    }
  }
  tp_model_list_free(list);
  return info;
}

TEST(RegistryCapiTest, ListAcquireReleaseUnload) {
  tp_registry* reg = make_registry();
  uint32_t count = 0;
  ASSERT_EQ(tp_registry_model_count(&count, reg, nullptr), TP_OK);
  EXPECT_EQ(count, 3u);

  tp_model_list* list = nullptr;
  ASSERT_EQ(tp_registry_list(&list, reg, nullptr), TP_OK);
  ASSERT_EQ(tp_model_list_count(list), 3u);
  tp_model_info info{};
  info.struct_size = sizeof info;
  ASSERT_EQ(tp_model_list_get(&info, list, 0, nullptr), TP_OK);
  EXPECT_STREQ(info.name, "a");
  EXPECT_STREQ(info.source, "org/a");
  EXPECT_STREQ(info.pipeline_type, "sd3");
  EXPECT_STREQ(info.dtype, "fp16");
  EXPECT_EQ(info.state, TP_STATE_UNLOADED);
  EXPECT_EQ(info.tier, TP_TIER_DISK);
  EXPECT_EQ(info.last_use_age_s, -1.0);
  EXPECT_EQ(info.expires_in_s, -1.0);
  EXPECT_STREQ(info.last_error, "");
  tp_model_list_free(list);

  tp_model* lease = nullptr;
  Error err;
  ASSERT_EQ(tp_model_acquire(&lease, reg, "a", err.out()), TP_OK) << err.message();
  EXPECT_EQ(err.e, nullptr);
  EXPECT_STREQ(tp_model_name(lease), "a");
  EXPECT_EQ(tp_model_device_bytes(lease), 4 * kGiB);
  tp_model_info a = row(reg, "a");
  EXPECT_EQ(a.state, TP_STATE_RESIDENT);
  EXPECT_EQ(a.leases, 1u);
  EXPECT_EQ(a.device_bytes, 4 * kGiB);
  EXPECT_EQ(a.load_count, 1u);
  EXPECT_GE(a.last_use_age_s, 0.0);

  int64_t returned = -1;
  EXPECT_EQ(tp_registry_unload(&returned, reg, "a", TP_TIER_HOST, err.out()), TP_FAILED_PRECONDITION);
  EXPECT_NE(err.message().find("live lease"), std::string::npos);
  EXPECT_EQ(returned, -1);  // untouched on failure
  tp_model_release(lease);
  ASSERT_EQ(tp_registry_unload(&returned, reg, "a", TP_TIER_HOST, nullptr), TP_OK);
  EXPECT_EQ(returned, static_cast<int64_t>(4 * kGiB));
  a = row(reg, "a");
  EXPECT_EQ(a.state, TP_STATE_OFFLOADED);
  EXPECT_EQ(a.host_bytes, 4 * kGiB);
  ASSERT_EQ(tp_registry_preload(reg, "a", nullptr), TP_OK);
  EXPECT_EQ(tp_registry_unload_all(reg, TP_TIER_DISK, nullptr), TP_OK);
  EXPECT_EQ(row(reg, "a").state, TP_STATE_UNLOADED);

  tp_stats s{};
  s.struct_size = sizeof s;
  ASSERT_EQ(tp_registry_stats(&s, reg, nullptr), TP_OK);
  EXPECT_EQ(s.loads, 1u);
  EXPECT_EQ(s.reloads, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.evictions[TP_REASON_EXPLICIT], 2u);  // device->host, then device->disk (unload_all)
  EXPECT_EQ(s.device_bytes, 0u);
  EXPECT_EQ(s.host_bytes, 0u);
  tp_registry_destroy(reg);
}

struct Events {
  std::vector<std::string> seen;
};

void on_event(const tp_event* ev, void* user_data) {
  static_cast<Events*>(user_data)->seen.push_back(std::string(ev->model) + ":" + tp_tier_name(ev->from) + "->" +
                                                   tp_tier_name(ev->to) + ":" + tp_reason_name(ev->reason));
}

TEST(RegistryCapiTest, EventsFollowThePreset) {
  tp_registry* reg = make_registry("max_gpu_availability");
  Events events;
  int32_t id = -1;
  ASSERT_EQ(tp_registry_subscribe(&id, reg, on_event, &events, nullptr), TP_OK);
  tp_model* lease = nullptr;
  ASSERT_EQ(tp_model_acquire(&lease, reg, "b", nullptr), TP_OK);
  tp_model_release(lease);
  ASSERT_EQ(tp_registry_unsubscribe(reg, id, nullptr), TP_OK);
  EXPECT_EQ(tp_registry_unsubscribe(reg, id, nullptr), TP_NOT_FOUND);
  ASSERT_EQ(tp_model_acquire(&lease, reg, "b", nullptr), TP_OK);
  tp_model_release(lease);
  EXPECT_EQ(events.seen, (std::vector<std::string>{"b:disk->device:lazy", "b:device->host:unload-after"}));
  tp_registry_destroy(reg);
}

struct PolicyState {
  int selects = 0;
  int accesses = 0;
  int destroyed = 0;
};

uint32_t pick_last_evictable(uint32_t* out, uint32_t max_out, const tp_policy_model* models, uint32_t count, uint64_t,
                             void* user_data) {
  ++static_cast<PolicyState*>(user_data)->selects;
  for (uint32_t i = count; i-- > 0;)
    if (models[i].evictable && max_out > 0) {
      out[0] = i;
      return 1;
    }
  return 0;
}
void count_access(const char*, void* user_data) { ++static_cast<PolicyState*>(user_data)->accesses; }
void count_destroy(void* user_data) { ++static_cast<PolicyState*>(user_data)->destroyed; }

TEST(RegistryCapiTest, HostPolicyThroughVtable) {
  PolicyState state;
  tp_memory_policy_vtable vt{sizeof vt, pick_last_evictable, count_access, count_destroy, nullptr};
  tp_registry_options* opts = nullptr;
  ASSERT_EQ(tp_registry_options_create(&opts, nullptr), TP_OK);
  ASSERT_EQ(tp_registry_options_add_policy(opts, &vt, &state, nullptr), TP_OK);
  tp_registry* reg = make_registry(nullptr, 10 * kGiB, opts);
  EXPECT_EQ(state.destroyed, 0);  // the registry owns it now
  tp_model* l = nullptr;
  ASSERT_EQ(tp_model_acquire(&l, reg, "a", nullptr), TP_OK);
  tp_model_release(l);
  ASSERT_EQ(tp_model_acquire(&l, reg, "b", nullptr), TP_OK);
  tp_model_release(l);
  ASSERT_EQ(tp_model_acquire(&l, reg, "c", nullptr), TP_OK);  // needs room: the policy picks b (last evictable)
  tp_model_release(l);
  EXPECT_EQ(state.selects, 1);
  EXPECT_EQ(state.accesses, 3);
  EXPECT_EQ(row(reg, "b").state, TP_STATE_OFFLOADED);
  EXPECT_EQ(row(reg, "a").state, TP_STATE_RESIDENT);
  tp_registry_destroy(reg);
  EXPECT_EQ(state.destroyed, 1);

  // Options destroyed without creating a registry destroy their policy once.
  PolicyState unused;
  ASSERT_EQ(tp_registry_options_create(&opts, nullptr), TP_OK);
  ASSERT_EQ(tp_registry_options_add_policy(opts, &vt, &unused, nullptr), TP_OK);
  tp_registry_options_destroy(opts);
  EXPECT_EQ(unused.destroyed, 1);
}

// Ranks every evictable model, last first (c, b, a): more than the need.
uint32_t rank_all_last_first(uint32_t* out, uint32_t max_out, const tp_policy_model* models, uint32_t count, uint64_t,
                             void* user_data) {
  ++static_cast<PolicyState*>(user_data)->selects;
  uint32_t n = 0;
  for (uint32_t i = count; i-- > 0;)
    if (models[i].evictable && n < max_out) out[n++] = i;
  return n;
}

struct SizedState {
  int ranks = 0;
  int old_calls = 0;
  uint32_t model_size = 0;
  std::vector<std::string> seen;
};

// The same ranking through rank_victims, walking the array by model_size.
uint32_t rank_sized(uint32_t* out, uint32_t max_out, const tp_policy_model* models, uint32_t count,
                    uint32_t model_size, uint64_t, void* user_data) {
  auto* st = static_cast<SizedState*>(user_data);
  ++st->ranks;
  st->model_size = model_size;
  uint32_t n = 0;
  for (uint32_t i = 0; i < count; ++i) st->seen.emplace_back(TP_POLICY_MODEL_AT(models, model_size, i)->name);
  for (uint32_t i = count; i-- > 0;)
    if (TP_POLICY_MODEL_AT(models, model_size, i)->evictable && n < max_out) out[n++] = i;
  return n;
}
uint32_t old_select(uint32_t*, uint32_t, const tp_policy_model*, uint32_t, uint64_t, void* user_data) {
  ++static_cast<SizedState*>(user_data)->old_calls;
  return 0;
}

// a and b resident (8 of 10 GiB), then c (4 GiB) needs 2 GiB more: one victim.
void fill_then_acquire_c(tp_registry* reg) {
  for (const char* name : {"a", "b", "c"}) {
    tp_model* l = nullptr;
    Error err;
    ASSERT_EQ(tp_model_acquire(&l, reg, name, err.out()), TP_OK) << err.message();
    tp_model_release(l);
  }
}

TEST(RegistryCapiTest, HostPolicyRankingEvictsOnlyWhatIsNeeded) {
  // The policy ranks b then a; b alone frees enough, so a stays resident.
  PolicyState state;
  tp_memory_policy_vtable vt{};
  vt.struct_size = sizeof vt;
  vt.select_victims = rank_all_last_first;
  vt.destroy = count_destroy;
  tp_registry_options* opts = nullptr;
  ASSERT_EQ(tp_registry_options_create(&opts, nullptr), TP_OK);
  ASSERT_EQ(tp_registry_options_add_policy(opts, &vt, &state, nullptr), TP_OK);
  tp_registry* reg = make_registry(nullptr, 10 * kGiB, opts);
  fill_then_acquire_c(reg);
  EXPECT_EQ(state.selects, 1);
  EXPECT_EQ(row(reg, "a").state, TP_STATE_RESIDENT);
  EXPECT_EQ(row(reg, "b").state, TP_STATE_OFFLOADED);
  EXPECT_EQ(row(reg, "c").state, TP_STATE_RESIDENT);
  uint64_t pressure = 0;
  ASSERT_EQ(tp_registry_evictions(&pressure, reg, TP_REASON_PRESSURE, nullptr), TP_OK);
  EXPECT_EQ(pressure, 1u);
  tp_registry_destroy(reg);
  EXPECT_EQ(state.destroyed, 1);
}

TEST(RegistryCapiTest, RankVictimsWalksTheArrayByItsElementSize) {
  SizedState st;
  tp_memory_policy_vtable vt{};
  vt.struct_size = sizeof vt;
  vt.select_victims = old_select;  // rank_victims takes precedence
  vt.rank_victims = rank_sized;
  tp_registry_options* opts = nullptr;
  ASSERT_EQ(tp_registry_options_create(&opts, nullptr), TP_OK);
  ASSERT_EQ(tp_registry_options_add_policy(opts, &vt, &st, nullptr), TP_OK);
  tp_registry* reg = make_registry(nullptr, 10 * kGiB, opts);
  fill_then_acquire_c(reg);
  EXPECT_EQ(st.ranks, 1);
  EXPECT_EQ(st.old_calls, 0);
  EXPECT_EQ(st.model_size, sizeof(tp_policy_model));
  EXPECT_EQ(st.seen, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(row(reg, "a").state, TP_STATE_RESIDENT);
  EXPECT_EQ(row(reg, "b").state, TP_STATE_OFFLOADED);
  tp_registry_destroy(reg);
}

TEST(RegistryCapiTest, V01VtableIsReadOnlyToItsPrefix) {
  // A v0.1 caller's vtable is 32 bytes; whatever follows it in the caller's
  // memory is not a rank_victims and must not be called.
  SizedState st;
  tp_memory_policy_vtable vt{};
  vt.struct_size = 32;
  vt.select_victims = old_select;
  vt.rank_victims = rank_sized;  // past struct_size: garbage to the library
  tp_registry_options* opts = nullptr;
  ASSERT_EQ(tp_registry_options_create(&opts, nullptr), TP_OK);
  Error err;
  ASSERT_EQ(tp_registry_options_add_policy(opts, &vt, &st, err.out()), TP_OK) << err.message();
  tp_registry* reg = make_registry(nullptr, 10 * kGiB, opts);
  fill_then_acquire_c(reg);
  EXPECT_EQ(st.old_calls, 1);
  EXPECT_EQ(st.ranks, 0);
  tp_registry_destroy(reg);
  // Below v0.1's 32 is refused, naming the first version's size.
  ASSERT_EQ(tp_registry_options_create(&opts, nullptr), TP_OK);
  vt.struct_size = 24;
  EXPECT_EQ(tp_registry_options_add_policy(opts, &vt, &st, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_NE(err.message().find("vtable->struct_size 24 is below v0.1's 32"), std::string::npos) << err.message();
  tp_registry_options_destroy(opts);
}

TEST(RegistryCapiTest, StructsFromANewerHeaderGetTheLibrarysPrefix) {
  // A caller built against a later header passes a longer struct: the library
  // writes what it knows and leaves the rest alone.
  tp_registry* reg = make_registry();
  constexpr uint64_t kCanary = 0x5a5a5a5a5a5a5a5aull;
  struct {
    tp_stats s;
    uint64_t future[2];
  } stats{};
  stats.s.struct_size = sizeof stats;
  stats.future[0] = stats.future[1] = kCanary;
  ASSERT_EQ(tp_registry_stats(&stats.s, reg, nullptr), TP_OK);
  EXPECT_EQ(stats.s.struct_size, sizeof stats);  // the caller's, kept
  EXPECT_EQ(stats.future[0], kCanary);
  EXPECT_EQ(stats.future[1], kCanary);
  struct {
    tp_model_info info;
    uint64_t future;
  } info{};
  info.info.struct_size = sizeof info;
  info.future = kCanary;
  tp_model_list* list = nullptr;
  ASSERT_EQ(tp_registry_list(&list, reg, nullptr), TP_OK);
  ASSERT_EQ(tp_model_list_get(&info.info, list, 0, nullptr), TP_OK);
  EXPECT_STREQ(info.info.name, "a");
  EXPECT_EQ(info.future, kCanary);
  // Exactly the first version's size is enough.
  tp_model_info v01{};
  v01.struct_size = 120;
  EXPECT_EQ(tp_model_list_get(&v01, list, 0, nullptr), TP_OK);
  v01.struct_size = 119;
  Error err;
  EXPECT_EQ(tp_model_list_get(&v01, list, 0, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_NE(err.message().find("struct_size 119 is below v0.1's 120"), std::string::npos) << err.message();
  tp_model_list_free(list);
  tp_registry_destroy(reg);
}

TEST(RegistryCapiTest, EvictionsByReason) {
  tp_registry* reg = make_registry();
  ASSERT_EQ(tp_registry_preload(reg, "a", nullptr), TP_OK);
  ASSERT_EQ(tp_registry_unload(nullptr, reg, "a", TP_TIER_HOST, nullptr), TP_OK);
  tp_stats s{};
  s.struct_size = sizeof s;
  ASSERT_EQ(tp_registry_stats(&s, reg, nullptr), TP_OK);
  for (int32_t r = TP_REASON_LAZY; r < TP_REASON_SLOTS; ++r) {
    uint64_t n = 99;
    ASSERT_EQ(tp_registry_evictions(&n, reg, r, nullptr), TP_OK) << tp_reason_name(r);
    EXPECT_EQ(n, s.evictions[r]) << tp_reason_name(r);
  }
  uint64_t n = 99;
  ASSERT_EQ(tp_registry_evictions(&n, reg, TP_REASON_EXPLICIT, nullptr), TP_OK);
  EXPECT_EQ(n, 1u);
  // A reason this library does not know is refused (and has no name).
  Error err;
  n = 99;
  EXPECT_EQ(tp_registry_evictions(&n, reg, 1000, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_NE(err.message().find("reason 1000 is not a TP_REASON_*"), std::string::npos) << err.message();
  EXPECT_EQ(n, 99u);  // untouched on failure
  EXPECT_STREQ(tp_reason_name(1000), "?");
  EXPECT_EQ(tp_registry_evictions(&n, reg, -1, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_evictions(nullptr, reg, TP_REASON_LAZY, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_evictions(&n, nullptr, TP_REASON_LAZY, nullptr), TP_INVALID_ARGUMENT);
  tp_registry_destroy(reg);
}

TEST(RegistryCapiTest, DestroyWithLiveLeaseIsDeferred) {
  tp_registry* reg = make_registry();
  tp_model* lease = nullptr;
  ASSERT_EQ(tp_model_acquire(&lease, reg, "a", nullptr), TP_OK);
  tp_registry_destroy(reg);
  EXPECT_STREQ(tp_model_name(lease), "a");
  EXPECT_EQ(tp_model_device_bytes(lease), 4 * kGiB);
  tp_model_release(lease);
}

TEST(RegistryCapiTest, AdmissionFailureCarriesTheNumbers) {
  tp_registry* reg = make_registry(nullptr, 6 * kGiB, nullptr, kConfigNoWait);
  tp_model* a = nullptr;
  ASSERT_EQ(tp_model_acquire(&a, reg, "a", nullptr), TP_OK);
  tp_model* b = nullptr;
  Error err;
  ASSERT_EQ(tp_model_acquire(&b, reg, "b", err.out()), TP_RESOURCE_EXHAUSTED);
  EXPECT_EQ(b, nullptr);
  EXPECT_EQ(err.code(), TP_RESOURCE_EXHAUSTED);
  EXPECT_NE(err.message().find("cannot load 'b': needs 4.00 GiB"), std::string::npos) << err.message();
  tp_model_release(a);
  ASSERT_EQ(tp_model_acquire(&b, reg, "b", nullptr), TP_OK);  // the next request works
  tp_model_release(b);
  tp_registry_destroy(reg);
}

// Statistics by name: the device as its monitor sees it, the admission queue,
// the allocator cache; an unknown name is refused, listing the known ones.
TEST(RegistryCapiTest, StatByName) {
  tp_registry* reg = make_registry();
  tp_model* a = nullptr;
  ASSERT_EQ(tp_model_acquire(&a, reg, "a", nullptr), TP_OK);
  const std::pair<const char*, uint64_t> expected[] = {
      {"device_total_bytes", 10 * kGiB}, {"device_free_bytes", 6 * kGiB}, {"process_bytes", 4 * kGiB},
      {"other_process_bytes", 0},        {"headroom_bytes", 0},           {"admission_queue", 0},
      {"admission_queue_bytes", 0},      {"admission_cancels", 0},        {"cache_releases", 0}};
  for (const auto& [name, value] : expected) {
    uint64_t v = 99;
    ASSERT_EQ(tp_registry_stat(&v, reg, name, nullptr), TP_OK) << name;
    EXPECT_EQ(v, value) << name;
  }
  Error err;
  uint64_t v = 99;
  EXPECT_EQ(tp_registry_stat(&v, reg, "nope", err.out()), TP_INVALID_ARGUMENT);
  EXPECT_NE(err.message().find("statistic 'nope' is not one this library knows (known: admission_queue,"),
            std::string::npos)
      << err.message();
  EXPECT_EQ(v, 99u);
  EXPECT_EQ(tp_registry_stat(&v, reg, nullptr, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_stat(nullptr, reg, "admission_queue", nullptr), TP_INVALID_ARGUMENT);
  tp_model_release(a);
  tp_registry_destroy(reg);
}

TEST(RegistryCapiBadInputTest, NullsAreInvalidArguments) {
  tp_registry* reg = make_registry();
  Error err;
  tp_registry* r = nullptr;
  tp_model* m = nullptr;
  tp_model_list* l = nullptr;
  tp_registry_options* o = nullptr;
  uint32_t n = 0;
  EXPECT_EQ(tp_registry_options_create(nullptr, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_NE(err.message().find("out must not be NULL"), std::string::npos);
  EXPECT_EQ(tp_registry_options_set_preset(nullptr, "balanced", nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_options_use_simulated_device(nullptr, 1, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_options_set_background_thread(nullptr, 1, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_options_add_policy(nullptr, nullptr, nullptr, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_create_from_string(nullptr, kConfig, nullptr, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_create_from_string(&r, nullptr, nullptr, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_NE(err.message().find("config_json must not be NULL"), std::string::npos);
  EXPECT_EQ(tp_registry_create_from_file(&r, nullptr, nullptr, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(r, nullptr);
  EXPECT_EQ(tp_registry_model_count(nullptr, reg, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_model_count(&n, nullptr, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_list(nullptr, reg, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_list(&l, nullptr, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_model_list_get(nullptr, l, 0, nullptr), TP_INVALID_ARGUMENT);
  tp_model_info info{};
  info.struct_size = sizeof info;
  EXPECT_EQ(tp_model_list_get(&info, nullptr, 0, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_model_list_count(nullptr), 0u);
  EXPECT_EQ(tp_registry_preload(nullptr, "a", nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_preload(reg, nullptr, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_unload(nullptr, nullptr, "a", TP_TIER_HOST, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_unload(nullptr, reg, nullptr, TP_TIER_HOST, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_unload_all(nullptr, TP_TIER_HOST, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_tick(nullptr, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_stats(nullptr, reg, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_subscribe(nullptr, reg, nullptr, nullptr, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_subscribe(nullptr, nullptr, on_event, nullptr, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_unsubscribe(nullptr, 1, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_model_acquire(nullptr, reg, "a", nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_model_acquire(&m, nullptr, "a", nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_model_acquire(&m, reg, nullptr, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(m, nullptr);
  // NULL-safe destructors and getters.
  tp_model_release(nullptr);
  tp_model_list_free(nullptr);
  tp_registry_destroy(nullptr);
  tp_registry_options_destroy(nullptr);
  EXPECT_STREQ(tp_model_name(nullptr), "");
  EXPECT_EQ(tp_model_device_bytes(nullptr), 0u);
  (void)o;
  tp_registry_destroy(reg);
}

TEST(RegistryCapiBadInputTest, WrongHandlesAndParameters) {
  tp_registry* reg = make_registry();
  Error err;
  // A pointer of the wrong kind is detected (a freed handle cannot be, in general).
  tp_registry_options* opts = nullptr;
  ASSERT_EQ(tp_registry_options_create(&opts, nullptr), TP_OK);
  EXPECT_EQ(tp_registry_preload(reinterpret_cast<tp_registry*>(opts), "a", err.out()), TP_INVALID_ARGUMENT);
  EXPECT_NE(err.message().find("reg is not a live tp_registry"), std::string::npos) << err.message();
  EXPECT_EQ(tp_registry_options_set_preset(opts, "warp", err.out()), TP_INVALID_ARGUMENT);
  EXPECT_NE(err.message().find("unknown preset 'warp'"), std::string::npos);
  EXPECT_EQ(tp_registry_options_use_simulated_device(opts, 0, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_options_set_background_thread(opts, 7, nullptr), TP_INVALID_ARGUMENT);
  tp_memory_policy_vtable small{4, nullptr, nullptr, nullptr, nullptr};
  EXPECT_EQ(tp_registry_options_add_policy(opts, &small, nullptr, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_NE(err.message().find("struct_size 4 is below"), std::string::npos);
  // Without a simulated device the registry runs real weights, and pipeline
  // models are expanded when it is created: these have no folder on disk.
  tp_registry* r = nullptr;
  EXPECT_EQ(tp_registry_create_from_string(&r, kConfig, opts, err.out()), TP_NOT_FOUND);
  EXPECT_NE(err.message().find("model 'a': model 'org/a' is not in the Hugging Face cache"), std::string::npos)
      << err.message();
  EXPECT_EQ(tp_registry_create_from_string(&r, R"({"models": {"b": {"path": "/models/b", "pipeline_type": "sd3"}}})",
                                           opts, err.out()),
            TP_NOT_FOUND);
  EXPECT_NE(err.message().find("model 'b': model folder '/models/b' does not exist"), std::string::npos) << err.message();
  EXPECT_EQ(r, nullptr);
  // A plain model (no pipeline) fails only when it is acquired.
  ASSERT_EQ(tp_registry_create_from_string(&r, R"({"models": {"b": {"path": "/models/b", "pipeline_type": "plain"}}})",
                                           opts, err.out()),
            TP_OK)
      << err.message();
  tp_model* real = nullptr;
  EXPECT_EQ(tp_model_acquire(&real, r, "b", err.out()), TP_NOT_FOUND);
  EXPECT_NE(err.message().find("model 'b': model folder '/models/b' does not exist"), std::string::npos) << err.message();
  EXPECT_EQ(real, nullptr);
  tp_registry_destroy(r);
  r = nullptr;
  tp_registry_options_destroy(opts);

  // Unknown names.
  tp_model* m = nullptr;
  EXPECT_EQ(tp_model_acquire(&m, reg, "zz", err.out()), TP_NOT_FOUND);
  EXPECT_NE(err.message().find("model 'zz' is not configured (configured: a, b, c)"), std::string::npos);
  EXPECT_EQ(tp_registry_preload(reg, "zz", nullptr), TP_NOT_FOUND);
  EXPECT_EQ(tp_registry_unload(nullptr, reg, "zz", TP_TIER_DISK, nullptr), TP_NOT_FOUND);
  // Invalid parameters.
  EXPECT_EQ(tp_registry_unload(nullptr, reg, "a", TP_TIER_DEVICE, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_unload(nullptr, reg, "a", 99, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_unload_all(reg, -1, nullptr), TP_INVALID_ARGUMENT);
  tp_stats s{};
  s.struct_size = 8;
  EXPECT_EQ(tp_registry_stats(&s, reg, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_NE(err.message().find("set it to sizeof(tp_stats)"), std::string::npos);
  tp_model_list* list = nullptr;
  ASSERT_EQ(tp_registry_list(&list, reg, nullptr), TP_OK);
  tp_model_info info{};
  info.struct_size = sizeof info;
  EXPECT_EQ(tp_model_list_get(&info, list, 3, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_NE(err.message().find("index 3 is out of range (3 models)"), std::string::npos);
  info.struct_size = 0;
  EXPECT_EQ(tp_model_list_get(&info, list, 0, nullptr), TP_INVALID_ARGUMENT);
  tp_model_list_free(list);
  // Bad configs name the field; missing files the path.
  EXPECT_EQ(tp_registry_create_from_string(&r, R"({"models": {"a": {"path": "/x", "dtype": "fp8"}}})", nullptr,
                                           err.out()),
            TP_INVALID_ARGUMENT);
  EXPECT_NE(err.message().find("<string>: models.a.dtype: unknown dtype 'fp8'"), std::string::npos) << err.message();
  EXPECT_EQ(tp_registry_create_from_file(&r, "/nonexistent/tp.json", nullptr, err.out()), TP_NOT_FOUND);
  EXPECT_NE(err.message().find("/nonexistent/tp.json"), std::string::npos);
  EXPECT_EQ(r, nullptr);
  // Names of out-of-range enums.
  EXPECT_STREQ(tp_tier_name(7), "?");
  EXPECT_STREQ(tp_state_name(-1), "?");
  EXPECT_STREQ(tp_reason_name(TP_REASON_SLOTS), "?");
  EXPECT_STREQ(tp_reason_name(TP_REASON_UNLOAD_AFTER), "unload-after");
  // Everything still works.
  ASSERT_EQ(tp_model_acquire(&m, reg, "a", nullptr), TP_OK);
  tp_model_release(m);
  tp_registry_destroy(reg);
}

}  // namespace
