// Private (pipeline, torch): SD3Transformer2DModel, the MMDiT of SD3 Medium,
// SD3.5 Large / Turbo (qk RMS norm) and SD3.5 Medium (dual-attention layers),
// written against ATen with weights taken by name from its component folder.
//
// A bound transformer holds views into the weights' device arena: it must not
// outlive the lease that keeps them there (pipeline/common/bound_network.h).
// Threading: a bound transformer is immutable; forward() may run from several
// threads at once.
#pragma once

#include <ATen/Tensor.h>

#include <string_view>
#include <vector>

#include "pipeline/common/layers.h"
#include "pipeline/sd3/sd3_spec.h"
#include "twistedpic/expected.h"

namespace tp::sd3 {

using nn::Conv2d;
using nn::Linear;
using nn::TensorMap;

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

}  // namespace tp::sd3
