/* A C host of the C ABI: built with `pkg-config --cflags --libs twistedpic`
 * (run.sh), and through add_subdirectory (subdir/CMakeLists.txt). */
#include <stdio.h>
#include <string.h>

#include "twistedpic/tp.h"

#ifndef CONSUMER
#define CONSUMER "c consumer (pkg-config)"
#endif

static int fail(tp_code code, tp_error* err) {
  fprintf(stderr, "twistedpic: %s: %s\n", tp_code_name(code), tp_error_message(err));
  tp_error_free(err);
  return 1;
}

int main(void) {
  tp_error* err = NULL;
  tp_registry_options* opts = NULL;
  tp_registry* reg = NULL;
  uint32_t count = 0;
  tp_code code;

  if (strcmp(tp_version_string(), TP_VERSION_STRING) != 0) {
    fprintf(stderr, "header %s, library %s\n", TP_VERSION_STRING, tp_version_string());
    return 1;
  }
  if ((code = tp_registry_options_create(&opts, &err)) != TP_OK) return fail(code, err);
  if ((code = tp_registry_options_use_simulated_device(opts, (uint64_t)8 << 30, &err)) != TP_OK) return fail(code, err);
  code = tp_registry_create_from_string(
      &reg, "{\"models\": {\"tiny\": {\"model_id\": \"org/tiny\", \"size_bytes\": \"1GiB\"}}}", opts, &err);
  tp_registry_options_destroy(opts);
  if (code != TP_OK) return fail(code, err);
  if ((code = tp_registry_model_count(&count, reg, &err)) != TP_OK) return fail(code, err);
  tp_registry_destroy(reg);
  if (count != 1) {
    fprintf(stderr, "expected 1 model, got %u\n", (unsigned)count);
    return 1;
  }
  printf(CONSUMER ": libtwistedpic %s, SOVERSION %d, 1 model\n", tp_version_string(), TP_SOVERSION);
  return 0;
}
