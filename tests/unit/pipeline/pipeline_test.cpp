// Pipeline behaviour beyond parity: bad input, dtypes, cancellation, sharing
// and offloading of networks through the registry. Uses the tiny pipelines of
// the ctest fixture pipeline.sd3_reference.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cmath>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "twistedpic/pipeline.h"
#include "twistedpic/runtime.h"

namespace tp {
namespace {

namespace fs = std::filesystem;
const fs::path kRefDir = TP_SD3_REFERENCE_DIR;

struct Setup {
  std::unique_ptr<ModelRegistry> registry;
  std::unique_ptr<Pipeline> pipeline;
};

Expected<RegistryConfig> expanded(const nlohmann::json& models, const ExpandOptions& options = {}) {
  TP_ASSIGN_OR_RETURN(RegistryConfig config, parse_registry_config(nlohmann::json{{"models", models}}.dump()));
  return expand_pipeline_components(std::move(config), options);
}

nlohmann::json model(const fs::path& folder, const char* dtype = "fp32") {
  return {{"path", folder.string()}, {"pipeline_type", "sd3"}, {"dtype", dtype}};
}

Expected<Setup> make(const nlohmann::json& models, const char* name = "sd3", const ExpandOptions& options = {}) {
  TP_ASSIGN_OR_RETURN(RegistryConfig config, expanded(models, options));
  TP_ASSIGN_OR_RETURN(RegistryOptions ro, default_registry_options());
  Setup s;
  TP_ASSIGN_OR_RETURN(s.registry, ModelRegistry::create(std::move(config), std::move(ro)));
  TP_ASSIGN_OR_RETURN(s.pipeline, Pipeline::create(*s.registry, name));
  return s;
}

GenerateRequest small_request() {
  GenerateRequest r;
  r.prompts = {"a green triangle on a black background"};
  r.width = 32;
  r.height = 32;
  r.steps = 2;
  r.max_sequence_length = 32;
  return r;
}

// A writable copy of a reference pipeline folder.
fs::path copy_of(const std::string& variant, const std::string& name) {
  fs::path dst = fs::path(::testing::TempDir()) / ("tp_pipeline_" + name);
  fs::remove_all(dst);
  fs::copy(kRefDir / variant, dst, fs::copy_options::recursive);
  return dst;
}

void edit_json(const fs::path& file, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = nlohmann::json::parse(std::ifstream(file));
  edit(j);
  std::ofstream(file) << j.dump(1);
}

double mean_abs_diff(const Image& a, const Image& b) {
  double sum = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) sum += std::abs(int(a.rgb[i]) - int(b.rgb[i]));
  return sum / static_cast<double>(a.rgb.size());
}

TEST(Pipeline, SameSeedSameImageOtherSeedOtherImage) {
  auto s = make({{"sd3", model(kRefDir / "plain")}});
  ASSERT_TRUE(s) << s.error().message;
  GenerateRequest r = small_request();
  r.prompts = {"a red circle on a white background", "a blue square on a yellow background"};
  r.images_per_prompt = 2;
  auto a = s->pipeline->generate(r);
  ASSERT_TRUE(a) << a.error().message;
  ASSERT_EQ(a->images.size(), 4u);
  for (const Image& img : a->images) {
    EXPECT_EQ(img.width, 32);
    EXPECT_EQ(img.height, 32);
    EXPECT_EQ(img.rgb.size(), 32u * 32 * 3);
  }
  auto b = s->pipeline->generate(r);
  ASSERT_TRUE(b);
  EXPECT_EQ(a->images[0].rgb, b->images[0].rgb);
  EXPECT_NE(a->images[0].rgb, a->images[1].rgb);  // two images of one prompt: different noise
  r.seed = 99;
  auto c = s->pipeline->generate(r);
  ASSERT_TRUE(c);
  EXPECT_NE(a->images[0].rgb, c->images[0].rgb);
  EXPECT_GT(a->timings.denoise_s, 0);
  EXPECT_GE(a->timings.total_s, a->timings.encode_s + a->timings.denoise_s + a->timings.decode_s);
}

// fp16 and bf16 run and stay near the fp32 image (random weights amplify
// rounding, so the bound is loose; a broken dtype path gives noise, ~60+).
TEST(Pipeline, HalfPrecisionsStayNearFp32) {
  auto ref = make({{"sd3", model(kRefDir / "sd35")}});
  ASSERT_TRUE(ref) << ref.error().message;
  auto base = ref->pipeline->generate(small_request());
  ASSERT_TRUE(base) << base.error().message;
  for (const char* dtype : {"fp16", "bf16"}) {
    SCOPED_TRACE(dtype);
    auto s = make({{"sd3", model(kRefDir / "sd35", dtype)}});
    ASSERT_TRUE(s) << s.error().message;
    auto out = s->pipeline->generate(small_request());
    ASSERT_TRUE(out) << out.error().message;
    EXPECT_LT(mean_abs_diff(out->images[0], base->images[0]), 12.0);
  }
}

TEST(Pipeline, ProgressCallbackSeesEveryStepAndCanCancel) {
  auto s = make({{"sd3", model(kRefDir / "plain")}});
  ASSERT_TRUE(s) << s.error().message;
  GenerateRequest r = small_request();
  r.steps = 4;
  std::vector<int> seen;
  r.on_step = [&](const StepProgress& p) {
    EXPECT_EQ(p.steps, 4);
    seen.push_back(p.step);
    return p.step < 2;  // cancel after the second step
  };
  auto out = s->pipeline->generate(r);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kCancelled);
  EXPECT_EQ(seen, (std::vector<int>{1, 2}));
  for (const ModelInfo& m : s->registry->list()) EXPECT_EQ(m.leases, 0u) << m.name;

