// Internal (torch): the networks of a Stable Diffusion 3 / 3.5 pipeline, written
// against ATen with weights taken by name from a diffusers component folder:
//
//   ClipTextEncoder   CLIPTextModelWithProjection (CLIP-L, CLIP-G)
//   T5Encoder         T5EncoderModel (v1.1 gated-GELU, or ReLU)
//   SD3Transformer    SD3Transformer2DModel (SD3 Medium, SD3.5 Large/Turbo with
//                     qk RMS norm, SD3.5 Medium with dual-attention layers)
//   VaeDecoder        AutoencoderKL's decoder with SD3's scaling and shift
//
// Each network is parsed from its config.json (parse_*), then bound to a
// component's tensors (bind): binding checks that every weight the config
// implies exists with the implied shape, so a config that disagrees with its
// weights fails there, naming the tensor, and forward() never meets a missing
// or misshapen weight. A bound network holds views into the weights' arena:
// it must not outlive the lease that keeps them on the device.
//
// Threading: a bound network is immutable; forward() may run from several
// threads at once (ATen's own thread pool does the work).
#pragma once

#include <ATen/Tensor.h>

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "twistedpic/expected.h"

namespace tp::sd3 {

using TensorMap = std::unordered_map<std::string, at::Tensor>;

struct Linear {
  at::Tensor weight, bias;  // bias may be undefined
  at::Tensor operator()(const at::Tensor& x) const;
};

struct Norm {
  at::Tensor weight, bias;  // both undefined without an affine transform
  double eps = 1e-5;
};

struct Conv2d {
  at::Tensor weight, bias;
  int64_t stride = 1, padding = 0;
  at::Tensor operator()(const at::Tensor& x) const;
};

// ---------------------------------------------------------------------------
// CLIP text encoder with projection.

struct ClipConfig {
  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0, heads = 0, layers = 0, projection_dim = 0;
  int64_t max_positions = 77;
  int64_t eos_token_id = 2;  // 2: the legacy rule, pool at the largest id
  std::string act = "quick_gelu";
  double eps = 1e-5;
};
Expected<ClipConfig> parse_clip_config(std::string_view json, std::string_view origin);

struct ClipOutput {
  at::Tensor penultimate;  // (B, L, hidden): the hidden states before the last layer
  at::Tensor pooled;       // (B, projection_dim): the final EOS state, projected
};

class ClipTextEncoder {
 public:
  static Expected<ClipTextEncoder> bind(const ClipConfig& config, const TensorMap& weights, std::string_view prefix);
  // ids: (B, L) int64 on the weights' device, L <= max_positions.
  ClipOutput forward(const at::Tensor& ids) const;
  const ClipConfig& config() const { return config_; }

 private:
  struct Layer {
    Norm ln1, ln2;
    Linear q, k, v, out, fc1, fc2;
  };
  ClipConfig config_;
  at::Tensor token_embedding_, position_embedding_, projection_;
  std::vector<Layer> layers_;
  Norm final_norm_;
};

// ---------------------------------------------------------------------------
// T5 encoder.

struct T5Config {
  int64_t vocab_size = 0, d_model = 0, d_kv = 0, d_ff = 0, layers = 0, heads = 0;
  int64_t buckets = 32, max_distance = 128;
  bool gated = true;
  std::string act = "gelu_new";
  double eps = 1e-6;
};
Expected<T5Config> parse_t5_config(std::string_view json, std::string_view origin);

class T5Encoder {
 public:
  static Expected<T5Encoder> bind(const T5Config& config, const TensorMap& weights, std::string_view prefix);
  // ids: (B, L) int64. Returns the last hidden state, (B, L, d_model).
  at::Tensor forward(const at::Tensor& ids) const;
  const T5Config& config() const { return config_; }

