/* A caller built against the v0.1 C header, linked to today's library.
 *
 * Compiled as C99 against tests/capi/frozen/v0.1/twistedpic/tp.h (tp.h at
 * 7c04118, byte for byte) and its version.h, never against capi/include: it
 * proves that a v0.1 program keeps working as the ABI grows (struct sizes
 * checked against each struct's first version, prefixes read and written,
 * tp_stats.evictions where v0.1 put it, the v0.1 policy vtable). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "twistedpic/tp.h"

#if TP_VERSION_NUMBER != 100 || TP_REASON_SLOTS != 7
#error "frozen_v01_test.c must see the frozen v0.1 header, not capi/include"
#endif

/* The v0.1 layouts this program was "shipped" with. */
typedef char v01_policy_vtable_is_32[sizeof(tp_memory_policy_vtable) == 32 ? 1 : -1];
typedef char v01_policy_model_is_56[sizeof(tp_policy_model) == 56 ? 1 : -1];
typedef char v01_model_info_is_120[sizeof(tp_model_info) == 120 ? 1 : -1];
typedef char v01_stats_is_200[sizeof(tp_stats) == 200 ? 1 : -1];

#define GIB ((uint64_t)1 << 30)
static const uint64_t kCanary = 0x5a5a5a5a5a5a5a5aull;

static int failures = 0;
#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                     \
    }                                                                 \
  } while (0)

static const char* kConfig =
    "{\"models\": {"
    "\"a\": {\"path\": \"/models/a\", \"pipeline_type\": \"sd3\", \"size_bytes\": \"4GiB\"},"
    "\"b\": {\"path\": \"/models/b\", \"pipeline_type\": \"sd3\", \"size_bytes\": \"4GiB\"},"
    "\"c\": {\"path\": \"/models/c\", \"pipeline_type\": \"sd3\", \"size_bytes\": \"4GiB\"}},"
    "\"host_budget_bytes\": \"16GiB\"}";

struct policy_state {
  int selects;
  int destroyed;
  int bad_stride;
};

/* Ranks every evictable model, last first: a v0.1 policy walking models[i]
 * with its own 56-byte stride. The registry must evict only what it needs. */
static uint32_t rank_all_last_first(uint32_t* out, uint32_t max_out, const tp_policy_model* models, uint32_t count,
                                    uint64_t need_bytes, void* user_data) {
  struct policy_state* st = (struct policy_state*)user_data;
  uint32_t n = 0;
  uint32_t i;
  (void)need_bytes;
  ++st->selects;
  for (i = 0; i < count; ++i)
    if (models[i].name == NULL || strlen(models[i].name) != 1) st->bad_stride = 1;
  for (i = count; i-- > 0;)
    if (models[i].evictable && n < max_out) out[n++] = i;
  return n;
}

static void count_destroy(void* user_data) { ++((struct policy_state*)user_data)->destroyed; }

struct events {
  int count;
  int pressure;
};

static void on_event(const tp_event* ev, void* user_data) {
  struct events* e = (struct events*)user_data;
  ++e->count;
  if (ev->reason == TP_REASON_PRESSURE) ++e->pressure;
}

static int state_of(const tp_registry* reg, const char* name) {
  tp_model_list* list = NULL;
  uint32_t i;
  int state = -1;
  if (tp_registry_list(&list, reg, NULL) != TP_OK) return -2;
  for (i = 0; i < tp_model_list_count(list); ++i) {
    tp_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    if (tp_model_list_get(&info, list, i, NULL) == TP_OK && strcmp(info.name, name) == 0) state = info.state;
  }
  tp_model_list_free(list);
  return state;
}

