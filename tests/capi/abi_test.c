/* The layouts of tp.h's transparent structs, frozen per version (x86-64 LP64).
 * A change here is an ABI break: append fields, bump the version, and record
 * it in docs/capi-changelog.md. */
#include <stddef.h>

#include "twistedpic/tp.h"

#define TP_ABI(cond) _Static_assert(cond, #cond)

/* tp_policy_model, end of v0.1 */
TP_ABI(offsetof(tp_policy_model, name) == 0);
TP_ABI(offsetof(tp_policy_model, state) == 8);
TP_ABI(offsetof(tp_policy_model, tier) == 12);
TP_ABI(offsetof(tp_policy_model, device_bytes) == 16);
TP_ABI(offsetof(tp_policy_model, host_bytes) == 24);
TP_ABI(offsetof(tp_policy_model, leases) == 32);
TP_ABI(offsetof(tp_policy_model, pinned) == 36);
TP_ABI(offsetof(tp_policy_model, priority) == 40);
TP_ABI(offsetof(tp_policy_model, evictable) == 44);
TP_ABI(offsetof(tp_policy_model, idle_seconds) == 48);
TP_ABI(sizeof(tp_policy_model) == 56);

/* tp_memory_policy_vtable: v0.1 ended at 32 bytes (still accepted) */
TP_ABI(offsetof(tp_memory_policy_vtable, struct_size) == 0);
TP_ABI(offsetof(tp_memory_policy_vtable, select_victims) == 8);
TP_ABI(offsetof(tp_memory_policy_vtable, on_access) == 16);
TP_ABI(offsetof(tp_memory_policy_vtable, destroy) == 24);
/* end of v0.1 */
TP_ABI(offsetof(tp_memory_policy_vtable, rank_victims) == 32);
TP_ABI(sizeof(tp_memory_policy_vtable) == 40);
/* end of v0.2 */

/* tp_model_info, end of v0.1 */
TP_ABI(offsetof(tp_model_info, struct_size) == 0);
TP_ABI(offsetof(tp_model_info, name) == 8);
TP_ABI(offsetof(tp_model_info, source) == 16);
TP_ABI(offsetof(tp_model_info, pipeline_type) == 24);
TP_ABI(offsetof(tp_model_info, dtype) == 32);
TP_ABI(offsetof(tp_model_info, state) == 40);
TP_ABI(offsetof(tp_model_info, tier) == 44);
TP_ABI(offsetof(tp_model_info, device_bytes) == 48);
TP_ABI(offsetof(tp_model_info, host_bytes) == 56);
TP_ABI(offsetof(tp_model_info, leases) == 64);
TP_ABI(offsetof(tp_model_info, pinned) == 68);
TP_ABI(offsetof(tp_model_info, priority) == 72);
TP_ABI(offsetof(tp_model_info, last_use_age_s) == 80);
TP_ABI(offsetof(tp_model_info, expires_in_s) == 88);
TP_ABI(offsetof(tp_model_info, load_count) == 96);
TP_ABI(offsetof(tp_model_info, last_load_ms) == 104);
TP_ABI(offsetof(tp_model_info, last_error) == 112);
/* end of v0.1 (120 bytes, still accepted) */
TP_ABI(offsetof(tp_model_info, device) == 120);
TP_ABI(sizeof(tp_model_info) == 128);
/* end of v0.2 */

/* tp_stats, end of v0.1 */
TP_ABI(offsetof(tp_stats, struct_size) == 0);
TP_ABI(offsetof(tp_stats, hits) == 8);
TP_ABI(offsetof(tp_stats, evictions) == 64);
TP_ABI(TP_REASON_SLOTS == 7); /* frozen: tp_stats.evictions never grows */
TP_ABI(offsetof(tp_stats, bytes_to_device) == 120);
TP_ABI(offsetof(tp_stats, host_bytes) == 160);
TP_ABI(offsetof(tp_stats, load_ms_p50) == 168);
TP_ABI(offsetof(tp_stats, reload_ms_p95) == 192);
TP_ABI(sizeof(tp_stats) == 200);

