// The SD3 pipeline on a real GPU (label gpu): the default model in fp32,
// fp16 and bf16 (finite, varied, reproducible images on cuda:0); a registry
// that evicts at every release (idle timeout 0), the canary for arenas freed
// under queued kernels; and parity with diffusers with TF32 off, the
// difference with TF32 on recorded. Each test skips without a device (fails
// in GPU mode, gpu_test_util.h).
//
// Data: the default model (TP_TINY_SD3_DIR, else models/tiny-sd3 in the
// source tree) and scripts/sd3_reference.py's folders and outputs
// (TP_SD3_REFERENCE_DIR, else the build's reference cache).
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "device/device.h"
#include "gpu/gpu_test_util.h"
#include "pipeline/runner.h"
#include "torch/tensors.h"
#include "twistedpic/pipeline.h"
#include "twistedpic/registry.h"
#include "twistedpic/runtime.h"
#include "weights/tensor_weights.h"

namespace tp {
namespace {

std::filesystem::path tiny_model_dir() { return gpu_test::env_or("TP_TINY_SD3_DIR", TP_DEFAULT_MODEL_DIR); }
std::filesystem::path reference_dir() { return gpu_test::env_or("TP_SD3_REFERENCE_DIR", TP_SD3_REFERENCE_DIR); }

// A registry over default_registry_options (the GPU) and the pipeline "m" on `folder`.
struct PipelineSetup {
  std::unique_ptr<ModelRegistry> registry;
  std::unique_ptr<Pipeline> pipeline;