  std::atomic<bool> cancel{true};
  r.on_step = nullptr;
  r.cancel = &cancel;
  out = s->pipeline->generate(r);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kCancelled);
  cancel = false;
  EXPECT_TRUE(s->pipeline->generate(r));  // the next request works
}

TEST(Pipeline, SharedNetworksAreOneRegistryModel) {
  auto config = expanded({{"a", model(kRefDir / "plain")}, {"b", model(kRefDir / "plain")},
                          {"c", model(kRefDir / "plain", "bf16")}});
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->models.size(), 10u);  // a's five networks serve b too; c's dtype differs
  ASSERT_EQ(config->pipelines.size(), 3u);
  const PipelineConfig* b = config->find_pipeline("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(*b->model_for("transformer"), "a/transformer");
  EXPECT_EQ(*config->find_pipeline("c")->model_for("transformer"), "c/transformer");

  auto options = default_registry_options();
  ASSERT_TRUE(options);
  auto registry = ModelRegistry::create(*config, *options);
  ASSERT_TRUE(registry) << registry.error().message;
  auto pa = Pipeline::create(**registry, "a");
  auto pb = Pipeline::create(**registry, "b");
  ASSERT_TRUE(pa && pb);
  auto ia = (*pa)->generate(small_request());
  auto ib = (*pb)->generate(small_request());
  ASSERT_TRUE(ia && ib);
  EXPECT_EQ(ia->images[0].rgb, ib->images[0].rgb);
  auto info = (*registry)->info("a/transformer");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->load_count, 1u);  // loaded once for both pipelines
}

