/* Times tp_pipeline_generate from C, for scripts/bench_overhead.py: one
 * registry and pipeline, then COUNT generations (seed SEED + i), each timed
 * around the tp_pipeline_generate call alone. Prints one JSON line per call:
 *   {"wall_s": <clock_gettime around the call>, "total_s": <tp_result_info.total_s>}
 *
 *   bench_overhead CONFIG_JSON_FILE PIPELINE PROMPT SEED COUNT
 *
 * Built by bench_overhead.py: cc -O2 -std=c11 -I capi/include -I BUILD/generated/include
 * scripts/bench_overhead.c -L BUILD -ltwistedpic -Wl,-rpath,BUILD
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "twistedpic/tp.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
  tp_error* err = NULL;
  tp_registry* reg = NULL;
  tp_pipeline* pipeline = NULL;
  tp_request* req = NULL;
  tp_code code = TP_OK;
  int count, i;

  if (argc != 6) {
    fprintf(stderr, "usage: %s CONFIG_JSON_FILE PIPELINE PROMPT SEED COUNT\n", argv[0]);
    return 2;
  }
  count = atoi(argv[5]);
  if ((code = tp_registry_create_from_file(&reg, argv[1], NULL, &err)) != TP_OK) goto fail;
  if ((code = tp_pipeline_create(&pipeline, reg, argv[2], &err)) != TP_OK) goto fail;
  for (i = 0; i < count; ++i) {
    tp_result* result = NULL;
    tp_result_info info = {sizeof(tp_result_info), 0, 0, 0, 0, 0.0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0};
    double t0, t1;
    if ((code = tp_request_create(&req, &err)) != TP_OK) goto fail;
    if ((code = tp_request_add_prompt(req, argv[3], &err)) != TP_OK) goto fail;
    if ((code = tp_request_set_seed(req, strtoull(argv[4], NULL, 10) + (unsigned)i, &err)) != TP_OK) goto fail;
    t0 = now_s();
    code = tp_pipeline_generate(&result, pipeline, req, &err);
    t1 = now_s();
    if (code != TP_OK) goto fail;
    if ((code = tp_result_get_info(&info, result, &err)) != TP_OK) {
      tp_result_free(result);
      goto fail;
    }
    printf("{\"wall_s\": %.6f, \"total_s\": %.6f}\n", t1 - t0, info.total_s);
    fflush(stdout);
    tp_result_free(result);
    tp_request_destroy(req);
    req = NULL;
  }
  tp_pipeline_destroy(pipeline);
  tp_registry_destroy(reg);
  return 0;
fail:
  fprintf(stderr, "bench_overhead: %s: %s\n", tp_code_name(code), tp_error_message(err));
  tp_error_free(err);
  tp_request_destroy(req);
  tp_pipeline_destroy(pipeline);
  tp_registry_destroy(reg);
  return 1;
}
