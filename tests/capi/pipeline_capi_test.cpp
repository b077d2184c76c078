// The C ABI's generation on the shipped default model (models/tiny-sd3):
// pipelines, requests, progress, cancellation, results, PNG, plans, threads,
// and bad input. Compiled as C++ against tp.h only.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "support/capi_error.h"
#include "twistedpic/tp.h"

namespace {

using ::testing::HasSubstr;

using Error = CapiError;

std::string config() {
  return std::string(R"({"models": {"tiny": {"path": ")") + TP_DEFAULT_MODEL_DIR + R"(", "pipeline_type": "sd3"}}})";
}

struct Fixture {
  tp_registry* reg = nullptr;
  tp_pipeline* pipeline = nullptr;
  Fixture() {
    Error err;
    EXPECT_EQ(tp_registry_create_from_string(&reg, config().c_str(), nullptr, err.out()), TP_OK) << err.message();
    EXPECT_EQ(tp_pipeline_create(&pipeline, reg, "tiny", err.out()), TP_OK) << err.message();
  }
  ~Fixture() {
    tp_pipeline_destroy(pipeline);
    tp_registry_destroy(reg);
  }
};

tp_request* request(const char* prompt, uint64_t seed, int32_t steps = 4) {
  tp_request* req = nullptr;
  EXPECT_EQ(tp_request_create(&req, nullptr), TP_OK);
  EXPECT_EQ(tp_request_add_prompt(req, prompt, nullptr), TP_OK);
  EXPECT_EQ(tp_request_set_seed(req, seed, nullptr), TP_OK);
  EXPECT_EQ(tp_request_set_steps(req, steps, nullptr), TP_OK);
  return req;
}

std::vector<uint8_t> pixels(const tp_result* result, uint32_t index = 0) {
  tp_image img{};
  img.struct_size = sizeof img;
  EXPECT_EQ(tp_result_get_image(&img, result, index, nullptr), TP_OK);
  return std::vector<uint8_t>(img.pixels, img.pixels + static_cast<size_t>(img.stride) * img.height);
}

std::vector<uint8_t> generate(tp_pipeline* pipeline, const char* prompt, uint64_t seed) {
  tp_request* req = request(prompt, seed);
  tp_result* result = nullptr;
  Error err;
  EXPECT_EQ(tp_pipeline_generate(&result, pipeline, req, err.out()), TP_OK) << err.message();
  std::vector<uint8_t> out = result ? pixels(result) : std::vector<uint8_t>();
  tp_result_free(result);
  tp_request_destroy(req);
  return out;
}

TEST(PipelineCapiTest, ExpandsPipelinesAsTheCppApiDoes) {
  Fixture f;
  uint32_t count = 0;
  ASSERT_EQ(tp_registry_model_count(&count, f.reg, nullptr), TP_OK);
  EXPECT_EQ(count, 4u);  // two CLIPs, the transformer, the VAE: tiny-sd3 has no T5
  tp_model_list* info = nullptr;
  Error err;
  ASSERT_EQ(tp_registry_info(&info, f.reg, "tiny/transformer", err.out()), TP_OK) << err.message();
  tp_model_info row{};
  row.struct_size = sizeof row;
  ASSERT_EQ(tp_model_list_get(&row, info, 0, nullptr), TP_OK);
  EXPECT_STREQ(row.name, "tiny/transformer");
  EXPECT_STREQ(row.pipeline_type, "sd3:transformer");
  EXPECT_EQ(row.state, TP_STATE_UNLOADED);
  tp_model_list_free(info);
  EXPECT_EQ(tp_registry_info(&info, f.reg, "nope", err.out()), TP_NOT_FOUND);
  EXPECT_THAT(err.message(), HasSubstr("nope"));

  EXPECT_STREQ(tp_pipeline_name(f.pipeline), "tiny");
  EXPECT_STREQ(tp_pipeline_type(f.pipeline), "sd3");
  int32_t w = 0, h = 0, multiple = 0;
  ASSERT_EQ(tp_pipeline_sizes(&w, &h, &multiple, f.pipeline, nullptr), TP_OK);
  EXPECT_EQ(w, 32);
  EXPECT_EQ(h, 32);
  EXPECT_EQ(multiple, 8);
}

TEST(PipelineCapiTest, GeneratesWithProgressAndTheSettingsThatRan) {
  Fixture f;
  tp_request* req = request("a red circle on a white background", 7, 5);
  struct Seen {
    std::vector<int32_t> stages, steps;
  } seen;
  ASSERT_EQ(tp_request_set_progress(
                req,
                [](const tp_progress* p, void* user) -> int32_t {
                  auto* s = static_cast<Seen*>(user);
                  EXPECT_GE(p->struct_size, sizeof(tp_progress));
                  s->stages.push_back(p->stage);
                  if (p->stage == TP_STAGE_DENOISE) s->steps.push_back(p->step);
                  if (p->stage == TP_STAGE_WAITING) {
                    EXPECT_THAT(p->model, HasSubstr("tiny/"));
                  }
                  return 0;
                },
                &seen, nullptr),
            TP_OK);
  tp_result* result = nullptr;
  Error err;
  ASSERT_EQ(tp_pipeline_generate(&result, f.pipeline, req, err.out()), TP_OK) << err.message();
  EXPECT_EQ(seen.steps, (std::vector<int32_t>{1, 2, 3, 4, 5}));
  ASSERT_FALSE(seen.stages.empty());
  EXPECT_EQ(seen.stages.front(), TP_STAGE_ENCODE);
  const auto decode = std::find(seen.stages.begin(), seen.stages.end(), TP_STAGE_DECODE);
  ASSERT_NE(decode, seen.stages.end());
  EXPECT_EQ(std::count(decode, seen.stages.end(), TP_STAGE_DENOISE), 0) << "decoding comes after every step";
  EXPECT_NE(std::find(seen.stages.begin(), seen.stages.end(), TP_STAGE_WAITING), seen.stages.end())
      << "the first call loads every network";

  tp_result_info info{};
  info.struct_size = sizeof info;
  ASSERT_EQ(tp_result_get_info(&info, result, nullptr), TP_OK);
  EXPECT_EQ(info.image_count, 1u);
  EXPECT_EQ(info.width, 32);
  EXPECT_EQ(info.height, 32);
  EXPECT_EQ(info.steps, 5);
  EXPECT_TRUE(std::isfinite(info.guidance_scale));  // the model's default, filled in
  EXPECT_EQ(info.seed, 7u);
  EXPECT_GT(info.total_s, 0);
  EXPECT_EQ(info.warning_count, 0u);
  EXPECT_STREQ(tp_result_warning(result, 0), "");

  tp_image img{};
  img.struct_size = sizeof img;
  ASSERT_EQ(tp_result_get_image(&img, result, 0, nullptr), TP_OK);
  EXPECT_EQ(img.width, 32);
  EXPECT_EQ(img.stride, 32 * 3);
  // Not a constant image.
  EXPECT_NE(std::count(img.pixels, img.pixels + 32 * 32 * 3, img.pixels[0]), 32 * 32 * 3);
  EXPECT_EQ(tp_result_get_image(&img, result, 1, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_THAT(err.message(), HasSubstr("out of range"));

  // Nothing stays leased.
  tp_model_list* list = nullptr;
  ASSERT_EQ(tp_registry_list(&list, f.reg, nullptr), TP_OK);
  for (uint32_t i = 0; i < tp_model_list_count(list); ++i) {
    tp_model_info row{};
    row.struct_size = sizeof row;
    ASSERT_EQ(tp_model_list_get(&row, list, i, nullptr), TP_OK);
    EXPECT_EQ(row.leases, 0u) << row.name;
  }
  tp_model_list_free(list);
  tp_result_free(result);
  tp_request_destroy(req);
}

TEST(PipelineCapiTest, SameSeedSameBytesAndPngsAgree) {
  Fixture f;
  const std::vector<uint8_t> a = generate(f.pipeline, "a blue square on a yellow background", 3);
  const std::vector<uint8_t> b = generate(f.pipeline, "a blue square on a yellow background", 3);
  const std::vector<uint8_t> c = generate(f.pipeline, "a blue square on a yellow background", 4);
  ASSERT_EQ(a.size(), 32u * 32 * 3);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);

  tp_image img{sizeof(tp_image), 32, 32, 32 * 3, a.data()};
  size_t size = 0;
  Error err;
  EXPECT_EQ(tp_image_encode_png(&size, nullptr, 0, &img, err.out()), TP_RESOURCE_EXHAUSTED);
  ASSERT_GT(size, 8u);
  std::vector<uint8_t> png(size);
  ASSERT_EQ(tp_image_encode_png(&size, png.data(), png.size(), &img, err.out()), TP_OK) << err.message();
  EXPECT_EQ(std::memcmp(png.data(), "\x89PNG", 4), 0);
  const std::string path = ::testing::TempDir() + "/capi_image.png";
  ASSERT_EQ(tp_image_write_png(&img, path.c_str(), err.out()), TP_OK) << err.message();
  std::ifstream file(path, std::ios::binary);
  const std::vector<uint8_t> written((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_EQ(written, png);

  // A padded stride is packed before encoding: the same PNG.
  std::vector<uint8_t> padded(32 * 100);
  for (int y = 0; y < 32; ++y) std::memcpy(padded.data() + y * 100, a.data() + y * 96, 96);
  tp_image strided{sizeof(tp_image), 32, 32, 100, padded.data()};
  std::vector<uint8_t> png2(size);
  ASSERT_EQ(tp_image_encode_png(&size, png2.data(), png2.size(), &strided, nullptr), TP_OK);
  EXPECT_EQ(png2, png);
  EXPECT_EQ(tp_image_write_png(&img, "/nonexistent/dir/x.png", err.out()), TP_NOT_FOUND);
  EXPECT_THAT(err.message(), HasSubstr("/nonexistent/dir/x.png"));
}

TEST(PipelineCapiTest, CancelsMidWayAndTheNextCallWorks) {
  Fixture f;
  const std::vector<uint8_t> expected = generate(f.pipeline, "a green triangle on a black background", 11);
  for (bool from_callback : {true, false}) {
    SCOPED_TRACE(from_callback ? "callback returns non-zero" : "tp_request_cancel");
    tp_request* req = request("a green triangle on a black background", 11, 6);
    struct Ctx {
      tp_request* req;
      bool from_callback;
      int steps = 0;
    } ctx{req, from_callback};
    tp_request_set_progress(
        req,
        [](const tp_progress* p, void* user) -> int32_t {
          auto* c = static_cast<Ctx*>(user);
          if (p->stage != TP_STAGE_DENOISE) return 0;
          ++c->steps;
          if (p->step < 2) return 0;
          if (c->from_callback) return 1;
          tp_request_cancel(c->req);
          return 0;
        },
        &ctx, nullptr);
    tp_result* result = nullptr;
    Error err;
    EXPECT_EQ(tp_pipeline_generate(&result, f.pipeline, req, err.out()), TP_CANCELLED) << err.message();
    EXPECT_EQ(result, nullptr);
    EXPECT_LE(ctx.steps, 3);
    tp_request_destroy(req);
    EXPECT_EQ(generate(f.pipeline, "a green triangle on a black background", 11), expected);
  }
}

TEST(PipelineCapiTest, ThreadsGenerateAtOnceOnOnePipelineAndOnTwo) {
  Fixture f;
  const char* prompts[] = {"a red circle on a white background", "an orange circle on a purple background"};
  const std::vector<uint8_t> want0 = generate(f.pipeline, prompts[0], 21);
  const std::vector<uint8_t> want1 = generate(f.pipeline, prompts[1], 22);
  tp_pipeline* second = nullptr;
  ASSERT_EQ(tp_pipeline_create(&second, f.reg, "tiny", nullptr), TP_OK);
  for (tp_pipeline* other : {f.pipeline, second}) {
    std::vector<uint8_t> got0, got1;
    std::thread t0([&] { got0 = generate(f.pipeline, prompts[0], 21); });
    std::thread t1([&] { got1 = generate(other, prompts[1], 22); });
    t0.join();
    t1.join();
    EXPECT_EQ(got0, want0);
    EXPECT_EQ(got1, want1);
  }
  tp_pipeline_destroy(second);
}

TEST(PipelineCapiTest, PlansALoad) {
  Fixture f;
  tp_plan* plan = nullptr;
  Error err;
  ASSERT_EQ(tp_registry_plan(&plan, f.reg, "tiny/vae", err.out()), TP_OK) << err.message();
  tp_plan_info info{};
  info.struct_size = sizeof info;
  ASSERT_EQ(tp_plan_get_info(&info, plan, nullptr), TP_OK);
  EXPECT_EQ(info.fits, 1);
  EXPECT_EQ(info.resident, 0);
  EXPECT_EQ(info.from, TP_TIER_DISK);
  EXPECT_GT(info.needed_bytes, 0u);
  EXPECT_EQ(info.eviction_count, 0u);
  EXPECT_STRNE(info.explanation, "");
  EXPECT_STREQ(tp_plan_eviction(plan, 0), "");
  tp_plan_free(plan);
  EXPECT_EQ(tp_registry_plan(&plan, f.reg, "nope", err.out()), TP_NOT_FOUND);
}

TEST(PipelineCapiTest, BadInputGetsACodeAndAMessageThatNamesIt) {
  Fixture f;
  Error err;
  tp_pipeline* p = nullptr;
  EXPECT_EQ(tp_pipeline_create(&p, f.reg, "nope", err.out()), TP_NOT_FOUND);
  EXPECT_THAT(err.message(), HasSubstr("nope"));
  EXPECT_EQ(tp_pipeline_create(&p, f.reg, "tiny/vae", err.out()), TP_INVALID_ARGUMENT);
  EXPECT_THAT(err.message(), HasSubstr("is the 'vae' network of a sd3 pipeline"));
  EXPECT_EQ(tp_pipeline_create(nullptr, f.reg, "tiny", err.out()), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_pipeline_create(&p, nullptr, "tiny", err.out()), TP_INVALID_ARGUMENT);

  tp_request* req = nullptr;
  ASSERT_EQ(tp_request_create(&req, nullptr), TP_OK);
  tp_result* result = nullptr;
  EXPECT_EQ(tp_pipeline_generate(&result, f.pipeline, req, err.out()), TP_INVALID_ARGUMENT);  // no prompt
  EXPECT_THAT(err.message(), HasSubstr("no prompts"));
  ASSERT_EQ(tp_request_add_prompt(req, "x", nullptr), TP_OK);
  ASSERT_EQ(tp_request_set_size(req, 30, 32, nullptr), TP_OK);
  EXPECT_EQ(tp_pipeline_generate(&result, f.pipeline, req, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_THAT(err.message(), HasSubstr("width 30 is not a positive multiple of 8"));
  EXPECT_EQ(tp_request_set_size(req, -1, 32, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_request_set_steps(req, 1001, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_THAT(err.message(), HasSubstr("steps"));
  EXPECT_EQ(tp_request_set_images_per_prompt(req, 0, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_request_set_max_sequence_length(req, 0, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_request_set_guidance(req, INFINITY, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_request_set_guidance(req, NAN, err.out()), TP_OK);  // the model's default
  EXPECT_EQ(tp_request_set_option(req, "no_such_option", "4", err.out()), TP_UNIMPLEMENTED);  // no family reads it
  EXPECT_THAT(err.message(), HasSubstr("no_such_option"));
  EXPECT_EQ(tp_request_add_prompt(req, nullptr, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_pipeline_generate(nullptr, f.pipeline, req, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_pipeline_generate(&result, nullptr, req, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_pipeline_generate(&result, f.pipeline, nullptr, err.out()), TP_INVALID_ARGUMENT);
  // A handle of another kind is refused, not misread.
  EXPECT_EQ(tp_pipeline_generate(&result, reinterpret_cast<tp_pipeline*>(req), req, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_THAT(err.message(), HasSubstr("not a live tp_pipeline"));
  tp_request_destroy(req);

  tp_image bad{sizeof(tp_image), 0, 32, 0, nullptr};
  size_t size = 0;
  EXPECT_EQ(tp_image_encode_png(&size, nullptr, 0, &bad, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_image_write_png(nullptr, "x.png", err.out()), TP_INVALID_ARGUMENT);
  tp_image small{4, 32, 32, 96, nullptr};
  EXPECT_EQ(tp_image_write_png(&small, "x.png", err.out()), TP_INVALID_ARGUMENT);
  EXPECT_THAT(err.message(), HasSubstr("struct_size"));

  // NULL-safe destroys, and accessors of NULL.
  tp_pipeline_destroy(nullptr);
  tp_request_destroy(nullptr);
  tp_request_cancel(nullptr);
  tp_result_free(nullptr);
  tp_plan_free(nullptr);
  EXPECT_STREQ(tp_pipeline_name(nullptr), "");
  EXPECT_STREQ(tp_result_warning(nullptr, 0), "");

  // The pipeline still works.
  EXPECT_EQ(generate(f.pipeline, "a red circle on a white background", 1).size(), 32u * 32 * 3);
}

TEST(PipelineCapiTest, TextEncoderOffloadOption) {
  tp_registry_options* opts = nullptr;
  ASSERT_EQ(tp_registry_options_create(&opts, nullptr), TP_OK);
  Error err;
  EXPECT_EQ(tp_registry_options_set_text_encoder_offload(opts, 7, err.out()), TP_INVALID_ARGUMENT);
  ASSERT_EQ(tp_registry_options_set_text_encoder_offload(opts, TP_TIER_HOST, err.out()), TP_OK);
  tp_registry* reg = nullptr;
  ASSERT_EQ(tp_registry_create_from_string(&reg, config().c_str(), opts, err.out()), TP_OK) << err.message();
  tp_registry_options_destroy(opts);
  tp_pipeline* pipeline = nullptr;
  ASSERT_EQ(tp_pipeline_create(&pipeline, reg, "tiny", nullptr), TP_OK);
  EXPECT_EQ(generate(pipeline, "a red circle on a white background", 1).size(), 32u * 32 * 3);
  // The text encoders went to the host tier after encoding; the others stay.
  tp_model_list* info = nullptr;
  ASSERT_EQ(tp_registry_info(&info, reg, "tiny/text_encoder", nullptr), TP_OK);
  tp_model_info row{};
  row.struct_size = sizeof row;
  ASSERT_EQ(tp_model_list_get(&row, info, 0, nullptr), TP_OK);
  EXPECT_EQ(row.tier, TP_TIER_HOST);
  tp_model_list_free(info);
  tp_pipeline_destroy(pipeline);
  tp_registry_destroy(reg);
}

TEST(PipelineCapiTest, APipelineConfigWithAMissingFolderIsRefusedAtCreation) {
  tp_registry* reg = nullptr;
  Error err;
  EXPECT_EQ(tp_registry_create_from_string(
                &reg, R"({"models": {"x": {"path": "/nonexistent/sd3", "pipeline_type": "sd3"}}})", nullptr,
                err.out()),
            TP_NOT_FOUND);
  EXPECT_THAT(err.message(), HasSubstr("model 'x'"));
  EXPECT_THAT(err.message(), HasSubstr("/nonexistent/sd3"));
}

TEST(PipelineCapiTest, ImagesAreReadToTheCallersPrefix) {
  // tp_image as passed in by callers of any version from v0.2: at least 24
  // bytes; a longer one (a newer header) is read to the library's size.
  std::vector<uint8_t> pixels(2 * 2 * 3, 200);
  struct {
    tp_image img;
    uint64_t future;
  } longer{};
  longer.img = tp_image{sizeof longer, 2, 2, 6, pixels.data()};
  longer.future = ~0ull;
  size_t size = 0;
  Error err;
  EXPECT_EQ(tp_image_encode_png(&size, nullptr, 0, &longer.img, err.out()), TP_RESOURCE_EXHAUSTED);
  EXPECT_GT(size, 8u);
  tp_image v02{24, 2, 2, 6, pixels.data()};
  size_t size02 = 0;
  EXPECT_EQ(tp_image_encode_png(&size02, nullptr, 0, &v02, nullptr), TP_RESOURCE_EXHAUSTED);
  EXPECT_EQ(size02, size);
  v02.struct_size = 16;
  EXPECT_EQ(tp_image_encode_png(&size02, nullptr, 0, &v02, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_THAT(err.message(), HasSubstr("image->struct_size 16 is below v0.2's 24"));
  EXPECT_EQ(tp_image_write_png(&v02, "/tmp/never.png", err.out()), TP_INVALID_ARGUMENT);
}

}  // namespace