// Sharing by content, not by path: an SD3.5-style pipeline and a second one
// whose T5 folder is a byte-identical copy, in another folder, hold T5 once;
// list() shows one T5 row, which both pipelines use. The same shapes with
// other bytes are two models.
TEST(Pipeline, NetworksWithTheSameBytesInOtherFoldersAreOneModel) {
  // The content digests' cache goes to a scratch folder, not the user's.
  const fs::path cache = fs::path(::testing::TempDir()) / "tp_pipeline_digest_cache";
  fs::remove_all(cache);
  const char* old_cache = std::getenv("XDG_CACHE_HOME");
  const std::optional<std::string> saved_cache = old_cache ? std::optional<std::string>(old_cache) : std::nullopt;
  ::setenv("XDG_CACHE_HOME", cache.c_str(), 1);
  struct Restore {
    const std::optional<std::string>& value;
    ~Restore() { value ? ::setenv("XDG_CACHE_HOME", value->c_str(), 1) : ::unsetenv("XDG_CACHE_HOME"); }
  } restore{saved_cache};

  const fs::path a = copy_of("sd35", "content_a"), b = copy_of("plain", "content_b");
  fs::remove_all(b / "text_encoder_3");
  fs::copy(a / "text_encoder_3", b / "text_encoder_3", fs::copy_options::recursive);

  auto config = expanded({{"a", model(a)}, {"b", model(b)}});
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->models.size(), 9u);  // a's five, b's CLIPs, transformer and VAE
  EXPECT_EQ(*config->find_pipeline("b")->model_for("text_encoder_3"), "a/text_encoder_3");
  EXPECT_EQ(*config->find_pipeline("b")->model_for("text_encoder"), "b/text_encoder");  // same shapes, other bytes
  EXPECT_TRUE(fs::is_directory(cache / "twistedpic" / "digests"));

  auto options = default_registry_options();
  ASSERT_TRUE(options);
  auto registry = ModelRegistry::create(*config, *options);
  ASSERT_TRUE(registry) << registry.error().message;
  auto pa = Pipeline::create(**registry, "a");
  auto pb = Pipeline::create(**registry, "b");
  ASSERT_TRUE(pa && pb);
  ASSERT_TRUE((*pa)->generate(small_request()));
  ASSERT_TRUE((*pb)->generate(small_request()));
  std::vector<std::string> t5_rows;
  for (const ModelInfo& m : (*registry)->list())
    if (m.name.ends_with("/text_encoder_3")) {
      t5_rows.push_back(m.name);
      EXPECT_EQ(m.load_count, 1u) << m.name;  // loaded once for both pipelines
    }
  EXPECT_EQ(t5_rows, std::vector<std::string>{"a/text_encoder_3"});

  // One changed byte in b's T5 (the low byte of its last float): two T5 models.
  const fs::path t5 = b / "text_encoder_3" / "model.safetensors";
  {
    std::fstream f(t5, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-4, std::ios::end);
    const char c = static_cast<char>(f.get() ^ 1);
    f.seekp(-4, std::ios::end);
    f.put(c);
  }
  fs::last_write_time(t5, fs::last_write_time(t5) + std::chrono::seconds(5));
  config = expanded({{"a", model(a)}, {"b", model(b)}});
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->models.size(), 10u);
  EXPECT_EQ(*config->find_pipeline("b")->model_for("text_encoder_3"), "b/text_encoder_3");
}

TEST(Pipeline, TextEncodersCanLeaveTheDeviceWhileTheTransformerStays) {
  ExpandOptions options;
  options.text_encoders_unload_after = Tier::kHost;
  auto s = make({{"sd3", model(kRefDir / "plain")}}, "sd3", options);
  ASSERT_TRUE(s) << s.error().message;
  ASSERT_TRUE(s->pipeline->generate(small_request()));
  for (const char* te : {"sd3/text_encoder", "sd3/text_encoder_2", "sd3/text_encoder_3"}) {
    auto info = s->registry->info(te);
    ASSERT_TRUE(info);
    EXPECT_EQ(info->tier, Tier::kHost) << te;
    EXPECT_EQ(info->device_bytes, 0u) << te;
  }
  auto t = s->registry->info("sd3/transformer");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->tier, Tier::kDevice);
  ASSERT_TRUE(s->pipeline->generate(small_request()));  // and they come back
  EXPECT_EQ(s->registry->info("sd3/text_encoder")->load_count, 2u);
}

TEST(Pipeline, WithoutT5TheEmbeddingsAreZeros) {
  fs::path dir = copy_of("plain", "no_t5");
  edit_json(dir / "model_index.json", [](nlohmann::json& j) {
    j["text_encoder_3"] = {nullptr, nullptr};
    j["tokenizer_3"] = {nullptr, nullptr};
  });
  fs::remove_all(dir / "text_encoder_3");
  auto s = make({{"sd3", model(dir)}});
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->registry->list().size(), 4u);
  auto out = s->pipeline->generate(small_request());
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(out->images.size(), 1u);
}

TEST(Pipeline, OverLongPromptsAreTruncatedWithAWarning) {
  auto s = make({{"sd3", model(kRefDir / "plain")}});
  ASSERT_TRUE(s) << s.error().message;
  GenerateRequest r = small_request();
  std::string prompt;
  for (int i = 0; i < 60; ++i) prompt += "a red circle and ";
  r.prompts = {prompt};
  auto out = s->pipeline->generate(r);
  ASSERT_TRUE(out) << out.error().message;
  ASSERT_EQ(out->warnings.size(), 2u);  // CLIP (77) and T5 (32)
  EXPECT_NE(out->warnings[0].find("truncated to 77 CLIP tokens"), std::string::npos) << out->warnings[0];
  EXPECT_NE(out->warnings[1].find("truncated to 32 T5 tokens"), std::string::npos) << out->warnings[1];
}

