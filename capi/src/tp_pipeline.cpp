// C shims: pipelines, requests, results and images.
// Validate -> call C++ -> map Error. No business logic.
#include <atomic>
#include <cmath>
#include <string_view>

#include "pipeline/family.h"
#include "tp_internal.h"
#include "twistedpic/image.h"
#include "twistedpic/pipeline.h"

using tp::capi::copy_prefix;
using tp::capi::fail;
using tp::capi::kDead;
using tp::capi::kPipelineMagic;
using tp::capi::kRegistryMagic;
using tp::capi::kRequestMagic;
using tp::capi::kResultMagic;

struct tp_pipeline {
  uint32_t magic = kPipelineMagic;
  std::unique_ptr<tp::Pipeline> pipeline;
};

struct tp_request {
  uint32_t magic = kRequestMagic;
  tp::GenerateRequest request;
  std::atomic<bool> cancel{false};
  tp_progress_fn progress = nullptr;
  void* progress_user_data = nullptr;
};

struct tp_result {
  uint32_t magic = kResultMagic;
  tp::GenerateResult result;
};

namespace {

// The per-pipeline options: the keys some family reads (PipelineFamily::
// request_options; Flux's "true_cfg_scale"). A key unknown to every family is
// TP_UNIMPLEMENTED; one that the pipeline's own type does not read is refused
// by the generate call.
bool known_option(std::string_view key) { return tp::known_request_option(key); }

tp_code in_range(tp_error** out_err, const char* what, int64_t v, int64_t lo, int64_t hi) {
  if (v >= lo && v <= hi) return TP_OK;
  return fail(out_err, TP_INVALID_ARGUMENT,
              std::string(what) + " must be in " + std::to_string(lo) + ".." + std::to_string(hi) + ", not " +
                  std::to_string(v));
}

#define TP_CHECK_REQUEST(req, out_err) TP_CHECK_HANDLE(req, kRequestMagic, "tp_request", out_err)

}  // namespace

extern "C" {

tp_code tp_pipeline_create(tp_pipeline** out, tp_registry* reg, const char* name, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out, out_err);
  TP_CHECK_HANDLE(reg, kRegistryMagic, "tp_registry", out_err);
  TP_CAPI_REQUIRE(name, out_err);
  auto pipeline = tp::Pipeline::create(*reg->registry, name);
  if (!pipeline) return fail(out_err, pipeline.error());
  auto handle = std::make_unique<tp_pipeline>();
  handle->pipeline = std::move(*pipeline);
  *out = handle.release();
  return TP_OK;
  TP_CAPI_END(out_err)
}

void tp_pipeline_destroy(tp_pipeline* pipeline) {
  if (!pipeline || pipeline->magic != kPipelineMagic) return;
  pipeline->magic = kDead;
  delete pipeline;
}

const char* tp_pipeline_name(const tp_pipeline* pipeline) {
  return pipeline && pipeline->magic == kPipelineMagic ? pipeline->pipeline->name().c_str() : "";
}

const char* tp_pipeline_type(const tp_pipeline* pipeline) {
  return pipeline && pipeline->magic == kPipelineMagic ? pipeline->pipeline->pipeline_type().c_str() : "";
}

tp_code tp_pipeline_sizes(int32_t* out_width, int32_t* out_height, int32_t* out_multiple, const tp_pipeline* pipeline,
                          tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_HANDLE(pipeline, kPipelineMagic, "tp_pipeline", out_err);
  if (out_width) *out_width = pipeline->pipeline->default_width();
  if (out_height) *out_height = pipeline->pipeline->default_height();
  if (out_multiple) *out_multiple = pipeline->pipeline->size_multiple();
  return TP_OK;
  TP_CAPI_END(out_err)
}

// ---- requests ----------------------------------------------------------------

tp_code tp_request_create(tp_request** out, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out, out_err);
  *out = new tp_request();
  return TP_OK;
  TP_CAPI_END(out_err)
}

void tp_request_destroy(tp_request* req) {
  if (!req || req->magic != kRequestMagic) return;
  req->magic = kDead;
  delete req;
}

