/* A C host generates a picture: a registry with one pipeline (the tiny
 * default model, or the folder given), a request, progress on stderr, a PNG.
 *
 *   tp_c_generate MODEL_DIR "a red circle on a white background" SEED out.png
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "twistedpic/tp.h"

static int32_t on_progress(const tp_progress* p, void* user_data) {
  static const char* const kStages[] = {"encoding", "denoising", "decoding", "loading"};
  (void)user_data;
  if (p->stage == TP_STAGE_DENOISE)
    fprintf(stderr, "step %d/%d (%.2f s)\n", p->step, p->steps, p->elapsed_s);
  else
    fprintf(stderr, "%s %s\n", kStages[p->stage & 3], p->model);
  return 0; /* non-zero cancels */
}

static int report(tp_code code, tp_error* err) {
  fprintf(stderr, "twistedpic: %s: %s\n", tp_code_name(code), tp_error_message(err));
  tp_error_free(err);
  return 1;
}

int main(int argc, char** argv) {
  tp_error* err = NULL;
  tp_registry* reg = NULL;
  tp_pipeline* pipeline = NULL;
  tp_request* req = NULL;
  tp_result* result = NULL;
  tp_image image = {sizeof(tp_image), 0, 0, 0, NULL};
  char config[4096];
  tp_code code;
  int status = 1;

  if (argc != 5) {
    fprintf(stderr, "usage: %s MODEL_DIR PROMPT SEED OUT.png\n", argv[0]);
    return 2;
  }
  snprintf(config, sizeof config, "{\"models\": {\"default\": {\"path\": \"%s\", \"pipeline_type\": \"sd3\", \"dtype\": \"fp32\"}}}",
           argv[1]);
  if ((code = tp_registry_create_from_string(&reg, config, NULL, &err)) != TP_OK) return report(code, err);
  if ((code = tp_pipeline_create(&pipeline, reg, "default", &err)) != TP_OK) goto fail;
  if ((code = tp_request_create(&req, &err)) != TP_OK) goto fail;
  if ((code = tp_request_add_prompt(req, argv[2], &err)) != TP_OK) goto fail;
  if ((code = tp_request_set_seed(req, strtoull(argv[3], NULL, 10), &err)) != TP_OK) goto fail;
  if ((code = tp_request_set_progress(req, on_progress, NULL, &err)) != TP_OK) goto fail;
  if ((code = tp_pipeline_generate(&result, pipeline, req, &err)) != TP_OK) goto fail;
  if ((code = tp_result_get_image(&image, result, 0, &err)) != TP_OK) goto fail;
  if ((code = tp_image_write_png(&image, argv[4], &err)) != TP_OK) goto fail;
  printf("%s: %dx%d\n", argv[4], image.width, image.height);
  status = 0;
fail:
  if (status) report(code, err);
  tp_result_free(result);
  tp_request_destroy(req);
  tp_pipeline_destroy(pipeline);
  tp_registry_destroy(reg);
  return status;
}
