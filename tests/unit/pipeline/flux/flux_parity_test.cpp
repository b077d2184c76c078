// Parity with diffusers: tiny random-weight Flux pipelines made by
// scripts/flux_reference.py (the ctest fixture pipeline.flux_reference), whose
// outputs diffusers computed component by component. Every tensor must match:
// each network within 1e-5, the final latents within 1e-4, pixels within 1/255.
// Also the errors a Flux pipeline gives for bad input, by name.
#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>

#include "pipeline/common/clip.h"
#include "pipeline/common/scheduler.h"
#include "pipeline/common/t5.h"
#include "pipeline/common/vae.h"
#include "pipeline/flux/flux_checkpoint.h"
#include "pipeline/flux/flux_spec.h"
#include "pipeline/flux/flux_transformer.h"
#include "pipeline/runner.h"
#include "support/parity.h"
#include "twistedpic/runtime.h"
#include "twistedpic/testing/simulated_backend.h"
#include "weights/safetensors.h"

namespace tp {
namespace {

using testing::component_config;
using testing::expect_within;
using testing::max_pixel_diff;
using testing::Loaded;
using testing::max_diff;

const std::filesystem::path kRefDir = TP_FLUX_REFERENCE_DIR;
const std::filesystem::path kPlanDir = TP_FLUX_PLAN_DIR;

class FluxParity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(kRefDir / (GetParam() + ".reference.safetensors")))
        << "run scripts/flux_reference.py " << kRefDir << " (the ctest fixture does)";
    ref_ = Loaded::open(kRefDir / (GetParam() + ".reference.safetensors"));
  }
  std::filesystem::path folder() const { return kRefDir / GetParam(); }
  std::string label(const std::string& what) const { return GetParam() + " " + what; }
  flux::TransformerConfig transformer_config() const {
    auto config = flux::parse_transformer_config(component_config(folder(), "transformer"), "transformer");
    EXPECT_TRUE(config) << config.error().message;
    return *config;
  }
  c10::InferenceMode inference_;
  Loaded ref_;
};

TEST_P(FluxParity, ClipPooledOutput) {
  auto config = nn::parse_clip_config(component_config(folder(), "text_encoder"), "text_encoder");
  ASSERT_TRUE(config) << config.error().message;
  config->with_projection = false;  // CLIPTextModel
  Loaded w = Loaded::open(folder() / "text_encoder");
  ASSERT_FALSE(w.has("text_projection.weight"));
  auto enc = nn::ClipTextEncoder::bind(*config, w.tensors, "");
  ASSERT_TRUE(enc) << enc.error().message;
  expect_within(label("CLIP pooled").c_str(), max_diff(enc->forward(ref_["clip.input_ids"]).pooled, ref_["clip.pooled"]),
                1e-5);
}

TEST_P(FluxParity, T5Encoder) {
  auto config = nn::parse_t5_config(component_config(folder(), "text_encoder_2"), "text_encoder_2");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->gated, GetParam() == "dev");  // both feed-forward kinds: gated-GELU (dev) and ReLU (schnell)
  Loaded w = Loaded::open(folder() / "text_encoder_2");
  auto enc = nn::T5Encoder::bind(*config, w.tensors, "");
  ASSERT_TRUE(enc) << enc.error().message;
  expect_within(label("T5").c_str(), max_diff(enc->forward(ref_["t5.input_ids"]), ref_["t5.hidden"]), 1e-5);
}

TEST_P(FluxParity, PositionIdsAndPackingAreExact) {
  const at::Tensor& noise = ref_["initial_latents"];
  const int64_t rows = noise.size(2) / 2, cols = noise.size(3) / 2;
  EXPECT_TRUE(at::equal(flux::text_ids(ref_["txt_ids"].size(0)), ref_["txt_ids"]));
  EXPECT_TRUE(at::equal(flux::image_ids(rows, cols), ref_["img_ids"]));
  at::Tensor packed = flux::pack_latents(noise);
  EXPECT_TRUE(at::equal(packed, ref_["initial_packed"]));
  EXPECT_TRUE(at::equal(flux::unpack_latents(packed, rows, cols), noise));
}

