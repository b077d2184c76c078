/* A C host: creates a registry on a simulated device, uses a model, and
 * prints the registry's table and its residency events. */
#include <inttypes.h>
#include <stdio.h>

#include "twistedpic/tp.h"

static const char* kConfig =
    "{\"preset\": \"max_gpu_availability\","
    " \"models\": {"
    "   \"sd35_large\": {\"model_id\": \"stabilityai/stable-diffusion-3.5-large\", \"size_bytes\": \"16GiB\"},"
    "   \"sd35_medium\": {\"model_id\": \"stabilityai/stable-diffusion-3.5-medium\", \"size_bytes\": \"5GiB\"}}}";

static void on_event(const tp_event* ev, void* user_data) {
  (void)user_data;
  printf("event: %s %s -> %s (%s), %.1f GiB\n", ev->model, tp_tier_name(ev->from), tp_tier_name(ev->to),
         tp_reason_name(ev->reason), (double)ev->bytes / (1 << 30));
}

static int report(tp_code code, tp_error* err) {
  fprintf(stderr, "twistedpic: %s: %s\n", tp_code_name(code), tp_error_message(err));
  tp_error_free(err);
  return 1;
}

int main(void) {
  tp_error* err = NULL;
  tp_registry_options* opts = NULL;
  tp_registry* reg = NULL;
  tp_model* lease = NULL;
  tp_model_list* list = NULL;
  tp_code code;
  uint32_t i;

  if ((code = tp_registry_options_create(&opts, &err)) != TP_OK) return report(code, err);
  if ((code = tp_registry_options_use_simulated_device(opts, (uint64_t)24 << 30, &err)) != TP_OK) return report(code, err);
  code = tp_registry_create_from_string(&reg, kConfig, opts, &err);
  tp_registry_options_destroy(opts);
  if (code != TP_OK) return report(code, err);
  tp_registry_subscribe(NULL, reg, on_event, NULL, NULL);

  if ((code = tp_model_acquire(&lease, reg, "sd35_large", &err)) != TP_OK) return report(code, err);
  printf("leased %s: %" PRIu64 " bytes on the device\n", tp_model_name(lease), tp_model_device_bytes(lease));
  tp_model_release(lease); /* max_gpu_availability: back to the pinned host tier */

  if ((code = tp_registry_list(&list, reg, &err)) != TP_OK) return report(code, err);
  printf("%-12s %-10s %-6s %12s %12s\n", "model", "state", "tier", "device", "host");
  for (i = 0; i < tp_model_list_count(list); ++i) {
    tp_model_info info;
    info.struct_size = sizeof info;
    if (tp_model_list_get(&info, list, i, NULL) != TP_OK) continue;
    printf("%-12s %-10s %-6s %12" PRIu64 " %12" PRIu64 "\n", info.name, tp_state_name(info.state),
           tp_tier_name(info.tier), info.device_bytes, info.host_bytes);
  }
  tp_model_list_free(list);
  tp_registry_destroy(reg);
  return 0;
}