// ---- Bad input: each gets its code and a message that names the problem.

TEST(PipelineBadInput, SizesPromptsAndCounts) {
  auto s = make({{"sd3", model(kRefDir / "plain")}});
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->pipeline->size_multiple(), 8);  // VAE scale 4 x patch 2
  struct Case {
    const char* what;
    std::function<void(GenerateRequest&)> edit;
    const char* message;
  };
  const Case cases[] = {
      {"width not a multiple", [](GenerateRequest& r) { r.width = 36; }, "width 36 is not a positive multiple of 8"},
      {"height negative", [](GenerateRequest& r) { r.height = -8; }, "height -8"},
      {"beyond the position embedding", [](GenerateRequest& r) { r.width = 256; }, "beyond"},
      {"no prompts", [](GenerateRequest& r) { r.prompts.clear(); }, "no prompts"},
      {"negative prompts mismatch", [](GenerateRequest& r) { r.negative_prompts = {"a", "b"}; }, "negative prompts"},
      {"negative steps", [](GenerateRequest& r) { r.steps = -1; }, "steps"},
      {"nan guidance", [](GenerateRequest& r) { r.guidance_scale = NAN; }, "guidance_scale"},
      {"huge batch", [](GenerateRequest& r) { r.images_per_prompt = 1000; }, "images_per_prompt"},
      {"T5 length", [](GenerateRequest& r) { r.max_sequence_length = 513; }, "max_sequence_length"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    GenerateRequest r = small_request();
    c.edit(r);
    auto out = s->pipeline->generate(r);
    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(out.error().message.find(c.message), std::string::npos) << out.error().message;
  }
  EXPECT_TRUE(s->pipeline->generate(small_request()));  // the next request works
}

TEST(Pipeline, GenerationDefaultsComeFromTheModelFolder) {
  auto plain = make({{"sd3", model(kRefDir / "plain")}});
  ASSERT_TRUE(plain) << plain.error().message;
  GenerateRequest r = small_request();
  r.steps = 0;  // the model's
  auto out = plain->pipeline->generate(r);
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(out->steps, 28);  // diffusers' defaults without the file
  EXPECT_EQ(out->guidance_scale, 7.0);

  fs::path dir = copy_of("plain", "generation_defaults");
  std::ofstream(dir / "generation_defaults.json") << R"({"num_inference_steps": 3, "guidance_scale": 1.0})";
  auto s = make({{"sd3", model(dir)}});
  ASSERT_TRUE(s) << s.error().message;
  int steps_seen = 0;
  r.on_step = [&](const StepProgress& p) {
    steps_seen = p.steps;
    return true;
  };
  out = s->pipeline->generate(r);
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(steps_seen, 3);
  EXPECT_EQ(out->steps, 3);
  EXPECT_EQ(out->guidance_scale, 1.0);
  r.steps = 2;  // the request's own wins
  out = s->pipeline->generate(r);
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(steps_seen, 2);
  EXPECT_EQ(out->steps, 2);

  // Guidance 1.0 from the file turns classifier-free guidance off: the same
  // image as asking for it, and not the image of the default 7.
  r.steps = 2;
  auto from_file = s->pipeline->generate(r);
  r.guidance_scale = 1.0;
  auto asked = s->pipeline->generate(r);
  r.guidance_scale = 7.0;
  auto guided = s->pipeline->generate(r);
  ASSERT_TRUE(from_file && asked && guided);
  EXPECT_EQ(from_file->images[0].rgb, asked->images[0].rgb);
  EXPECT_NE(from_file->images[0].rgb, guided->images[0].rgb);

  for (const char* bad : {R"({"num_inference_steps": 0})", R"({"num_inference_steps": 2.5})",
                          R"({"guidance_scale": "high"})", "[1]", "{"}) {
    std::ofstream(dir / "generation_defaults.json") << bad;
    auto b = make({{"sd3", model(dir)}});
    ASSERT_FALSE(b) << bad;
    EXPECT_EQ(b.error().code, ErrorCode::kInvalidArgument) << bad;
    EXPECT_NE(b.error().message.find("generation_defaults.json"), std::string::npos) << b.error().message;
  }
}

