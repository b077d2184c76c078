// The whole SDXL pipeline against diffusers' StableDiffusionXLPipeline, on the
// tiny folders of scripts/sdxl_reference.py (the fixture pipeline.sdxl_reference):
// prompts in, final latents (1e-4) and pixels (1/255) out, for every run the
// script recorded: each scheduler (Euler, Euler ancestral with its noise from
// the seed, DPM++ 2M with and without Karras sigmas), epsilon and
// v-prediction, a non-square size, no / empty / non-empty negative prompts,
// guidance_rescale, several images per prompt, and SDXL Turbo's way (trailing
// spacing, 1 to 4 steps, guidance off). Also what bad requests get.
#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>

#include "pipeline/runner.h"
#include "support/parity.h"
#include "twistedpic/pipeline.h"
#include "twistedpic/runtime.h"

namespace tp {
namespace {

using testing::expect_within;
using testing::Loaded;
using testing::max_pixel_diff;
using testing::max_diff;

const std::filesystem::path kRefDir = TP_SDXL_REFERENCE_DIR;

struct Fixture {
  std::unique_ptr<ModelRegistry> registry;
  std::unique_ptr<Pipeline> pipeline;

  // The folder as a registry config; no pipeline_type: model_index.json's class decides.
  static Fixture make(const std::filesystem::path& folder, const ExpandOptions& expand = {}) {
    Fixture f;
    nlohmann::json json = {{"models", {{"sdxl", {{"path", folder.string()}, {"dtype", "fp32"}}}}}};
    auto config = parse_registry_config(json.dump());
    EXPECT_TRUE(config) << config.error().message;
    if (!config) return f;
    auto expanded = expand_pipeline_components(*config, expand);
    EXPECT_TRUE(expanded) << expanded.error().message;
    if (!expanded) return f;
    EXPECT_EQ(expanded->models.size(), 4u);  // every network its own registry model
    EXPECT_EQ(expanded->pipelines.at(0).pipeline_type, "sdxl");
    auto options = default_registry_options();
    EXPECT_TRUE(options) << options.error().message;
    auto registry = ModelRegistry::create(*expanded, *options);
    EXPECT_TRUE(registry) << registry.error().message;
    if (!registry) return f;
    f.registry = std::move(*registry);
    auto pipeline = Pipeline::create(*f.registry, "sdxl");
    EXPECT_TRUE(pipeline) << pipeline.error().message;
    if (pipeline) f.pipeline = std::move(*pipeline);
    return f;
  }
};

nlohmann::json runs_of(const std::string& variant) {
  std::ifstream in(kRefDir / (variant + ".reference.json"));
  EXPECT_TRUE(in) << "run scripts/sdxl_reference.py " << kRefDir;
  return in ? nlohmann::json::parse(in)["runs"] : nlohmann::json::array();
}

GenerateRequest request_of(const nlohmann::json& run) {
  GenerateRequest r;
  r.prompts = run["prompts"].get<std::vector<std::string>>();
  if (!run["negative_prompts"].is_null()) r.negative_prompts = run["negative_prompts"].get<std::vector<std::string>>();
  r.width = run["width"];
  r.height = run["height"];
  r.steps = run["steps"];
  r.guidance_scale = run["guidance_scale"].get<double>();
  r.images_per_prompt = run["images_per_prompt"];
  r.seed = run["seed"];
  r.options = run["options"].get<std::map<std::string, std::string>>();
  return r;
}

class SdxlPipeline : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(kRefDir / (GetParam() + ".reference.safetensors")))
        << "run scripts/sdxl_reference.py " << kRefDir << " (the ctest fixture does)";
    ref_ = Loaded::open(kRefDir / (GetParam() + ".reference.safetensors"));
  }
  c10::InferenceMode inference_;
  Loaded ref_;
};