TEST_P(FluxParity, Transformer) {
  const flux::TransformerConfig config = transformer_config();
  EXPECT_EQ(config.guidance_embeds, GetParam() == "dev");
  Loaded w = Loaded::open(folder() / "transformer");
  auto net = flux::FluxTransformer::bind(config, w.tensors, "");
  ASSERT_TRUE(net) << net.error().message;
  const flux::Rotary rotary = net->rotary(at::cat({ref_["txt_ids"], ref_["img_ids"]}, 0), at::kCPU);
  at::Tensor guidance = config.guidance_embeds ? ref_["transformer.guidance"] : at::Tensor();
  at::Tensor out = net->forward(ref_["initial_packed"], ref_["transformer.timestep"], guidance, ref_["prompt_embeds"],
                                ref_["pooled_prompt_embeds"], rotary);
  expect_within(label("transformer").c_str(), max_diff(out, ref_["transformer.out"]), 1e-5);
}

// A transformer whose config disagrees with its weights about the guidance embedding fails to bind, saying so.
TEST_P(FluxParity, TransformerRefusesAGuidanceMismatch) {
  flux::TransformerConfig config = transformer_config();
  config.guidance_embeds = !config.guidance_embeds;
  Loaded w = Loaded::open(folder() / "transformer");
  auto net = flux::FluxTransformer::bind(config, w.tensors, "");
  ASSERT_FALSE(net);
  EXPECT_EQ(net.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(net.error().message.find("guidance_embeds"), std::string::npos) << net.error().message;
  EXPECT_NE(net.error().message.find("time_text_embed.guidance_embedder"), std::string::npos) << net.error().message;
}

TEST_P(FluxParity, VaeDecoder) {
  auto config = nn::parse_vae_config(component_config(folder(), "vae"), "vae");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_DOUBLE_EQ(config->scaling_factor, 0.3611);
  EXPECT_DOUBLE_EQ(config->shift_factor, 0.1159);
  Loaded w = Loaded::open(folder() / "vae");
  auto net = nn::VaeDecoder::bind(*config, w.tensors, "");
  ASSERT_TRUE(net) << net.error().message;
  expect_within(label("VAE").c_str(), max_diff(net->forward(ref_["initial_latents"]), ref_["vae.out"]), 1e-5);
}

nlohmann::json runs_of(const std::string& variant) {
  return nlohmann::json::parse(std::ifstream(kRefDir / (variant + ".reference.json")))["runs"];
}

// Dynamic shifting (dev: mu from the packed sequence length and the config's
// base/max values) and the static shift (schnell), bit for bit.
TEST_P(FluxParity, SchedulerIsBitExact) {
  auto config = nn::parse_flow_match_config(component_config(folder(), "scheduler"), "scheduler");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->use_dynamic_shifting, GetParam() == "dev");
  const nlohmann::json run = runs_of(GetParam())[0];
  const nn::FlowMatchEulerScheduler scheduler(*config);
  nn::Schedule s = scheduler.schedule_linear_sigmas(run["steps"], scheduler.mu(run["image_seq_len"]));
  const at::Tensor& ts = ref_["scheduler.timesteps"];
  const at::Tensor& sigmas = ref_["scheduler.sigmas"];
  ASSERT_EQ(s.timesteps.size(), static_cast<size_t>(ts.size(0)));
  ASSERT_EQ(s.sigmas.size(), static_cast<size_t>(sigmas.size(0)));
  for (size_t i = 0; i < s.timesteps.size(); ++i) EXPECT_EQ(s.timesteps[i], ts[i].item<float>()) << i;
  for (size_t i = 0; i < s.sigmas.size(); ++i) EXPECT_EQ(s.sigmas[i], sigmas[i].item<float>()) << i;
  EXPECT_EQ(s.sigmas.back(), 0.0f);  // the terminal sigma
}

// The Flux folder as a registry config; no pipeline_type: model_index.json's class decides.
Expected<RegistryConfig> registry_config(const std::filesystem::path& folder,
                                         const std::map<std::string, std::string>& files = {}) {
  nlohmann::json json = {{"models", {{"flux", {{"path", folder.string()}, {"dtype", "fp32"}}}}}};
  if (!files.empty()) json["models"]["flux"]["components"] = files;
  TP_ASSIGN_OR_RETURN(RegistryConfig config, parse_registry_config(json.dump()));
  return expand_pipeline_components(config);
}

struct Fixture {
  std::unique_ptr<ModelRegistry> registry;
  std::unique_ptr<Pipeline> pipeline;