TEST(PipelineBadInput, MissingComponent) {
  fs::path dir = copy_of("plain", "missing_vae");
  fs::remove_all(dir / "vae");
  auto s = make({{"sd3", model(dir)}});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kNotFound);
  EXPECT_NE(s.error().message.find("vae"), std::string::npos) << s.error().message;
}

TEST(PipelineBadInput, ConfigThatDisagreesWithTheWeights) {
  fs::path dir = copy_of("plain", "bad_shapes");
  edit_json(dir / "transformer" / "config.json", [](nlohmann::json& j) { j["num_layers"] = 3; });
  auto s = make({{"sd3", model(dir)}});
  ASSERT_TRUE(s) << s.error().message;  // configs are read; weights are bound when used
  auto out = s->pipeline->generate(small_request());
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(out.error().message.find("'sd3/transformer'"), std::string::npos) << out.error().message;
  // With three layers, block 1 is no longer the last: its context modulation is 6x, not 2x, wide.
  EXPECT_NE(out.error().message.find("'transformer_blocks.1.norm1_context.linear.weight' has shape [64, 32], but "
                                     "config.json implies [192, 32]"),
            std::string::npos)
      << out.error().message;
  for (const ModelInfo& m : s->registry->list()) EXPECT_EQ(m.leases, 0u) << m.name;

  edit_json(dir / "transformer" / "config.json", [](nlohmann::json& j) {
    j["num_layers"] = 2;
    j["pooled_projection_dim"] = 65;
  });
  s = make({{"sd3", model(dir)}});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(s.error().message.find("pooled_projection_dim"), std::string::npos) << s.error().message;
}

TEST(PipelineBadInput, UnsupportedSchedulerAndPipelineTypes) {
  fs::path dir = copy_of("plain", "bad_scheduler");
  // A discrete-time scheduler (SDXL's), named where diffusers looks: model_index.json's class wins over
  // scheduler_config.json's "_class_name", which alone changes nothing.
  edit_json(dir / "scheduler" / "scheduler_config.json",
            [](nlohmann::json& j) { j["_class_name"] = "DPMSolverMultistepScheduler"; });
  auto s = make({{"sd3", model(dir)}});
  ASSERT_TRUE(s) << s.error().message;
  edit_json(dir / "model_index.json",
            [](nlohmann::json& j) { j["scheduler"] = {"diffusers", "DPMSolverMultistepScheduler"}; });
  s = make({{"sd3", model(dir)}});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kUnimplemented);
  EXPECT_NE(s.error().message.find("DPMSolverMultistepScheduler"), std::string::npos) << s.error().message;
  edit_json(dir / "model_index.json",
            [](nlohmann::json& j) { j["scheduler"] = {"diffusers", "FlowMatchEulerDiscreteScheduler"}; });

  edit_json(dir / "scheduler" / "scheduler_config.json", [](nlohmann::json& j) {
    j["_class_name"] = "FlowMatchEulerDiscreteScheduler";
    j["use_karras_sigmas"] = true;
  });
  s = make({{"sd3", model(dir)}});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kUnimplemented);
  EXPECT_NE(s.error().message.find("use_karras_sigmas"), std::string::npos) << s.error().message;

  // An SD3 folder named an SDXL one: the folder's class is named with the one the type runs.
  nlohmann::json sdxl = model(kRefDir / "plain");
  sdxl["pipeline_type"] = "sdxl";
  s = make({{"x", sdxl}}, "x");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kUnimplemented);
  for (const char* w : {"StableDiffusion3Pipeline", "StableDiffusionXLPipeline"})
    EXPECT_NE(s.error().message.find(w), std::string::npos) << s.error().message;

  s = make({{"sd3", model(kRefDir / "plain")}}, "nope");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kNotFound);

  fs::path other = copy_of("plain", "flux_like");
  edit_json(other / "model_index.json", [](nlohmann::json& j) { j["_class_name"] = "FluxPipeline"; });
  s = make({{"sd3", model(other)}});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kUnimplemented);
  EXPECT_NE(s.error().message.find("FluxPipeline"), std::string::npos) << s.error().message;
}

}  // namespace
}  // namespace tp