TEST_P(SdxlPipeline, MatchesDiffusers) {
  Fixture f = Fixture::make(kRefDir / GetParam());
  ASSERT_TRUE(f.pipeline);
  EXPECT_EQ(f.pipeline->pipeline_type(), "sdxl");
  EXPECT_EQ(f.pipeline->size_multiple(), 8);
  const nlohmann::json runs = runs_of(GetParam());
  ASSERT_FALSE(runs.empty());
  for (const nlohmann::json& run : runs) {
    const std::string name = run["name"];
    SCOPED_TRACE(name);
    GenerateRequest request = request_of(run);
    int steps_seen = 0;
    request.on_step = [&](const StepProgress& p) {
      EXPECT_EQ(p.step, ++steps_seen);
      return true;
    };
    at::Tensor final_latents;
    const bool given = run["initial_latents"].get<bool>();
    RunOverrides overrides{given ? ref_[name + ".initial_latents"].clone() : at::Tensor(), &final_latents};
    auto result = generate_with_overrides(*f.pipeline, request, overrides);
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_EQ(steps_seen, run["denoising_steps"].get<int>());
    const std::string label = GetParam() + " " + name;
    expect_within(label + " final latents", max_diff(final_latents, ref_[name + ".final_latents"]), 1e-4);

    expect_within(label + " pixels (of 255)", max_pixel_diff(result->images, ref_[name + ".image"]), 1.0);
  }
  for (const ModelInfo& m : f.registry->list()) EXPECT_EQ(m.leases, 0u) << m.name;
}

INSTANTIATE_TEST_SUITE_P(Variants, SdxlPipeline, ::testing::Values("base", "vpred", "turbo"),
                         [](const auto& info) { return info.param; });

// A tiny pipeline saved in both layouts gives the same image: the folder, and its networks read from the
// Stability-layout single file (scripts/sdxl_single_file.py) over a folder that gives only the configs.
TEST(SdxlSingleFile, GivesTheImageOfItsFolder) {
  for (const char* variant : {"base", "vpred"}) {
    SCOPED_TRACE(variant);
    const auto file = kRefDir / (std::string(variant) + ".single_file.safetensors");
    ASSERT_TRUE(std::filesystem::exists(file)) << "the fixture pipeline.sdxl_single_file writes " << file;
    Fixture folder = Fixture::make(kRefDir / variant);
    ASSERT_TRUE(folder.pipeline);
    nlohmann::json json = {{"models",
                            {{"sdxl",
                              {{"path", (kRefDir / variant).string()},
                               {"checkpoint", file.string()},
                               {"pipeline_type", "sdxl"},
                               {"dtype", "fp32"}}}}}};
    auto config = parse_registry_config(json.dump());
    ASSERT_TRUE(config) << config.error().message;
    auto expanded = expand_pipeline_components(*config);
    ASSERT_TRUE(expanded) << expanded.error().message;
    for (const ModelConfig& m : expanded->models) EXPECT_EQ(m.source, file.string()) << m.name;
    auto options = default_registry_options();
    ASSERT_TRUE(options);
    auto registry = ModelRegistry::create(*expanded, *options);
    ASSERT_TRUE(registry) << registry.error().message;
    auto single = Pipeline::create(**registry, "sdxl");
    ASSERT_TRUE(single) << single.error().message;
    GenerateRequest r = request_of(runs_of(variant).at(0));
    r.negative_prompts = {"blurry"};
    auto a = folder.pipeline->generate(r);
    auto b = (*single)->generate(r);
    ASSERT_TRUE(a) << a.error().message;
    ASSERT_TRUE(b) << b.error().message;
    ASSERT_EQ(a->images.size(), b->images.size());
    for (size_t i = 0; i < a->images.size(); ++i) EXPECT_EQ(a->images[i].rgb, b->images[i].rgb) << "image " << i;
  }
}