  static Fixture make(const std::filesystem::path& folder, const std::map<std::string, std::string>& files = {}) {
    Fixture f;
    auto expanded = registry_config(folder, files);
    EXPECT_TRUE(expanded) << expanded.error().message;
    if (!expanded) return f;
    EXPECT_EQ(expanded->models.size(), 4u);  // every network its own registry model
    EXPECT_EQ(expanded->pipelines.at(0).pipeline_type, "flux");
    auto options = default_registry_options();
    EXPECT_TRUE(options) << options.error().message;
    auto registry = ModelRegistry::create(*expanded, *options);
    EXPECT_TRUE(registry) << registry.error().message;
    f.registry = std::move(*registry);
    auto pipeline = Pipeline::create(*f.registry, "flux");
    EXPECT_TRUE(pipeline) << pipeline.error().message;
    if (pipeline) f.pipeline = std::move(*pipeline);
    return f;
  }
};

// The whole pipeline through the registry: prompts in, final latents and pixels out. The "cfg" run
// (dev) has true CFG with a negative prompt and its noise from the seed, two images per prompt.
TEST_P(FluxParity, PipelineMatchesDiffusers) {
  Fixture f = Fixture::make(folder());
  ASSERT_TRUE(f.pipeline);
  EXPECT_EQ(f.pipeline->pipeline_type(), "flux");
  EXPECT_EQ(f.pipeline->size_multiple(), 16);
  for (const nlohmann::json& run : runs_of(GetParam())) {
    const std::string name = run["name"];
    SCOPED_TRACE(name);
    GenerateRequest request;
    request.prompts = run["prompts"].get<std::vector<std::string>>();
    request.negative_prompts = run["negative_prompts"].get<std::vector<std::string>>();
    request.width = run["width"];
    request.height = run["height"];
    request.steps = run["steps"];
    request.guidance_scale = run["guidance_scale"].get<double>();
    request.max_sequence_length = run["max_sequence_length"];
    request.images_per_prompt = run["images_per_prompt"];
    request.seed = run.value("seed", 0);
    request.options = run["options"].get<std::map<std::string, std::string>>();
    int steps_seen = 0;
    request.on_step = [&](const StepProgress& p) {
      EXPECT_EQ(p.step, ++steps_seen);
      return true;
    };
    const std::string prefix = name == "main" ? "" : name + ".";
    at::Tensor final_latents;
    RunOverrides overrides{run["initial_latents"].get<bool>() ? ref_["initial_latents"].clone() : at::Tensor(),
                           &final_latents};
    auto result = generate_with_overrides(*f.pipeline, request, overrides);
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_EQ(steps_seen, request.steps);
    expect_within(label(name + " final latents").c_str(), max_diff(final_latents, ref_[prefix + "final_latents"]),
                  1e-4);

    expect_within(label(name + " pixels (of 255)"), max_pixel_diff(result->images, ref_[prefix + "image"]), 1.0);
  }
  for (const ModelInfo& m : f.registry->list()) EXPECT_EQ(m.leases, 0u) << m.name;
}

INSTANTIATE_TEST_SUITE_P(Variants, FluxParity, ::testing::Values("schnell", "dev"),
                         [](const auto& info) { return info.param; });

// ---- Single-file checkpoints in the original Black Forest Labs layout: dev_bfl is dev's folder with the
// transformer saved as transformer/flux1-dev-tiny.safetensors (fused qkv, ComfyUI's prefix).

class FluxBflCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    ref_ = Loaded::open(kRefDir / "dev.reference.safetensors");
    auto config = flux::parse_transformer_config(component_config(kRefDir / "dev", "transformer"), "transformer");
    ASSERT_TRUE(config) << config.error().message;
    config_ = *config;
    bfl_ = Loaded::open(kRefDir / "dev_bfl" / "transformer" / "flux1-dev-tiny.safetensors");
  }
  c10::InferenceMode inference_;
  Loaded ref_, bfl_;
  flux::TransformerConfig config_;
};

TEST_F(FluxBflCheckpoint, TransformerMatchesItsDiffusersTwin) {
  ASSERT_TRUE(flux::is_bfl_layout(bfl_.tensors));
  ASSERT_TRUE(bfl_.has("model.diffusion_model.double_blocks.0.img_attn.qkv.weight"));
  auto net = flux::FluxTransformer::bind(config_, bfl_.tensors, "");
  ASSERT_TRUE(net) << net.error().message;
  const flux::Rotary rotary = net->rotary(at::cat({ref_["txt_ids"], ref_["img_ids"]}, 0), at::kCPU);
  at::Tensor out = net->forward(ref_["initial_packed"], ref_["transformer.timestep"], ref_["transformer.guidance"],
                                ref_["prompt_embeds"], ref_["pooled_prompt_embeds"], rotary);
  expect_within("dev_bfl transformer", max_diff(out, ref_["transformer.out"]), 1e-5);
}

