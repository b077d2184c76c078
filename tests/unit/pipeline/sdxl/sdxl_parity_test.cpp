// Parity with diffusers: tiny random-weight SDXL pipelines made by
// scripts/sdxl_reference.py (the ctest fixture pipeline.sdxl_reference), whose
// outputs diffusers computed network by network. Each network must match
// within 1e-5: the UNet of every variant (non-square and odd-sided latents,
// fractional timesteps), CLIP-L's penultimate state, CLIP-G's penultimate
// state and projected pooled output, and the 4-channel VAE's decoder.
#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "pipeline/common/clip.h"
#include "pipeline/common/network_configs.h"
#include "pipeline/common/vae.h"
#include "pipeline/sdxl/sdxl_unet.h"
#include "pipeline/sdxl/unet_config.h"
#include "support/parity.h"

namespace tp {
namespace {

using testing::expect_within;
using testing::Loaded;
using testing::max_diff;

const std::filesystem::path kRefDir = TP_SDXL_REFERENCE_DIR;

class SdxlParity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(kRefDir / (GetParam() + ".reference.safetensors")))
        << "run scripts/sdxl_reference.py " << kRefDir << " (the ctest fixture does)";
    ref_ = Loaded::open(kRefDir / (GetParam() + ".reference.safetensors"));
  }
  std::filesystem::path folder() const { return kRefDir / GetParam(); }
  std::string label(const std::string& what) const { return GetParam() + " " + what; }
  nlohmann::json config_of(const char* component) const {
    std::ifstream in(folder() / component / "config.json");
    EXPECT_TRUE(in) << folder() / component / "config.json";
    return nlohmann::json::parse(in);
  }
  sdxl::UNetConfig unet_config() const {
    auto config = sdxl::parse_unet_config(config_of("unet"), "unet/config.json");
    EXPECT_TRUE(config) << config.error().message;
    return config ? *config : sdxl::UNetConfig{};
  }
  c10::InferenceMode inference_;
  Loaded ref_;
};

TEST_P(SdxlParity, UNet) {
  const sdxl::UNetConfig config = unet_config();
  Loaded w = Loaded::open(folder() / "unet");
  auto net = sdxl::UNet::bind(config, w.tensors, "");
  ASSERT_TRUE(net) << net.error().message;
  EXPECT_NE(ref_["unet.timestep"][1].item<float>(), std::floor(ref_["unet.timestep"][1].item<float>()));
  EXPECT_NE(ref_["unet.sample"].size(2), ref_["unet.sample"].size(3));
  for (const std::string run : {"unet", "unet_odd"}) {
    at::Tensor out = net->forward(ref_[run + ".sample"], ref_["unet.timestep"], ref_["unet.context"],
                                  ref_["unet.text_embeds"], ref_["unet.time_ids"]);
    expect_within(label(run), max_diff(out, ref_[run + ".out"]), 1e-5);
  }
}

// With bf16 weights the UNet computes in bf16 as diffusers does (the
// sinusoidal projections in fp32, then cast): the same kernels on the same
// inputs, so the result matches as closely as in fp32 (on the CPU, bit for
// bit; upcasting the attention to fp32 alone would be off by 1e-2).
TEST_P(SdxlParity, UNetInBf16) {
  Loaded w = Loaded::open(folder() / "unet");
  nn::TensorMap bf16;
  for (const auto& [name, t] : w.tensors) bf16.emplace(name, t.to(at::kBFloat16));
  auto net = sdxl::UNet::bind(unet_config(), bf16, "");
  ASSERT_TRUE(net) << net.error().message;
  const auto b = at::kBFloat16;
  at::Tensor out = net->forward(ref_["unet.sample"].to(b), ref_["unet.timestep"], ref_["unet.context"].to(b),
                                ref_["unet.text_embeds"].to(b), ref_["unet.time_ids"].to(b));
  EXPECT_EQ(out.scalar_type(), b);
  const at::Tensor& expected = ref_["unet.bf16.out"];
  expect_within(label("unet bf16"), max_diff(out, expected), 1e-5);
}

// A single timestep broadcasts over the batch, as diffusers expands it.
TEST_P(SdxlParity, UNetBroadcastsAScalarTimestep) {
  Loaded w = Loaded::open(folder() / "unet");
  auto net = sdxl::UNet::bind(unet_config(), w.tensors, "");
  ASSERT_TRUE(net) << net.error().message;
  const at::Tensor t = ref_["unet.timestep"][1];  // 0-d
  at::Tensor both =
      net->forward(ref_["unet.sample"], t, ref_["unet.context"], ref_["unet.text_embeds"], ref_["unet.time_ids"]);
  at::Tensor each = net->forward(ref_["unet.sample"], at::stack({t, t}), ref_["unet.context"], ref_["unet.text_embeds"],
                                 ref_["unet.time_ids"]);
  EXPECT_TRUE(at::equal(both, each));
}

