// Private (pipeline): what an SD3 / 3.5 pipeline needs from its diffusers
// folder, read once and checked to fit together. Torch-free.
//
// Threading: plain values; an Sd3Spec is immutable once described.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/common/network_configs.h"
#include "pipeline/common/scheduler.h"
#include "pipeline/family.h"
#include "pipeline/spec.h"
#include "text/tokenizer.h"

namespace tp::sd3 {

// SD3Transformer2DModel's config.
struct TransformerConfig {
  int64_t sample_size = 128, patch_size = 2, in_channels = 16, out_channels = 16, layers = 0;
  int64_t head_dim = 64, heads = 0, joint_attention_dim = 0, caption_projection_dim = 0, pooled_projection_dim = 0;
  int64_t pos_embed_max_size = 96;
  std::vector<int64_t> dual_attention_layers;
  std::string qk_norm;  // "" or "rms_norm"
  int64_t inner_dim() const { return heads * head_dim; }
};
Expected<TransformerConfig> parse_transformer_config(const nlohmann::json& config, std::string_view origin);

struct Sd3Spec final : PipelineSpec {
  nn::ClipConfig clip1, clip2;
  std::optional<nn::T5Config> t5;  // absent: T5's share of the context is zeros
  TransformerConfig transformer;
  nn::VaeConfig vae;
  std::shared_ptr<const nn::Scheduler> scheduler;
  std::shared_ptr<const ClipTokenizer> tokenizer1, tokenizer2;
  std::shared_ptr<const T5Tokenizer> tokenizer3;  // with t5

  // Sizes must be multiples of this: the VAE's scale factor times the patch size.
  int size_multiple() const { return static_cast<int>(vae.scale_factor() * transformer.patch_size); }
  // The transformer's sample size in pixels.
  int default_side() const { return static_cast<int>(transformer.sample_size * vae.scale_factor()); }
};

// The SD3 family: StableDiffusion3Pipeline folders (families.cpp registers it).
extern const PipelineFamily kFamily;

}  // namespace tp::sd3