TEST_F(FluxBflCheckpoint, AnUnknownLayoutIsNamed) {
  nn::TensorMap weights{{"diffusion.blocks.0.qkv.weight", at::zeros({1})}, {"diffusion.embed.weight", at::zeros({1})}};
  auto net = flux::FluxTransformer::bind(config_, weights, "");
  ASSERT_FALSE(net);
  EXPECT_EQ(net.error().code, ErrorCode::kInvalidArgument);
  for (const char* w : {"neither diffusers' layout", "Black Forest Labs", "diffusion.blocks.0.qkv.weight",
                        "diffusion.embed.weight"})
    EXPECT_NE(net.error().message.find(w), std::string::npos) << net.error().message;
}

TEST_F(FluxBflCheckpoint, UnknownKeysAreNamed) {
  nn::TensorMap weights = bfl_.tensors;
  weights["model.diffusion_model.double_blocks.0.img_attn.bogus.weight"] = at::zeros({1});
  weights["model.diffusion_model.lora_unet_x.alpha"] = at::zeros({1});
  auto net = flux::FluxTransformer::bind(config_, weights, "");
  ASSERT_FALSE(net);
  EXPECT_EQ(net.error().code, ErrorCode::kInvalidArgument);
  for (const char* w : {"2 key(s) not recognised", "double_blocks.0.img_attn.bogus.weight", "lora_unet_x.alpha"})
    EXPECT_NE(net.error().message.find(w), std::string::npos) << net.error().message;
}

// The single file twice: inside the folder's transformer/ (dev_bfl), and named by the config's "components"
// over dev's folder, as users keep flux1-dev.safetensors apart from the diffusers folder.
class FluxBflPipeline : public FluxBflCheckpoint, public ::testing::WithParamInterface<bool> {};

TEST_P(FluxBflPipeline, GivesTheImageOfItsDiffusersTwin) {
  const std::filesystem::path file = kRefDir / "dev_bfl" / "transformer" / "flux1-dev-tiny.safetensors";
  Fixture f = GetParam() ? Fixture::make(kRefDir / "dev_bfl")
                         : Fixture::make(kRefDir / "dev", {{"transformer", file.string()}});
  ASSERT_TRUE(f.pipeline);
  if (!GetParam()) {
    auto unit = f.registry->info("flux/transformer");
    ASSERT_TRUE(unit) << unit.error().message;
    EXPECT_EQ(unit->source, file.string());
  }
  const nlohmann::json run = runs_of("dev")[0];
  GenerateRequest request;
  request.prompts = run["prompts"].get<std::vector<std::string>>();
  request.width = run["width"];
  request.height = run["height"];
  request.steps = run["steps"];
  request.guidance_scale = run["guidance_scale"].get<double>();
  request.max_sequence_length = run["max_sequence_length"];
  at::Tensor final_latents;
  auto result = generate_with_overrides(*f.pipeline, request, {ref_["initial_latents"].clone(), &final_latents});
  ASSERT_TRUE(result) << result.error().message;
  expect_within("dev_bfl final latents", max_diff(final_latents, ref_["final_latents"]), 1e-4);
  expect_within("dev_bfl pixels (of 255)", max_pixel_diff(result->images, ref_["image"]), 1.0);
}

INSTANTIATE_TEST_SUITE_P(Where, FluxBflPipeline, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "InTheFolder" : "NamedByTheConfig"; });

TEST(FluxComponentFiles, ErrorsNameTheComponent) {
  for (auto [component, file, code, words] :
       {std::tuple{"scheduler", (kRefDir / "dev_bfl" / "transformer" / "flux1-dev-tiny.safetensors").string(),
                   ErrorCode::kInvalidArgument, "components.scheduler: a flux pipeline has no network 'scheduler'"},
        std::tuple{"transformer", (kRefDir / "nope.safetensors").string(), ErrorCode::kNotFound,
                   "components.transformer: "}}) {
    nlohmann::json json = {{"models", {{"flux", {{"path", (kRefDir / "dev").string()}, {"dtype", "fp32"},
                                                 {"components", {{component, file}}}}}}}};
    auto config = parse_registry_config(json.dump());
    ASSERT_TRUE(config) << config.error().message;
    auto expanded = expand_pipeline_components(*config);
    ASSERT_FALSE(expanded);
    EXPECT_EQ(expanded.error().code, code) << expanded.error().message;
    EXPECT_NE(expanded.error().message.find(words), std::string::npos) << expanded.error().message;
  }
  auto bad = parse_registry_config(R"({"models": {"m": {"path": "/x", "components": {"transformer": 3}}}})");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("components.transformer"), std::string::npos) << bad.error().message;
}