// A config that disagrees with the weights fails to bind, naming the tensor.
TEST_P(SdxlParity, UNetRefusesAConfigItsWeightsContradict) {
  sdxl::UNetConfig config = unet_config();
  config.use_linear_projection = !config.use_linear_projection;
  Loaded w = Loaded::open(folder() / "unet");
  auto net = sdxl::UNet::bind(config, w.tensors, "");
  ASSERT_FALSE(net);
  EXPECT_EQ(net.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(net.error().message.find("proj_in.weight"), std::string::npos) << net.error().message;
}

TEST_P(SdxlParity, ClipLPenultimate) {
  auto config = nn::parse_clip_config(config_of("text_encoder"), "text_encoder/config.json");
  ASSERT_TRUE(config) << config.error().message;
  config->with_projection = false;  // CLIPTextModel
  Loaded w = Loaded::open(folder() / "text_encoder");
  auto enc = nn::ClipTextEncoder::bind(*config, w.tensors, "");
  ASSERT_TRUE(enc) << enc.error().message;
  nn::ClipOutput out = enc->forward(ref_["clip0.input_ids"]);
  expect_within(label("CLIP-L penultimate"), max_diff(out.penultimate, ref_["clip0.penultimate"]), 1e-5);
  expect_within(label("CLIP-L pooled"), max_diff(out.pooled, ref_["clip0.pooled"]), 1e-5);
}

TEST_P(SdxlParity, ClipGPenultimateAndProjectedPooled) {
  auto config = nn::parse_clip_config(config_of("text_encoder_2"), "text_encoder_2/config.json");
  ASSERT_TRUE(config) << config.error().message;
  Loaded w = Loaded::open(folder() / "text_encoder_2");
  auto enc = nn::ClipTextEncoder::bind(*config, w.tensors, "");
  ASSERT_TRUE(enc) << enc.error().message;
  nn::ClipOutput out = enc->forward(ref_["clip1.input_ids"]);
  expect_within(label("CLIP-G penultimate"), max_diff(out.penultimate, ref_["clip1.penultimate"]), 1e-5);
  expect_within(label("CLIP-G projected pooled"), max_diff(out.pooled, ref_["clip1.pooled"]), 1e-5);
}

TEST_P(SdxlParity, VaeDecoder) {
  auto config = nn::parse_vae_config(config_of("vae"), "vae/config.json");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->latent_channels, 4);
  EXPECT_EQ(config->shift_factor, 0.0);  // SDXL's VAE: "shift_factor": null
  EXPECT_DOUBLE_EQ(config->scaling_factor, GetParam() == "fasttest" ? 0.18215 : 0.13025);
  Loaded w = Loaded::open(folder() / "vae");
  auto net = nn::VaeDecoder::bind(*config, w.tensors, "");
  ASSERT_TRUE(net) << net.error().message;
  expect_within(label("VAE decode"), max_diff(net->forward(ref_["vae.latents"]), ref_["vae.out"]), 1e-5);
}

// UNet2DConditionModel options that SDXL's checkpoints leave at their
// defaults, implemented all the same (scripts/sdxl_reference.py's
// UNET_OPTIONS): "a" has scale-shift time injection, downsample_padding 0,
// center_input_sample, 5x5 and 1x1 in/out kernels, time_embedding_dim,
// mid_block_scale_factor, resnet_out_scale_factor (which diffusers does not
// pass to these block types), reverse_transformer_layers_per_block; "b" no mid block,
// sin-first timestep embeddings with freq_shift 1, upcast_attention.
TEST(SdxlUNetOptions, MatchDiffusers) {
  c10::InferenceMode inference;
  ASSERT_TRUE(std::filesystem::exists(kRefDir / "base.reference.safetensors"));
  Loaded ref = Loaded::open(kRefDir / "base.reference.safetensors");
  for (const std::string name : {"a", "b"}) {
    const std::filesystem::path folder = kRefDir / "unet_options" / name;
    std::ifstream in(folder / "config.json");
    ASSERT_TRUE(in) << folder;
    auto config = sdxl::parse_unet_config(nlohmann::json::parse(in), "unet/config.json");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->mid_block, name != "b");
    Loaded w = Loaded::open(folder);
    auto net = sdxl::UNet::bind(*config, w.tensors, "");
    ASSERT_TRUE(net) << net.error().message;
    const std::string p = "unet_options." + name;
    at::Tensor out = net->forward(ref[p + ".sample"], ref["unet.timestep"], ref["unet.context"],
                                  ref["unet.text_embeds"], ref["unet.time_ids"]);
    expect_within("unet options " + name, max_diff(out, ref[p + ".out"]), 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, SdxlParity, ::testing::Values("base", "vpred", "fasttest"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tp
