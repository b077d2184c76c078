// Parity with diffusers: tiny random-weight SD3 pipelines made by
// scripts/sd3_reference.py (the ctest fixture pipeline.sd3_reference), whose
// outputs diffusers computed component by component. Every tensor must match.
// Variants: plain (SD3 Medium), sd35 (qk norm, dual attention) and fasttest
// (diffusers' own fast-test folder; see the script).
#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "pipeline/common/clip.h"
#include "pipeline/common/scheduler.h"
#include "pipeline/common/t5.h"
#include "pipeline/common/vae.h"
#include "pipeline/runner.h"
#include "pipeline/sd3/sd3_transformer.h"
#include "support/parity.h"
#include "torch/tensors.h"
#include "device/device.h"
#include "weights/diffusers_folder.h"
#include "twistedpic/runtime.h"
#include "weights/tensor_weights.h"

namespace tp {
namespace {

const std::filesystem::path kRefDir = TP_SD3_REFERENCE_DIR;

using testing::Loaded;
using testing::max_diff;

nlohmann::json config_of(const std::string& variant, const char* component) {
  return testing::component_config(kRefDir / variant, component);
}

class Sd3Parity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(kRefDir / (GetParam() + ".reference.safetensors")))
        << "run scripts/sd3_reference.py " << kRefDir << " (the ctest fixture does)";
    ref_ = Loaded::open(kRefDir / (GetParam() + ".reference.safetensors"));
  }
  std::filesystem::path folder() const { return kRefDir / GetParam(); }
  c10::InferenceMode inference_;
  Loaded ref_;
};

TEST_P(Sd3Parity, ClipTextEncoders) {
  const char* components[] = {"text_encoder", "text_encoder_2"};
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(components[i]);
    auto config = nn::parse_clip_config(config_of(GetParam(), components[i]), components[i]);
    ASSERT_TRUE(config) << config.error().message;
    Loaded w = Loaded::open(folder() / components[i]);
    auto enc = nn::ClipTextEncoder::bind(*config, w.tensors, "");
    ASSERT_TRUE(enc) << enc.error().message;
    const std::string p = "clip" + std::to_string(i) + ".";
    nn::ClipOutput out = enc->forward(ref_[p + "input_ids"]);
    EXPECT_LE(max_diff(out.penultimate, ref_[p + "penultimate"]), 1e-5);
    EXPECT_LE(max_diff(out.pooled, ref_[p + "pooled"]), 1e-5);
  }
}

TEST_P(Sd3Parity, T5Encoder) {
  auto config = nn::parse_t5_config(config_of(GetParam(), "text_encoder_3"), "text_encoder_3");
  ASSERT_TRUE(config) << config.error().message;
  Loaded w = Loaded::open(folder() / "text_encoder_3");
  auto enc = nn::T5Encoder::bind(*config, w.tensors, "");
  ASSERT_TRUE(enc) << enc.error().message;
  EXPECT_LE(max_diff(enc->forward(ref_["t5.input_ids"]), ref_["t5.hidden"]), 1e-5);
}

TEST_P(Sd3Parity, Transformer) {
  auto config = sd3::parse_transformer_config(config_of(GetParam(), "transformer"), "transformer");
  ASSERT_TRUE(config) << config.error().message;
  Loaded w = Loaded::open(folder() / "transformer");
  auto net = sd3::SD3Transformer::bind(*config, w.tensors, "");
  ASSERT_TRUE(net) << net.error().message;
  at::Tensor out = net->forward(ref_["initial_latents"], ref_["transformer.timestep"], ref_["prompt_embeds"],
                                ref_["pooled_prompt_embeds"]);
  EXPECT_LE(max_diff(out, ref_["transformer.out"]), 1e-5);
}

TEST_P(Sd3Parity, VaeDecoder) {
  auto config = nn::parse_vae_config(config_of(GetParam(), "vae"), "vae");
  ASSERT_TRUE(config) << config.error().message;
  Loaded w = Loaded::open(folder() / "vae");
  auto net = nn::VaeDecoder::bind(*config, w.tensors, "");
  ASSERT_TRUE(net) << net.error().message;
  EXPECT_LE(max_diff(net->forward(ref_["initial_latents"]), ref_["vae.out"]), 1e-5);
}