int main(void) {
  tp_registry_options* opts = NULL;
  tp_registry* reg = NULL;
  tp_error* err = NULL;
  tp_model* lease = NULL;
  tp_model_list* list = NULL;
  struct policy_state policy = {0, 0, 0};
  struct events events = {0, 0};
  tp_memory_policy_vtable vt;
  uint32_t count = 0;
  int32_t sub = -1;
  const char* names[3] = {"a", "b", "c"};
  int i;
  /* A v0.1 struct followed by memory the library must never write. */
  struct {
    tp_model_info info;
    uint64_t canary;
  } row;
  struct {
    tp_stats stats;
    uint64_t canary;
  } stats;

  CHECK(tp_version_number() >= TP_VERSION_NUMBER);
  CHECK(tp_version_number() / 10000 == TP_VERSION_MAJOR);

  CHECK(tp_registry_options_create(&opts, NULL) == TP_OK);
  CHECK(tp_registry_options_use_simulated_device(opts, 10 * GIB, NULL) == TP_OK);
  CHECK(tp_registry_options_set_background_thread(opts, 0, NULL) == TP_OK);
  memset(&vt, 0, sizeof vt);
  vt.struct_size = sizeof vt; /* 32: v0.1's vtable */
  vt.select_victims = rank_all_last_first;
  vt.destroy = count_destroy;
  CHECK(tp_registry_options_add_policy(opts, &vt, &policy, &err) == TP_OK);
  if (err) fprintf(stderr, "add_policy: %s\n", tp_error_message(err));
  tp_error_free(err);
  err = NULL;
  CHECK(tp_registry_create_from_string(&reg, kConfig, opts, &err) == TP_OK);
  if (err) fprintf(stderr, "create: %s\n", tp_error_message(err));
  tp_error_free(err);
  err = NULL;
  tp_registry_options_destroy(opts);
  if (!reg) return 1;

  CHECK(tp_registry_model_count(&count, reg, NULL) == TP_OK);
  CHECK(count == 3);

  /* The model list with v0.1's tp_model_info. */
  CHECK(tp_registry_list(&list, reg, NULL) == TP_OK);
  CHECK(tp_model_list_count(list) == 3);
  for (i = 0; i < 3; ++i) {
    memset(&row, 0, sizeof row);
    row.canary = kCanary;
    row.info.struct_size = sizeof row.info;
    CHECK(tp_model_list_get(&row.info, list, (uint32_t)i, NULL) == TP_OK);
    CHECK(row.info.struct_size == sizeof row.info);
    CHECK(row.canary == kCanary);
    CHECK(row.info.name && strcmp(row.info.name, names[i]) == 0);
    CHECK(row.info.state == TP_STATE_UNLOADED);
    CHECK(row.info.tier == TP_TIER_DISK);
    CHECK(row.info.last_error && strcmp(row.info.last_error, "") == 0);
  }
  tp_model_list_free(list);

  /* Events, acquire and release; c's admission asks the v0.1 policy. */
  CHECK(tp_registry_subscribe(&sub, reg, on_event, &events, NULL) == TP_OK);
  for (i = 0; i < 3; ++i) {
    lease = NULL;
    CHECK(tp_model_acquire(&lease, reg, names[i], NULL) == TP_OK);
    CHECK(lease && strcmp(tp_model_name(lease), names[i]) == 0);
    CHECK(tp_model_device_bytes(lease) == 4 * GIB);
    tp_model_release(lease);
  }
  CHECK(policy.selects == 1);
  CHECK(policy.bad_stride == 0);
  /* The policy ranked b then a; b alone covered the need. */
  CHECK(state_of(reg, "a") == TP_STATE_RESIDENT);
  CHECK(state_of(reg, "b") == TP_STATE_OFFLOADED);
  CHECK(state_of(reg, "c") == TP_STATE_RESIDENT);
  CHECK(tp_registry_unsubscribe(reg, sub, NULL) == TP_OK);
  CHECK(events.count == 4); /* a, b, c loaded; b evicted */
  CHECK(events.pressure == 1);

  /* Stats with v0.1's tp_stats, evictions where v0.1 had them. */
  memset(&stats, 0, sizeof stats);
  stats.canary = kCanary;
  stats.stats.struct_size = sizeof stats.stats;
  CHECK(tp_registry_stats(&stats.stats, reg, NULL) == TP_OK);
  CHECK(stats.canary == kCanary);
  CHECK(stats.stats.struct_size == sizeof stats.stats);
  CHECK(stats.stats.loads == 3);
  CHECK(stats.stats.misses == 3);
  CHECK(stats.stats.evictions[TP_REASON_PRESSURE] == 1);
  CHECK(stats.stats.evictions[TP_REASON_EXPLICIT] == 0);
  CHECK(stats.stats.device_bytes == 8 * GIB);
  CHECK(stats.stats.host_bytes == 4 * GIB);

  /* A struct_size below v0.1's is still refused. */
  stats.stats.struct_size = 8;
  CHECK(tp_registry_stats(&stats.stats, reg, &err) == TP_INVALID_ARGUMENT);
  CHECK(tp_error_code(err) == TP_INVALID_ARGUMENT);
  tp_error_free(err);

  tp_registry_destroy(reg);
  CHECK(policy.destroyed == 1);
  if (failures) return 1;
  printf("ok: a v0.1 caller runs on libtwistedpic %s\n", tp_version_string());
  return 0;
}
