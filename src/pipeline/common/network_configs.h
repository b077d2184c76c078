// Private (pipeline): the configs of the networks that several pipeline
// families share (CLIP, T5, the VAE), read from their config.json. Torch-free,
// so that a pipeline's description can be made and checked without LibTorch.
//
// Each parse_* reads a config.json already parsed by the strict reader and
// refuses, naming the file and the field, what the network cannot run:
// kInvalidArgument for malformed or inconsistent values, kUnimplemented for
// valid options that are not implemented.
//
// Threading: plain values and pure functions.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "twistedpic/expected.h"

namespace tp::nn {

// CLIPTextModel / CLIPTextModelWithProjection.
struct ClipConfig {
  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0, heads = 0, layers = 0;
  int64_t projection_dim = 0;
  // CLIPTextModelWithProjection (SD3) projects the pooled state; CLIPTextModel
  // (Flux) has no text_projection and pools the final state as it is. Set by
  // the family from the component's class, not read from config.json.
  bool with_projection = true;
  int64_t max_positions = 77;
  int64_t eos_token_id = 2;  // 2: the legacy rule, pool at the largest id
  std::string act = "quick_gelu";
  double eps = 1e-5;
};
Expected<ClipConfig> parse_clip_config(const nlohmann::json& config, std::string_view origin);

// T5EncoderModel: v1.1 gated-GELU (T5-XXL) or ReLU.
struct T5Config {
  int64_t vocab_size = 0, d_model = 0, d_kv = 0, d_ff = 0, layers = 0, heads = 0;
  int64_t buckets = 32, max_distance = 128;
  bool gated = true;
  std::string act = "gelu_new";
  double eps = 1e-6;
};
Expected<T5Config> parse_t5_config(const nlohmann::json& config, std::string_view origin);

// AutoencoderKL (its decoder).
struct VaeConfig {
  int64_t in_channels = 3, out_channels = 3, latent_channels = 16, layers_per_block = 2, groups = 32;
  std::vector<int64_t> block_out_channels;
  double scaling_factor = 1.5305, shift_factor = 0.0609;
  bool post_quant_conv = false, mid_attention = true;
  // AutoencoderKL's force_upcast (default true): in fp16 the VAE decodes in
  // fp32 (SDXL's stock VAE overflows to NaN in fp16; fixed VAEs set false).
  bool force_upcast = true;
  int64_t scale_factor() const { return int64_t{1} << (block_out_channels.size() - 1); }
};
Expected<VaeConfig> parse_vae_config(const nlohmann::json& config, std::string_view origin);

}  // namespace tp::nn