// ---- Bad input, each error naming the thing.

class FluxErrors : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { fixture_ = new Fixture(Fixture::make(kRefDir / "schnell")); }
  static void TearDownTestSuite() {
    delete fixture_;
    fixture_ = nullptr;
  }
  static GenerateRequest request() {
    GenerateRequest r;
    r.prompts = {"a red circle"};
    r.width = r.height = 32;
    r.steps = 1;
    return r;
  }
  static Expected<GenerateResult> generate(const GenerateRequest& r) { return fixture_->pipeline->generate(r); }
  static Fixture* fixture_;
};
Fixture* FluxErrors::fixture_ = nullptr;

void expect_error(const Expected<GenerateResult>& result, ErrorCode code, std::initializer_list<const char*> words) {
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, code) << result.error().message;
  for (const char* w : words) EXPECT_NE(result.error().message.find(w), std::string::npos) << result.error().message;
}

TEST_F(FluxErrors, GeneratesAtTheDefaults) {
  ASSERT_TRUE(fixture_->pipeline);
  auto result = generate(request());
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->guidance_scale, 3.5);  // FluxPipeline's default
  EXPECT_EQ(fixture_->pipeline->default_width(), 1024);
}

TEST_F(FluxErrors, SizeNotAMultipleOf16) {
  GenerateRequest r = request();
  r.width = 40;
  expect_error(generate(r), ErrorCode::kInvalidArgument, {"width 40", "multiple of 16", "packing"});
  r.width = 32;
  r.height = 24;
  expect_error(generate(r), ErrorCode::kInvalidArgument, {"height 24", "multiple of 16"});
}

TEST_F(FluxErrors, T5LongerThanTheModelTakes) {
  GenerateRequest r = request();
  r.max_sequence_length = 600;
  expect_error(generate(r), ErrorCode::kInvalidArgument, {"max_sequence_length 600", "T5"});
  r.max_sequence_length = 300;  // schnell-style: 256 at most
  expect_error(generate(r), ErrorCode::kInvalidArgument, {"max_sequence_length 300", "256 T5 tokens", "schnell"});
}

TEST_F(FluxErrors, RequestOptions) {
  GenerateRequest r = request();
  r.options["no_such_option"] = "1";
  expect_error(generate(r), ErrorCode::kUnimplemented, {"no_such_option", "flux", "true_cfg_scale"});
  r.options.clear();
  r.options["true_cfg_scale"] = "lots";
  expect_error(generate(r), ErrorCode::kInvalidArgument, {"true_cfg_scale", "lots"});
  EXPECT_TRUE(known_request_option("true_cfg_scale"));
  EXPECT_FALSE(known_request_option("no_such_option"));
}

// A copy of the schnell folder whose transformer config claims a guidance embedding, and of the dev folder
// whose config denies its own: refused when the pipeline is described, naming the config and the weight.
TEST(FluxFolderErrors, GuidanceEmbeddingConfigAndWeightsDisagree) {
  for (const char* variant : {"schnell", "dev"}) {
    SCOPED_TRACE(variant);
    const std::filesystem::path copy =
        std::filesystem::temp_directory_path() / ("tp_flux_guidance_" + std::string(variant) + "_" +
                                                  std::to_string(::getpid()));
    std::filesystem::remove_all(copy);
    std::filesystem::copy(kRefDir / variant, copy, std::filesystem::copy_options::recursive);
    const std::filesystem::path config_file = copy / "transformer" / "config.json";
    nlohmann::json config = nlohmann::json::parse(std::ifstream(config_file));
    config["guidance_embeds"] = !config["guidance_embeds"].get<bool>();
    std::ofstream(config_file) << config.dump();
    auto expanded = registry_config(copy);
    std::filesystem::remove_all(copy);
    ASSERT_FALSE(expanded);
    EXPECT_EQ(expanded.error().code, ErrorCode::kInvalidArgument);
    for (const char* w : {"guidance_embeds", "time_text_embed.guidance_embedder", "config.json"})
      EXPECT_NE(expanded.error().message.find(w), std::string::npos) << expanded.error().message;
  }
}

