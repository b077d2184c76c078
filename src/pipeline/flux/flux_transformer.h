// Private (pipeline, torch): FluxTransformer2DModel, the transformer of FLUX.1
// [dev] (with the guidance embedding) and [schnell] (without): double-stream
// blocks, then single-stream blocks, over [text, image] tokens with a 3-axis
// rotary embedding, written against ATen with weights taken by name from its
// component folder.
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
#include "pipeline/flux/flux_spec.h"
#include "twistedpic/expected.h"

namespace tp::flux {

using nn::Linear;
using nn::TensorMap;

// The rotary embedding of every token, (L, head_dim) fp32 each, interleaved
// (cos and sin of each frequency repeated twice), as FluxPosEmbed makes it.
struct Rotary {
  at::Tensor cos, sin;
};

// FluxPipeline's position ids, fp32 on the CPU: the text's are zeros (length,
// 3); the image's, for rows x cols packed latents, are [0, row, col] (rows*cols, 3).
at::Tensor text_ids(int64_t length);
at::Tensor image_ids(int64_t rows, int64_t cols);

// FluxPipeline's 2 x 2 packing: (B, C, 2*rows, 2*cols) latents <-> (B,
// rows*cols, 4*C) tokens, each token one 2 x 2 patch, channel-major.
at::Tensor pack_latents(const at::Tensor& latents);
at::Tensor unpack_latents(const at::Tensor& tokens, int64_t rows, int64_t cols);

class FluxTransformer {
 public:
  // Errors: kInvalidArgument naming the weight that is missing or misshapen,
  // or a guidance embedding that the config and the weights disagree on.
  static Expected<FluxTransformer> bind(const TransformerConfig& config, const TensorMap& weights,
                                        std::string_view prefix);

  // FluxPosEmbed(theta 10000, axes_dims_rope) over ids (L, 3): the frequencies
  // in float64, the result in fp32 on `device`.
  Rotary rotary(const at::Tensor& ids, at::Device device) const;

  // hidden: (B, N, in_channels) packed latents; timestep: (B) as FluxPipeline
  // passes it (t / 1000); guidance: (B) fp32 guidance scales, defined iff the
  // config has guidance_embeds; context: (B, S, joint_attention_dim); pooled:
  // (B, pooled_projection_dim); rotary: over the S text ids, then the N image
  // ids. Returns the velocity, (B, N, out_channels), packed.
  at::Tensor forward(const at::Tensor& hidden, const at::Tensor& timestep, const at::Tensor& guidance,
                     const at::Tensor& context, const at::Tensor& pooled, const Rotary& rotary) const;
  const TransformerConfig& config() const { return config_; }

 private:
  struct Attention {
    Linear q, k, v, out;                  // out absent in single-stream blocks
    Linear add_q, add_k, add_v, add_out;  // the text stream, in double-stream blocks
    at::Tensor norm_q, norm_k, norm_added_q, norm_added_k;  // RMS norm weights
  };
  struct DoubleBlock {
    Linear norm1, norm1_context;  // AdaLayerNormZero modulations
    Attention attn;
    Linear ff1, ff2, ff_context1, ff_context2;
  };
  struct SingleBlock {
    Linear norm, proj_mlp, proj_out;  // AdaLayerNormZeroSingle; the MLP beside the attention; both out
    Attention attn;
  };
  // Joint attention over [context, x] (double-stream: *context_out receives the
  // text part) or self-attention over x (single-stream, context null).
  at::Tensor attention(const Attention& a, const at::Tensor& x, const at::Tensor* context, at::Tensor* context_out,
                       const Rotary& rotary) const;

  TransformerConfig config_;
  Linear x_embedder_, context_embedder_, time1_, time2_, guidance1_, guidance2_, text1_, text2_, norm_out_, proj_out_;
  std::vector<DoubleBlock> double_blocks_;
  std::vector<SingleBlock> single_blocks_;
};

}  // namespace tp::flux