/* tp_event, end of v0.1 */
TP_ABI(offsetof(tp_event, struct_size) == 0);
TP_ABI(offsetof(tp_event, model) == 8);
TP_ABI(offsetof(tp_event, from) == 16);
TP_ABI(offsetof(tp_event, to) == 20);
TP_ABI(offsetof(tp_event, reason) == 24);
TP_ABI(offsetof(tp_event, failed) == 28);
TP_ABI(offsetof(tp_event, bytes) == 32);
TP_ABI(offsetof(tp_event, ms) == 40);
TP_ABI(offsetof(tp_event, bytes_returned) == 48);
TP_ABI(offsetof(tp_event, error) == 56);
TP_ABI(sizeof(tp_event) == 64);
/* tp_progress, end of v0.2 */
TP_ABI(offsetof(tp_progress, stage) == 4);
TP_ABI(offsetof(tp_progress, step) == 8);
TP_ABI(offsetof(tp_progress, steps) == 12);
TP_ABI(offsetof(tp_progress, elapsed_s) == 16);
TP_ABI(offsetof(tp_progress, model) == 24);
TP_ABI(sizeof(tp_progress) == 32);
/* tp_image, end of v0.2 */
TP_ABI(offsetof(tp_image, width) == 4);
TP_ABI(offsetof(tp_image, height) == 8);
TP_ABI(offsetof(tp_image, stride) == 12);
TP_ABI(offsetof(tp_image, pixels) == 16);
TP_ABI(sizeof(tp_image) == 24);
/* tp_result_info, end of v0.2 */
TP_ABI(offsetof(tp_result_info, image_count) == 4);
TP_ABI(offsetof(tp_result_info, steps) == 16);
TP_ABI(offsetof(tp_result_info, guidance_scale) == 24);
TP_ABI(offsetof(tp_result_info, seed) == 32);
TP_ABI(offsetof(tp_result_info, total_s) == 72);
TP_ABI(offsetof(tp_result_info, warning_count) == 80);
TP_ABI(sizeof(tp_result_info) == 88);
/* tp_plan_info, end of v0.2 */
TP_ABI(offsetof(tp_plan_info, fits) == 4);
TP_ABI(offsetof(tp_plan_info, from) == 12);
TP_ABI(offsetof(tp_plan_info, bytes_to_move) == 16);
TP_ABI(offsetof(tp_plan_info, eviction_count) == 48);
TP_ABI(offsetof(tp_plan_info, explanation) == 56);
TP_ABI(sizeof(tp_plan_info) == 64);
/* tp_device_info, end of v0.2 */
TP_ABI(offsetof(tp_device_info, struct_size) == 0);
TP_ABI(offsetof(tp_device_info, name) == 8);
TP_ABI(offsetof(tp_device_info, total_bytes) == 16);
TP_ABI(offsetof(tp_device_info, free_bytes) == 24);
TP_ABI(offsetof(tp_device_info, process_bytes) == 32);
TP_ABI(offsetof(tp_device_info, other_process_bytes) == 40);
TP_ABI(offsetof(tp_device_info, headroom_bytes) == 48);
TP_ABI(offsetof(tp_device_info, budget_bytes) == 56);
TP_ABI(offsetof(tp_device_info, held_bytes) == 64);
TP_ABI(offsetof(tp_device_info, peak_bytes) == 72);
TP_ABI(offsetof(tp_device_info, reserved_bytes) == 80);
TP_ABI(offsetof(tp_device_info, scratch_bytes) == 88);
TP_ABI(offsetof(tp_device_info, admission_queue) == 96);
TP_ABI(offsetof(tp_device_info, resident_models) == 104);
TP_ABI(sizeof(tp_device_info) == 112);

int tp_abi_checked(void);
int tp_abi_checked(void) { return 1; }
