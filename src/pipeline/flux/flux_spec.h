// Private (pipeline): what a Flux pipeline (FLUX.1 [dev] and [schnell]) needs
// from its diffusers folder, read once and checked to fit together. Torch-free.
//
// Threading: plain values; a FluxSpec is immutable once described.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <memory>
#include <string>
#include <string_view>

#include "pipeline/common/network_configs.h"
#include "pipeline/common/scheduler.h"
#include "pipeline/family.h"
#include "pipeline/spec.h"
#include "text/tokenizer.h"

namespace tp::flux {

// FluxTransformer2DModel's config.
struct TransformerConfig {
  int64_t patch_size = 1, in_channels = 64, out_channels = 64, layers = 19, single_layers = 38;
  int64_t head_dim = 128, heads = 24, joint_attention_dim = 4096, pooled_projection_dim = 768;
  bool guidance_embeds = false;  // FLUX.1 [dev]: the guidance scale is an input of the network
  std::array<int64_t, 3> axes_dims_rope{16, 56, 56};
  int64_t inner_dim() const { return heads * head_dim; }
};
Expected<TransformerConfig> parse_transformer_config(const nlohmann::json& config, std::string_view origin);

// FluxPipeline's defaults (diffusers): 28 steps, guidance 3.5, 1024 x 1024.
inline constexpr GenerationDefaults kDefaults{28, 3.5};
inline constexpr int kDefaultSampleSize = 128;  // latent pixels; times the VAE's scale factor
inline constexpr int kClipLength = 77;
// T5 tokens: FluxPipeline refuses more than 512; FLUX.1 [schnell] (no guidance
// embedding) was trained with 256.
inline constexpr int kMaxT5Length = 512;
inline constexpr int kMaxT5LengthSchnell = 256;

struct FluxSpec final : PipelineSpec {
  nn::ClipConfig clip;  // CLIPTextModel: its pooled output only
  nn::T5Config t5;
  TransformerConfig transformer;
  nn::VaeConfig vae;
  std::shared_ptr<const nn::FlowMatchEulerScheduler> scheduler;
  std::shared_ptr<const ClipTokenizer> tokenizer;
  std::shared_ptr<const T5Tokenizer> tokenizer2;

  // Sizes must be multiples of this: the VAE's scale factor times the 2 x 2 packing.
  int size_multiple() const { return static_cast<int>(vae.scale_factor() * 2); }
  int default_side() const { return static_cast<int>(kDefaultSampleSize * vae.scale_factor()); }
  int max_sequence_length() const { return transformer.guidance_embeds ? kMaxT5Length : kMaxT5LengthSchnell; }
};

// The options of a Flux request (GenerateRequest::options): "true_cfg_scale".
extern const std::string_view kRequestOptions[1];

// The Flux family: FluxPipeline folders (families.cpp registers it).
extern const PipelineFamily kFamily;

}  // namespace tp::flux