  static PipelineSetup make(const std::filesystem::path& folder, DType dtype, const PolicyConfig& policy = {}) {
    PipelineSetup s;
    RegistryConfig config;
    config.policy = policy;
    ModelConfig m;
    m.name = "m";
    m.source = folder.string();
    m.dtype = dtype;
    config.models.push_back(m);
    auto expanded = expand_pipeline_components(config);
    EXPECT_TRUE(expanded) << expanded.error().message;
    if (!expanded) return s;
    auto options = default_registry_options(0);
    EXPECT_TRUE(options) << options.error().message;
    if (!options) return s;
    auto registry = ModelRegistry::create(*expanded, *options);
    EXPECT_TRUE(registry) << registry.error().message;
    if (!registry) return s;
    s.registry = std::move(*registry);
    auto pipeline = Pipeline::create(*s.registry, "m");
    EXPECT_TRUE(pipeline) << pipeline.error().message;
    if (pipeline) s.pipeline = std::move(*pipeline);
    return s;
  }
};

GenerateRequest request(uint64_t seed) {
  GenerateRequest r;
  r.prompts = {"a red circle on a white background", "a blue square on a yellow background"};
  r.seed = seed;
  return r;
}

std::string pixels(const GenerateResult& r) {
  std::string out;
  for (const Image& i : r.images) out.append(reinterpret_cast<const char*>(i.rgb.data()), i.rgb.size());
  return out;
}

// The weights of the network `name` on the device: where they are and in what dtype.
void expect_on_cuda0(ModelRegistry& registry, const std::string& name, DType dtype) {
  auto lease = registry.acquire(name);
  ASSERT_TRUE(lease) << lease.error().message;
  auto& w = dynamic_cast<TensorWeights&>(lease->weights());
  EXPECT_EQ(w.device().name(), "cuda:0") << name;
  EXPECT_EQ(torch_bridge::device_of(w), at::Device("cuda:0")) << name;
  EXPECT_EQ(w.converted_dtype(), dtype) << name;
}

class PipelineGpuTest : public ::testing::TestWithParam<DType> {};

TEST_P(PipelineGpuTest, FiniteVariedImagesIdenticalForTheSameSeed) {
  TP_REQUIRE_GPU();
  c10::InferenceMode inference;
  PipelineSetup s = PipelineSetup::make(tiny_model_dir(), GetParam());
  ASSERT_TRUE(s.pipeline);
  at::Tensor latents;
  auto first = generate_with_overrides(*s.pipeline, request(3), {at::Tensor(), &latents});
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_TRUE(latents.defined());
  EXPECT_EQ(latents.device(), at::Device("cuda:0"));
  EXPECT_EQ(latents.scalar_type(), torch_bridge::scalar_type(GetParam()));
  EXPECT_TRUE(at::isfinite(latents).all().item<bool>()) << "non-finite latents";
  EXPECT_GT(latents.to(at::kFloat).std().item<float>(), 1e-3) << "constant latents";
  ASSERT_EQ(first->images.size(), 2u);
  for (const Image& img : first->images) {
    auto [lo, hi] = std::minmax_element(img.rgb.begin(), img.rgb.end());
    EXPECT_GE(*hi - *lo, 32) << "a (nearly) constant image";
  }
  auto again = s.pipeline->generate(request(3));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(pixels(*first), pixels(*again)) << "the same seed gave different bytes";
  auto other = s.pipeline->generate(request(4));
  ASSERT_TRUE(other) << other.error().message;
  EXPECT_NE(pixels(*first), pixels(*other)) << "the seed changed nothing";
  for (const char* net : {"m/transformer", "m/vae", "m/text_encoder"}) expect_on_cuda0(*s.registry, net, GetParam());
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, PipelineGpuTest, ::testing::Values(DType::kF32, DType::kF16, DType::kBF16),
                         [](const auto& info) { return std::string(dtype_safetensors_name(info.param)); });

// Idle timeout 0: every release evicts, so each network's arena is freed
// right after the kernels that read it were queued, and the next network's
// load copies on other streams at once. If a free did not wait for those
// kernels, the images would differ from those of a registry that keeps
// everything.
TEST(PipelineEvictionGpuTest, EveryReleaseEvictsAndTheImagesStayExact) {
  TP_REQUIRE_GPU();
  c10::InferenceMode inference;
  PipelineSetup keep = PipelineSetup::make(tiny_model_dir(), DType::kF32);
  ASSERT_TRUE(keep.pipeline);
  auto want = keep.pipeline->generate(request(5));
  ASSERT_TRUE(want) << want.error().message;
  keep.pipeline.reset();  // before its registry
  keep.registry.reset();

  PolicyConfig evict;
  evict.idle_timeout_s = 0;
  evict.idle_unload_to = Tier::kDisk;
  evict.unload_after = Tier::kDisk;
  PipelineSetup s = PipelineSetup::make(tiny_model_dir(), DType::kF32, evict);
  ASSERT_TRUE(s.pipeline);
  std::atomic<int> off_device{0};
  s.registry->subscribe([&](const ResidencyEvent& e) {
    if (e.from == Tier::kDevice && !e.failed) ++off_device;
  });
  constexpr int kRuns = 3;
  for (int i = 0; i < kRuns; ++i) {
    auto got = s.pipeline->generate(request(5));
    ASSERT_TRUE(got) << got.error().message;
    EXPECT_EQ(pixels(*got), pixels(*want)) << "run " << i << ": an evicting registry changed the image";
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  auto all_off = [&] {
    for (const ModelInfo& m : s.registry->list())
      if (m.tier == Tier::kDevice) return false;
    return true;
  };
  while (!all_off() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(all_off()) << "a network stayed on the device";
  const int networks = static_cast<int>(s.registry->list().size());
  EXPECT_GE(off_device.load(), kRuns * networks) << "not every release evicted";
  std::printf("RESULT test_evictions=%d (%d runs x %d networks)\n", off_device.load(), kRuns, networks);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

// ---- parity with diffusers on the GPU ----------------------------------------

struct Reference {
  std::unique_ptr<TensorWeights> weights;
  std::unordered_map<std::string, at::Tensor> tensors;
};

Reference load_reference(const std::filesystem::path& file) {
  Reference r;
  auto device = std::make_shared<CpuDevice>(1ull << 32);
  auto pool = std::make_shared<PinnedPool>(device, 1 << 20, 2);
  auto w = TensorWeights::open({{file, ""}}, std::nullopt, device, pool, TransferOptions{1 << 20, 2});
  EXPECT_TRUE(w) << w.error().message;
  if (!w) return r;
  r.weights = std::move(*w);
  EXPECT_TRUE(r.weights->load_to_device({}));
  r.tensors = torch_bridge::tensor_views(*r.weights).value();
  return r;
}

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a.cpu().to(at::kDouble) - b.cpu().to(at::kDouble)).abs().max().item<double>();
}

struct ParityRun {
  double latent_diff = 0;
  double image_diff = 0;
};

ParityRun run_parity(const std::filesystem::path& dir, const std::string& variant, const Reference& ref) {
  nlohmann::json settings = nlohmann::json::parse(std::ifstream(dir / (variant + ".reference.json")));
  PipelineSetup s = PipelineSetup::make(dir / variant, DType::kF32);
  if (!s.pipeline) return {1e9, 1e9};
  GenerateRequest request;
  request.prompts = settings["prompts"].get<std::vector<std::string>>();
  request.negative_prompts = settings["negative_prompts"].get<std::vector<std::string>>();
  request.width = settings["width"];
  request.height = settings["height"];
  request.steps = settings["steps"];
  request.guidance_scale = settings["guidance_scale"].get<double>();
  request.max_sequence_length = settings["max_sequence_length"];
  at::Tensor final_latents;
  auto result = generate_with_overrides(*s.pipeline, request, {ref.tensors.at("initial_latents").clone(), &final_latents});
  EXPECT_TRUE(result) << result.error().message;
  if (!result) return {1e9, 1e9};
  EXPECT_EQ(final_latents.device(), at::Device("cuda:0"));
  ParityRun out;
  out.latent_diff = max_diff(final_latents, ref.tensors.at("final_latents"));
  const at::Tensor& image = ref.tensors.at("image");  // (B, H, W, 3) uint8
  EXPECT_EQ(result->images.size(), static_cast<size_t>(image.size(0)));
  for (size_t i = 0; i < result->images.size() && i < static_cast<size_t>(image.size(0)); ++i) {
    const Image& img = result->images[i];
    at::Tensor ours = at::from_blob(const_cast<uint8_t*>(img.rgb.data()), {img.height, img.width, 3}, at::kByte);
    out.image_diff = std::max(out.image_diff, max_diff(ours, image[static_cast<int64_t>(i)]));
  }
  return out;
}

class Sd3GpuParityTest : public ::testing::TestWithParam<std::string> {};

// With TF32 off the GPU must meet the CPU's tolerances (tests/unit/pipeline/sd3);
// with TF32 on (cuDNN's default for convolutions on Ampere and later) the
// difference is recorded, not judged.
TEST_P(Sd3GpuParityTest, MatchesDiffusersWithTf32OffAndRecordsTf32On) {
  TP_REQUIRE_GPU();
  const std::filesystem::path dir = reference_dir();
  const std::filesystem::path ref_file = dir / (GetParam() + ".reference.safetensors");
  if (!std::filesystem::exists(ref_file)) {
    if (gpu_test::gpu_required()) FAIL() << "GPU mode, but no reference data: " << ref_file;
    GTEST_SKIP() << "no reference data (scripts/sd3_reference.py " << dir << ")";
  }
  c10::InferenceMode inference;
  Reference ref = load_reference(ref_file);
  ASSERT_TRUE(ref.weights);
  auto& ctx = at::globalContext();
  const bool cublas = ctx.allowTF32CuBLAS(), cudnn = ctx.allowTF32CuDNN();

  ctx.setAllowTF32CuBLAS(false);
  ctx.setAllowTF32CuDNN(false);
  ParityRun off = run_parity(dir, GetParam(), ref);
  EXPECT_LE(off.latent_diff, 1e-4) << "TF32 off";
  EXPECT_LE(off.image_diff, 1.0) << "TF32 off: more than 1/255";

  ctx.setAllowTF32CuBLAS(true);
  ctx.setAllowTF32CuDNN(true);
  ParityRun on = run_parity(dir, GetParam(), ref);
  ctx.setAllowTF32CuBLAS(cublas);
  ctx.setAllowTF32CuDNN(cudnn);

  std::printf("RESULT parity_%s_tf32_off_latent_max_diff=%.3g\n", GetParam().c_str(), off.latent_diff);
  std::printf("RESULT parity_%s_tf32_on_latent_max_diff=%.3g\n", GetParam().c_str(), on.latent_diff);
  std::printf("RESULT parity_%s_tf32_on_image_max_diff=%.0f\n", GetParam().c_str(), on.image_diff);
  RecordProperty("tf32_off_latent_max_diff", std::to_string(off.latent_diff));
  RecordProperty("tf32_on_latent_max_diff", std::to_string(on.latent_diff));
  EXPECT_LT(on.latent_diff, 1e9) << "the TF32 run failed";
}

INSTANTIATE_TEST_SUITE_P(Variants, Sd3GpuParityTest, ::testing::Values("plain", "sd35"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tp