tp_code tp_request_add_prompt(tp_request* req, const char* prompt, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_REQUEST(req, out_err);
  TP_CAPI_REQUIRE(prompt, out_err);
  req->request.prompts.emplace_back(prompt);
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_request_add_negative_prompt(tp_request* req, const char* negative_prompt, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_REQUEST(req, out_err);
  TP_CAPI_REQUIRE(negative_prompt, out_err);
  req->request.negative_prompts.emplace_back(negative_prompt);
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_request_clear_prompts(tp_request* req, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_REQUEST(req, out_err);
  req->request.prompts.clear();
  req->request.negative_prompts.clear();
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_request_set_images_per_prompt(tp_request* req, int32_t count, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_REQUEST(req, out_err);
  if (tp_code c = in_range(out_err, "images_per_prompt", count, 1, tp::kMaxImagesPerCall)) return c;
  req->request.images_per_prompt = count;
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_request_set_size(tp_request* req, int32_t width, int32_t height, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_REQUEST(req, out_err);
  if (tp_code c = in_range(out_err, "width", width, 0, tp::kMaxImageSide)) return c;
  if (tp_code c = in_range(out_err, "height", height, 0, tp::kMaxImageSide)) return c;
  req->request.width = width;
  req->request.height = height;
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_request_set_steps(tp_request* req, int32_t steps, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_REQUEST(req, out_err);
  if (tp_code c = in_range(out_err, "steps", steps, 0, tp::kMaxSteps)) return c;
  req->request.steps = steps;
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_request_set_guidance(tp_request* req, double guidance_scale, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_REQUEST(req, out_err);
  if (std::isnan(guidance_scale)) {
    req->request.guidance_scale.reset();
  } else if (!std::isfinite(guidance_scale)) {
    return fail(out_err, TP_INVALID_ARGUMENT, "guidance_scale must be a finite number (or NaN for the model's default)");
  } else {
    req->request.guidance_scale = guidance_scale;
  }
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_request_set_seed(tp_request* req, uint64_t seed, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_REQUEST(req, out_err);
  req->request.seed = seed;
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_request_set_max_sequence_length(tp_request* req, int32_t tokens, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_REQUEST(req, out_err);
  if (tp_code c = in_range(out_err, "max_sequence_length", tokens, 1, tp::kMaxSequenceLength)) return c;
  req->request.max_sequence_length = tokens;
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_request_set_option(tp_request* req, const char* key, const char* value, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_REQUEST(req, out_err);
  TP_CAPI_REQUIRE(key, out_err);
  TP_CAPI_REQUIRE(value, out_err);
  if (!known_option(key))
    return fail(out_err, TP_UNIMPLEMENTED, std::string("option '") + key + "' is not supported by any pipeline type");
  req->request.options[key] = value;
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_request_set_progress(tp_request* req, tp_progress_fn fn, void* user_data, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CHECK_REQUEST(req, out_err);
  req->progress = fn;
  req->progress_user_data = user_data;
  return TP_OK;
  TP_CAPI_END(out_err)
}

void tp_request_cancel(tp_request* req) {
  if (req && req->magic == kRequestMagic) req->cancel.store(true, std::memory_order_relaxed);
}

// ---- generation --------------------------------------------------------------

tp_code tp_pipeline_generate(tp_result** out, tp_pipeline* pipeline, tp_request* req, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out, out_err);
  TP_CHECK_HANDLE(pipeline, kPipelineMagic, "tp_pipeline", out_err);
  TP_CHECK_REQUEST(req, out_err);
  tp::GenerateRequest request = req->request;
  request.cancel = &req->cancel;
  if (tp_progress_fn fn = req->progress) {
    void* user_data = req->progress_user_data;
    request.on_progress = [fn, user_data](const tp::StepProgress& p, std::string_view model) {
      const std::string name(model);
      tp_progress progress{sizeof(tp_progress), static_cast<int32_t>(p.stage), p.step, p.steps, p.elapsed_s,
                           name.c_str()};
      return fn(&progress, user_data) == 0;
    };
  }
  auto generated = pipeline->pipeline->generate(request);
  if (!generated) return fail(out_err, generated.error());
  auto result = std::make_unique<tp_result>();
  result->result = std::move(*generated);
  *out = result.release();
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_result_get_info(tp_result_info* out, const tp_result* result, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out, out_err);
  TP_CHECK_HANDLE(result, kResultMagic, "tp_result", out_err);
  TP_CHECK_STRUCT_SIZE(out, tp_result_info, out_err);
  const tp::GenerateResult& r = result->result;
  tp_result_info info{};
  info.struct_size = sizeof(tp_result_info);
  info.image_count = static_cast<uint32_t>(r.images.size());
  info.width = r.width;
  info.height = r.height;
  info.steps = r.steps;
  info.guidance_scale = r.guidance_scale;
  info.seed = r.seed;
  info.encode_s = r.timings.encode_s;
  info.denoise_s = r.timings.denoise_s;
  info.decode_s = r.timings.decode_s;
  info.acquire_s = r.timings.acquire_s;
  info.total_s = r.timings.total_s;
  info.warning_count = static_cast<uint32_t>(r.warnings.size());
  copy_prefix(out, info);
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_result_get_image(tp_image* out, const tp_result* result, uint32_t index, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out, out_err);
  TP_CHECK_HANDLE(result, kResultMagic, "tp_result", out_err);
  TP_CHECK_STRUCT_SIZE(out, tp_image, out_err);
  const auto& images = result->result.images;
  if (index >= images.size())
    return fail(out_err, TP_INVALID_ARGUMENT,
                "index " + std::to_string(index) + " is out of range (" + std::to_string(images.size()) + " images)");
  const tp::Image& img = images[index];
  tp_image image{sizeof(tp_image), img.width, img.height, img.width * 3, img.rgb.data()};
  copy_prefix(out, image);
  return TP_OK;
  TP_CAPI_END(out_err)
}

const char* tp_result_warning(const tp_result* result, uint32_t index) {
  if (!result || result->magic != kResultMagic || index >= result->result.warnings.size()) return "";
  return result->result.warnings[index].c_str();
}

void tp_result_free(tp_result* result) {
  if (!result || result->magic != kResultMagic) return;
  result->magic = kDead;
  delete result;
}

}  // extern "C"

namespace {

// Every TP_STAGE_* equals its tp::Stage.
static_assert(TP_STAGE_ENCODE == static_cast<int32_t>(tp::Stage::kEncode));
static_assert(TP_STAGE_DENOISE == static_cast<int32_t>(tp::Stage::kDenoise));
static_assert(TP_STAGE_DECODE == static_cast<int32_t>(tp::Stage::kDecode));
static_assert(TP_STAGE_WAITING == static_cast<int32_t>(tp::Stage::kWaiting));

// A caller's tp_image as a packed tp::Image (a copy: the stride may pad rows).
// Only the caller's prefix (struct_size bytes, at least v0.2's) is read.
tp::Expected<tp::Image> packed(const tp_image* in) {
  if (in->struct_size < tp::capi::FirstVersion<tp_image>::size)
    return tp::invalid_argument(tp::capi::struct_size_message<tp_image>("image", "tp_image", in->struct_size));
  const tp_image prefix = tp::capi::read_prefix(in);
  const tp_image* image = &prefix;
  if (image->width <= 0 || image->height <= 0 || image->width > tp::kMaxImageSide ||
      image->height > tp::kMaxImageSide)
    return tp::invalid_argument("image is " + std::to_string(image->width) + "x" + std::to_string(image->height) +
                                "; each side must be in 1.." + std::to_string(tp::kMaxImageSide));
  if (image->stride < image->width * 3)
    return tp::invalid_argument("image->stride " + std::to_string(image->stride) + " is below width * 3 (" +
                                std::to_string(image->width * 3) + ")");
  if (!image->pixels) return tp::invalid_argument("image->pixels must not be NULL");
  tp::Image out;
  out.width = image->width;
  out.height = image->height;
  const size_t row = static_cast<size_t>(image->width) * 3;
  out.rgb.resize(row * image->height);
  for (int32_t y = 0; y < image->height; ++y)
    std::memcpy(out.rgb.data() + y * row, image->pixels + static_cast<size_t>(y) * image->stride, row);
  return out;
}

}  // namespace

extern "C" {

tp_code tp_image_write_png(const tp_image* image, const char* path, tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(image, out_err);
  TP_CAPI_REQUIRE(path, out_err);
  auto img = packed(image);
  if (!img) return fail(out_err, img.error());
  if (auto st = tp::write_png(*img, path); !st) return fail(out_err, st.error());
  return TP_OK;
  TP_CAPI_END(out_err)
}

tp_code tp_image_encode_png(size_t* out_size, uint8_t* buffer, size_t capacity, const tp_image* image,
                            tp_error** out_err) {
  TP_CAPI_BEGIN
  TP_CAPI_REQUIRE(out_size, out_err);
  TP_CAPI_REQUIRE(image, out_err);
  if (capacity > 0) TP_CAPI_REQUIRE(buffer, out_err);
  auto img = packed(image);
  if (!img) return fail(out_err, img.error());
  auto png = tp::encode_png(*img);
  if (!png) return fail(out_err, png.error());
  *out_size = png->size();
  if (capacity < png->size())
    return fail(out_err, TP_RESOURCE_EXHAUSTED,
                "the PNG takes " + std::to_string(png->size()) + " bytes; the buffer holds " + std::to_string(capacity));
  std::memcpy(buffer, png->data(), png->size());
  return TP_OK;
  TP_CAPI_END(out_err)
}

}  // extern "C"