 private:
  struct Layer {
    at::Tensor ln1, ln2;  // RMS norm weights
    Linear q, k, v, o, wi0, wi1, wo;  // wi1 undefined when not gated
  };
  at::Tensor position_bias(int64_t length) const;
  T5Config config_;
  at::Tensor embedding_, relative_bias_, final_norm_;
  std::vector<Layer> layers_;
};

// ---------------------------------------------------------------------------
// The MMDiT transformer.

struct TransformerConfig {
  int64_t sample_size = 128, patch_size = 2, in_channels = 16, out_channels = 16, layers = 0;
  int64_t head_dim = 64, heads = 0, joint_attention_dim = 0, caption_projection_dim = 0, pooled_projection_dim = 0;
  int64_t pos_embed_max_size = 96;
  std::vector<int64_t> dual_attention_layers;
  std::string qk_norm;  // "" or "rms_norm"
  int64_t inner_dim() const { return heads * head_dim; }
};
Expected<TransformerConfig> parse_transformer_config(std::string_view json, std::string_view origin);

class SD3Transformer {
 public:
  static Expected<SD3Transformer> bind(const TransformerConfig& config, const TensorMap& weights,
                                       std::string_view prefix);
  // latents (B, C, H, W); timestep (B) float; context (B, S, joint_attention_dim);
  // pooled (B, pooled_projection_dim). Returns the velocity, (B, out_channels, H, W).
  at::Tensor forward(const at::Tensor& latents, const at::Tensor& timestep, const at::Tensor& context,
                     const at::Tensor& pooled) const;
  const TransformerConfig& config() const { return config_; }

 private:
  struct Attention {
    Linear q, k, v, out;
    Linear add_q, add_k, add_v, add_out;  // joint attention's context stream; add_out absent when context_pre_only
    at::Tensor norm_q, norm_k, norm_added_q, norm_added_k;  // RMS norm weights, with qk_norm
  };
  struct Block {
    bool context_pre_only = false, dual = false;
    Linear norm1, norm1_context;  // AdaLayerNormZero(X) / AdaLayerNormZero or Continuous modulation
    Attention attn, attn2;
    Linear ff1, ff2, ff_context1, ff_context2;
  };
  at::Tensor attention(const Attention& a, const at::Tensor& x, const at::Tensor* context,
                       at::Tensor* context_out) const;
  TransformerConfig config_;
  Conv2d patch_embed_;
  at::Tensor pos_embed_;
  Linear time1_, time2_, text1_, text2_, context_embedder_, norm_out_, proj_out_;
  std::vector<Block> blocks_;
};

// ---------------------------------------------------------------------------
// The VAE decoder.

struct VaeConfig {
  int64_t in_channels = 3, out_channels = 3, latent_channels = 16, layers_per_block = 2, groups = 32;
  std::vector<int64_t> block_out_channels;
  double scaling_factor = 1.5305, shift_factor = 0.0609;
  bool post_quant_conv = false, mid_attention = true;
  int64_t scale_factor() const { return int64_t{1} << (block_out_channels.size() - 1); }
};
Expected<VaeConfig> parse_vae_config(std::string_view json, std::string_view origin);

class VaeDecoder {
 public:
  static Expected<VaeDecoder> bind(const VaeConfig& config, const TensorMap& weights, std::string_view prefix);
  // Decodes latents as the VAE sees them (already unscaled), (B, latent, h, w) -> (B, 3, h*f, w*f) in [-1, 1].
  at::Tensor forward(const at::Tensor& latents) const;
  // latents / scaling_factor + shift_factor, then forward().
  at::Tensor decode_scaled(const at::Tensor& latents) const;
  const VaeConfig& config() const { return config_; }

 private:
  struct Resnet {
    Norm norm1, norm2;
    Conv2d conv1, conv2, shortcut;  // shortcut undefined when the channels agree
  };
  struct Up {
    std::vector<Resnet> resnets;
    std::optional<Conv2d> upsample;
  };
  at::Tensor resnet(const Resnet& r, const at::Tensor& x) const;
  VaeConfig config_;
  std::optional<Conv2d> post_quant_conv_;
  Conv2d conv_in_, conv_out_;
  Resnet mid1_, mid2_;
  Norm mid_attn_norm_, norm_out_;
  Linear mid_q_, mid_k_, mid_v_, mid_out_;
  std::vector<Up> ups_;
};

}  // namespace tp::sd3