// An explicit pipeline_type that does not match the folder's class is refused, naming both.
TEST(FluxFolderErrors, ExplicitTypeMustMatchTheFolder) {
  nlohmann::json json = {{"models", {{"m", {{"path", (kRefDir / "dev").string()}, {"pipeline_type", "sd3"}}}}}};
  auto config = parse_registry_config(json.dump());
  ASSERT_TRUE(config) << config.error().message;
  auto expanded = expand_pipeline_components(*config);
  ASSERT_FALSE(expanded);
  EXPECT_EQ(expanded.error().code, ErrorCode::kUnimplemented);
  EXPECT_NE(expanded.error().message.find("FluxPipeline"), std::string::npos) << expanded.error().message;
  json["models"]["m"]["pipeline_type"] = "flux";
  config = parse_registry_config(json.dump());
  ASSERT_TRUE(config);
  EXPECT_EQ(config->models[0].pipeline_type, "flux");
  expanded = expand_pipeline_components(*config);
  ASSERT_TRUE(expanded) << expanded.error().message;
  EXPECT_EQ(expanded->pipelines.at(0).pipeline_type, "flux");
}

// The docs' example (docs/architecture.md, "Planning FLUX.1 [dev] on a 24 GB card"): a FLUX.1 [dev]-shaped
// folder whose safetensors headers have the real shapes (scripts/flux_plan_headers.py), sized from those
// headers on a simulated 24 GiB device. After encoding, T5 must leave for the transformer; CLIP-L and the
// VAE fit beside it.
TEST(FluxPlan, DevOnA24GBCard) {
  nlohmann::json json = {{"models", {{"flux-dev", {{"path", (kPlanDir / "dev").string()}, {"dtype", "bf16"},
                                                  {"workspace_bytes", "1GiB"}}}}}};
  auto config = parse_registry_config(json.dump());
  ASSERT_TRUE(config) << config.error().message;
  auto expanded = expand_pipeline_components(*config);
  ASSERT_TRUE(expanded) << expanded.error().message;
  for (ModelConfig& m : expanded->models) {  // the simulated backend takes sizes from the config
    auto files = model_weight_files(m.source);
    ASSERT_TRUE(files) << files.error().message;
    for (const WeightFile& f : *files) {
      auto header = read_safetensors_header(f.path);
      ASSERT_TRUE(header) << header.error().message;
      m.size_bytes += header->data_bytes;
    }
    std::printf("%-28s %14llu bytes\n", m.name.c_str(), static_cast<unsigned long long>(m.size_bytes));
  }
  auto device = std::make_shared<SimulatedDevice>(24ull << 30);
  RegistryOptions options;
  options.backend = std::make_shared<SimulatedBackend>(device);
  options.monitor = device;
  options.background_thread = false;
  auto registry = ModelRegistry::create(*expanded, std::move(options));
  ASSERT_TRUE(registry) << registry.error().message;
  ModelRegistry& r = **registry;
  auto show = [&](const char* model) {
    auto plan = r.plan(model);
    EXPECT_TRUE(plan) << plan.error().message;
    if (!plan) return LoadPlan{};
    std::string evictions;
    for (const Eviction& e : plan->evictions) evictions += " " + e.model;
    std::printf("plan(%s): fits %d, needs %llu, free %llu, evicts [%s ]\n  %s\n", model, plan->fits,
                static_cast<unsigned long long>(plan->needed_bytes), static_cast<unsigned long long>(plan->free_bytes),
                evictions.c_str(), plan->explanation.c_str());
    return *plan;
  };
  // Encoding: CLIP-L, then T5, each leased and released as a generate call does.
  for (const char* encoder : {"flux-dev/text_encoder", "flux-dev/text_encoder_2"}) {
    show(encoder);
    auto lease = r.acquire(encoder);
    ASSERT_TRUE(lease) << lease.error().message;
  }
  // Denoising: the 12B transformer (23.8 GB in bf16, plus a 1 GiB workspace) cannot sit beside T5.
  LoadPlan transformer = show("flux-dev/transformer");
  EXPECT_TRUE(transformer.fits);
  ASSERT_FALSE(transformer.evictions.empty());
  EXPECT_TRUE(std::any_of(transformer.evictions.begin(), transformer.evictions.end(),
                          [](const Eviction& e) { return e.model == "flux-dev/text_encoder_2"; }));
  auto lease = r.acquire("flux-dev/transformer");
  ASSERT_TRUE(lease) << lease.error().message;
  // Decoding: the VAE fits beside the transformer.
  LoadPlan vae = show("flux-dev/vae");
  EXPECT_TRUE(vae.fits);
  EXPECT_TRUE(vae.evictions.empty());
}

}  // namespace
}  // namespace tp