TEST_P(Sd3Parity, SchedulerTimestepsAreBitExact) {
  auto config = nn::parse_flow_match_config(config_of(GetParam(), "scheduler"), "scheduler");
  ASSERT_TRUE(config) << config.error().message;
  const at::Tensor& ts = ref_["scheduler.timesteps"];
  const at::Tensor& sigmas = ref_["scheduler.sigmas"];
  nn::Schedule s = nn::FlowMatchEulerScheduler(*config).schedule(static_cast<int>(ts.size(0)), 1024);
  ASSERT_EQ(s.timesteps.size(), static_cast<size_t>(ts.size(0)));
  ASSERT_EQ(s.sigmas.size(), static_cast<size_t>(sigmas.size(0)));
  for (size_t i = 0; i < s.timesteps.size(); ++i) EXPECT_EQ(s.timesteps[i], ts[i].item<float>()) << i;
  for (size_t i = 0; i < s.sigmas.size(); ++i) EXPECT_EQ(s.sigmas[i], sigmas[i].item<float>()) << i;
}

// The whole pipeline through the registry: prompts in, final latents and pixels out.
TEST_P(Sd3Parity, PipelineMatchesDiffusers) {
  nlohmann::json settings = nlohmann::json::parse(std::ifstream(kRefDir / (GetParam() + ".reference.json")));
  nlohmann::json config_json = {{"models", {{"sd3", {{"path", folder().string()}, {"pipeline_type", "sd3"},
                                                    {"dtype", "fp32"}}}}}};
  auto config = parse_registry_config(config_json.dump());
  ASSERT_TRUE(config) << config.error().message;
  auto expanded = expand_pipeline_components(*config);
  ASSERT_TRUE(expanded) << expanded.error().message;
  // fasttest's two CLIPs are the same bytes (diffusers makes both from seed 0): one registry model.
  EXPECT_EQ(expanded->models.size(), GetParam() == "fasttest" ? 4u : 5u);
  auto options = default_registry_options();
  ASSERT_TRUE(options) << options.error().message;
  auto registry = ModelRegistry::create(*expanded, *options);
  ASSERT_TRUE(registry) << registry.error().message;
  auto pipeline = Pipeline::create(**registry, "sd3");
  ASSERT_TRUE(pipeline) << pipeline.error().message;

  GenerateRequest request;
  request.prompts = settings["prompts"].get<std::vector<std::string>>();
  request.negative_prompts = settings["negative_prompts"].get<std::vector<std::string>>();
  request.width = settings["width"];
  request.height = settings["height"];
  request.steps = settings["steps"];
  request.guidance_scale = settings["guidance_scale"].get<double>();
  request.max_sequence_length = settings["max_sequence_length"];
  int steps_seen = 0;
  request.on_step = [&](const StepProgress& p) {
    EXPECT_EQ(p.step, ++steps_seen);
    return true;
  };
  at::Tensor final_latents;
  auto result = generate_with_overrides(**pipeline, request, {ref_["initial_latents"].clone(), &final_latents});
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(steps_seen, request.steps);
  EXPECT_LE(max_diff(final_latents, ref_["final_latents"]), 1e-4);

  EXPECT_LE(testing::max_pixel_diff(result->images, ref_["image"]), 1.0);  // within 1/255
  // Every network went back to the registry.
  for (const ModelInfo& m : (*registry)->list()) EXPECT_EQ(m.leases, 0u) << m.name;
}

// fasttest: diffusers' own SD3 fast-test folder (CLIP widths 32 + 32 cut to a joint_attention_dim of 32),
// with tokenizer folders as transformers 5 saves them (tokenizer.json only).
INSTANTIATE_TEST_SUITE_P(Variants, Sd3Parity, ::testing::Values("plain", "sd35", "fasttest"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tp
