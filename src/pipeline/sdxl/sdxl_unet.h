// Private (pipeline, torch): UNet2DConditionModel as SDXL configures it,
// written against ATen with weights taken by diffusers' names: ResNet blocks
// with the time embedding injected, cross-attention transformer blocks
// (GroupNorm, linear or 1x1-convolution projection, self-attention,
// cross-attention, GEGLU feed-forward), down, mid and up blocks joined by skip
// connections, and the "text_time" additional embedding (the time ids through
// their own sinusoidal projection, joined with the pooled text embedding).
//
// It computes in the weights' dtype, as diffusers does: the sinusoidal
// projections in fp32, then cast.
//
// A bound UNet holds views into the weights' device arena: it must not
// outlive the lease that keeps them there (pipeline/common/bound_network.h).
// Threading: a bound UNet is immutable; forward() may run from several
// threads at once.
#pragma once

#include <ATen/Tensor.h>

#include <optional>
#include <string_view>
#include <vector>

#include "pipeline/common/layers.h"
#include "pipeline/sdxl/unet_config.h"
#include "twistedpic/expected.h"

namespace tp::sdxl {

class UNet {
 public:
  // kInvalidArgument, naming the tensor, when a weight the config implies is missing or misshapen.
  static Expected<UNet> bind(const UNetConfig& config, const nn::TensorMap& weights, std::string_view prefix);
  // sample (B, in_channels, h, w); timestep (B) or (), float (fractional timesteps are fine);
  // context (B, L, cross_attention_dim); text_embeds (B, pooled width); time_ids (B, k) with
  // pooled width + k * addition_time_embed_dim == projection_class_embeddings_input_dim (k = 6 for SDXL).
  // Returns (B, out_channels, h, w) in the weights' dtype.
  at::Tensor forward(const at::Tensor& sample, const at::Tensor& timestep, const at::Tensor& context,
                     const at::Tensor& text_embeds, const at::Tensor& time_ids) const;
  const UNetConfig& config() const { return config_; }

 private:
  struct Resnet {
    nn::Norm norm1, norm2;
    nn::Conv2d conv1, conv2, shortcut;  // shortcut undefined when the channels agree
    nn::Linear time_proj;
  };
  struct Attention {
    nn::Linear q, k, v, out;
  };
  struct TransformerBlock {
    nn::Norm norm1, norm2, norm3;
    Attention self_attn, cross_attn;
    nn::Linear ff_in, ff_out;  // GEGLU
  };
  // Transformer2DModel: GroupNorm, proj_in, blocks, proj_out, residual.
  struct Transformer {
    int64_t heads = 1;
    nn::Norm norm;
    nn::Linear proj_in, proj_out;            // use_linear_projection
    nn::Conv2d proj_in_conv, proj_out_conv;  // otherwise
    std::vector<TransformerBlock> blocks;
  };
  struct Block {
    std::vector<Resnet> resnets;
    std::vector<Transformer> attentions;  // empty, or one per resnet (the mid block: after resnets[0])
    std::optional<nn::Conv2d> resample;   // a down block's Downsample2D, an up block's Upsample2D
  };
  at::Tensor resnet(const Resnet& r, const at::Tensor& x, const at::Tensor& emb, double scale) const;
  at::Tensor transformer(const Transformer& t, const at::Tensor& x, const at::Tensor& context) const;
  at::Tensor sinusoid(const at::Tensor& t, int64_t dim) const;

  UNetConfig config_;
  nn::Conv2d conv_in_, conv_out_;
  nn::Linear time1_, time2_, add1_, add2_;
  std::vector<Block> down_, up_;
  std::optional<Block> mid_;
  nn::Norm norm_out_;
};

}  // namespace tp::sdxl