// What bad requests get: a clear error naming the thing, and the next request works.
TEST(SdxlRequests, BadInputIsNamedAndLeavesThePipelineWorking) {
  Fixture f = Fixture::make(kRefDir / "base");
  ASSERT_TRUE(f.pipeline);
  GenerateRequest ok;
  ok.prompts = {"a red circle"};
  ok.width = 64;
  ok.height = 48;
  ok.steps = 2;
  struct Case {
    const char* what;
    std::function<void(GenerateRequest&)> edit;
    ErrorCode code;
    std::vector<const char*> words;
  };
  const Case cases[] = {
      {"a width that is not a multiple of 8", [](GenerateRequest& r) { r.width = 60; }, ErrorCode::kInvalidArgument,
       {"width 60", "multiple of 8"}},
      {"an unknown scheduler", [](GenerateRequest& r) { r.options["scheduler"] = "ddim_fancy"; },
       ErrorCode::kInvalidArgument, {"ddim_fancy", "euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras"}},
      {"a bad guidance_rescale", [](GenerateRequest& r) { r.options["guidance_rescale"] = "1.5"; },
       ErrorCode::kInvalidArgument, {"guidance_rescale", "1.5"}},
      {"an option SDXL does not read", [](GenerateRequest& r) { r.options["true_cfg_scale"] = "2"; },
       ErrorCode::kUnimplemented, {"true_cfg_scale"}},
      {"a T5 length", [](GenerateRequest& r) { r.max_sequence_length = 256; }, ErrorCode::kInvalidArgument,
       {"max_sequence_length 256", "77"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    GenerateRequest r = ok;
    c.edit(r);
    auto result = f.pipeline->generate(r);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, c.code) << result.error().message;
    for (const char* w : c.words) EXPECT_NE(result.error().message.find(w), std::string::npos) << result.error().message;
  }
  auto result = f.pipeline->generate(ok);
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->images.size(), 1u);
  for (const ModelInfo& m : f.registry->list()) EXPECT_EQ(m.leases, 0u) << m.name;
}

// The text encoders leave the device after encoding (to pinned host memory, as the CLI sets it up),
// as in the other families; the UNet and VAE stay.
TEST(SdxlRequests, TextEncodersLeaveTheDeviceAfterEncoding) {
  ExpandOptions expand;
  expand.text_encoders_unload_after = Tier::kHost;
  Fixture f = Fixture::make(kRefDir / "base", expand);
  ASSERT_TRUE(f.pipeline);
  GenerateRequest r;
  r.prompts = {"a red circle"};
  r.width = r.height = 32;
  r.steps = 1;
  ASSERT_TRUE(f.pipeline->generate(r));
  for (const ModelInfo& m : f.registry->list()) {
    const bool text = m.name.find("text_encoder") != std::string::npos;
    EXPECT_EQ(m.tier == Tier::kDevice, !text) << m.name << " is in tier " << tier_name(m.tier);
  }
}

// In fp16, the stock VAE (force_upcast) is loaded in fp32; a fixed VAE (force_upcast false) stays fp16.
TEST(SdxlFolder, ForceUpcastLoadsTheVaeInFp32WhenTheRestIsFp16) {
  for (const char* variant : {"base", "vpred"}) {
    SCOPED_TRACE(variant);
    nlohmann::json json = {{"models", {{"sdxl", {{"path", (kRefDir / variant).string()}, {"dtype", "fp16"}}}}}};
    auto config = parse_registry_config(json.dump());
    ASSERT_TRUE(config) << config.error().message;
    auto expanded = expand_pipeline_components(*config);
    ASSERT_TRUE(expanded) << expanded.error().message;
    std::ifstream in(kRefDir / variant / "vae" / "config.json");
    const bool upcast = nlohmann::json::parse(in).value("force_upcast", true);
    for (const ModelConfig& m : expanded->models)
      EXPECT_EQ(m.dtype, m.name == "sdxl/vae" && upcast ? DType::kF32 : DType::kF16) << m.name;
  }
}

}  // namespace
}  // namespace tp
