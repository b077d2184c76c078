// The C ABI generating with Flux, on the tiny dev-style folder of
// scripts/flux_reference.py (the ctest fixture pipeline.flux_reference): the
// pipeline type detected from model_index.json, true CFG through the generic
// request option, and the option errors. Compiled as C++ against tp.h only.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/capi_error.h"
#include "twistedpic/tp.h"

namespace {

using ::testing::HasSubstr;

struct Fixture {
  tp_registry* reg = nullptr;
  tp_pipeline* pipeline = nullptr;
  explicit Fixture(const std::string& folder, const char* type = nullptr) {
    // No pipeline_type: model_index.json's FluxPipeline decides.
    std::string config = R"({"models": {"m": {"path": ")" + folder + R"(", "dtype": "fp32")" +
                         (type ? std::string(R"(, "pipeline_type": ")") + type + "\"" : std::string()) + "}}}";
    CapiError err;
    EXPECT_EQ(tp_registry_create_from_string(&reg, config.c_str(), nullptr, err.out()), TP_OK) << err.message();
    EXPECT_EQ(tp_pipeline_create(&pipeline, reg, "m", err.out()), TP_OK) << err.message();
  }
  ~Fixture() {
    tp_pipeline_destroy(pipeline);
    tp_registry_destroy(reg);
  }
};

tp_request* request() {
  tp_request* req = nullptr;
  EXPECT_EQ(tp_request_create(&req, nullptr), TP_OK);
  EXPECT_EQ(tp_request_add_prompt(req, "a green triangle", nullptr), TP_OK);
  EXPECT_EQ(tp_request_set_size(req, 48, 32, nullptr), TP_OK);
  EXPECT_EQ(tp_request_set_steps(req, 2, nullptr), TP_OK);
  EXPECT_EQ(tp_request_set_max_sequence_length(req, 24, nullptr), TP_OK);
  return req;
}

std::vector<uint8_t> pixels(tp_pipeline* pipeline, tp_request* req) {
  tp_result* result = nullptr;
  CapiError err;
  EXPECT_EQ(tp_pipeline_generate(&result, pipeline, req, err.out()), TP_OK) << err.message();
  if (!result) return {};
  tp_result_info info{};
  info.struct_size = sizeof info;
  EXPECT_EQ(tp_result_get_info(&info, result, nullptr), TP_OK);
  EXPECT_EQ(info.width, 48);
  EXPECT_EQ(info.height, 32);
  tp_image img{};
  img.struct_size = sizeof img;
  EXPECT_EQ(tp_result_get_image(&img, result, 0, nullptr), TP_OK);
  std::vector<uint8_t> out(img.pixels, img.pixels + static_cast<size_t>(img.stride) * img.height);
  tp_result_free(result);
  return out;
}

TEST(FluxCapiTest, GeneratesWithTrueCfgThroughTheRequestOption) {
  Fixture f(TP_FLUX_DEV_DIR);
  ASSERT_TRUE(f.pipeline);
  EXPECT_STREQ(tp_pipeline_type(f.pipeline), "flux");
  tp_request* req = request();
  ASSERT_EQ(tp_request_add_negative_prompt(req, "blurry, red", nullptr), TP_OK);
  const std::vector<uint8_t> plain = pixels(f.pipeline, req);
  CapiError err;
  ASSERT_EQ(tp_request_set_option(req, "true_cfg_scale", "2.5", err.out()), TP_OK) << err.message();
  const std::vector<uint8_t> guided = pixels(f.pipeline, req);
  ASSERT_EQ(plain.size(), guided.size());
  EXPECT_NE(plain, guided);  // the negative prompt now counts
  EXPECT_EQ(guided, pixels(f.pipeline, req));  // and the seed still decides
  tp_request_destroy(req);
}

TEST(FluxCapiTest, OptionErrors) {
  Fixture f(TP_FLUX_DEV_DIR, "flux");
  ASSERT_TRUE(f.pipeline);
  tp_request* req = request();
  CapiError err;
  EXPECT_EQ(tp_request_set_option(req, "no_such_option", "1", err.out()), TP_UNIMPLEMENTED);
  EXPECT_THAT(err.message(), HasSubstr("no_such_option"));
  ASSERT_EQ(tp_request_set_option(req, "true_cfg_scale", "lots", err.out()), TP_OK);
  tp_result* result = nullptr;
  EXPECT_EQ(tp_pipeline_generate(&result, f.pipeline, req, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_THAT(err.message(), HasSubstr("true_cfg_scale"));
  tp_request_destroy(req);
}

// An option another family reads is refused by a pipeline whose type does not read it.
TEST(FluxCapiTest, Sd3RefusesFluxOptions) {
  Fixture f(TP_DEFAULT_MODEL_DIR);
  ASSERT_TRUE(f.pipeline);
  EXPECT_STREQ(tp_pipeline_type(f.pipeline), "sd3");
  tp_request* req = request();
  CapiError err;
  ASSERT_EQ(tp_request_set_option(req, "true_cfg_scale", "2", err.out()), TP_OK);
  tp_result* result = nullptr;
  EXPECT_EQ(tp_pipeline_generate(&result, f.pipeline, req, err.out()), TP_UNIMPLEMENTED);
  EXPECT_THAT(err.message(), HasSubstr("true_cfg_scale"));
  EXPECT_THAT(err.message(), HasSubstr("sd3"));
  tp_request_destroy(req);
}

}  // namespace
