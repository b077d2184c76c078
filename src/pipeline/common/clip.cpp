#include "pipeline/common/clip.h"

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>

#include <cmath>

#include "pipeline/common/binder.h"

namespace tp::nn {

Expected<ClipTextEncoder> ClipTextEncoder::bind(const ClipConfig& c, const TensorMap& weights,
                                                std::string_view prefix) {
  return bind_checked<ClipTextEncoder>([&] {
    Binder b(weights, prefix);
    ClipTextEncoder e;
    e.config_ = c;
    const int64_t h = c.hidden_size;
    // CLIPTextModel's tensors are saved with the "text_model." prefix by
    // transformers 4 (the Hub's folders) and without it by transformers 5.
    const std::string m = !b.has("text_model.embeddings.token_embedding.weight") &&
                                   b.has("embeddings.token_embedding.weight") && !c.with_projection
                               ? ""
                               : "text_model.";
    e.token_embedding_ = b.get(m + "embeddings.token_embedding.weight", {c.vocab_size, h});
    e.position_embedding_ = b.get(m + "embeddings.position_embedding.weight", {c.max_positions, h});
    for (int64_t i = 0; i < c.layers; ++i) {
      const std::string p = m + "encoder.layers." + std::to_string(i) + ".";
      e.layers_.push_back({b.norm(p + "layer_norm1", h, c.eps), b.norm(p + "layer_norm2", h, c.eps),
                           b.linear(p + "self_attn.q_proj", h, h), b.linear(p + "self_attn.k_proj", h, h),
                           b.linear(p + "self_attn.v_proj", h, h), b.linear(p + "self_attn.out_proj", h, h),
                           b.linear(p + "mlp.fc1", h, c.intermediate_size),
                           b.linear(p + "mlp.fc2", c.intermediate_size, h)});
    }
    e.final_norm_ = b.norm(m + "final_layer_norm", h, c.eps);
    if (c.with_projection) e.projection_ = b.get("text_projection.weight", {c.projection_dim, h});
    return e;
  });
}

ClipOutput ClipTextEncoder::forward(const at::Tensor& ids) const {
  const int64_t length = ids.size(1);
  at::Tensor x = at::embedding(token_embedding_, ids) + position_embedding_.slice(0, 0, length);
  at::Tensor penultimate;
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (i + 1 == layers_.size()) penultimate = x;
    const Layer& l = layers_[i];
    at::Tensor h = layer_norm(x, l.ln1);
    at::Tensor a = attention(split_heads(l.q(h), config_.heads), split_heads(l.k(h), config_.heads),
                             split_heads(l.v(h), config_.heads), {}, /*causal=*/true);
    x = x + l.out(merge_heads(a));
    x = x + l.fc2(activation(l.fc1(layer_norm(x, l.ln2)), config_.act));
  }
  at::Tensor last = layer_norm(x, final_norm_);
  // The EOS position: transformers' legacy rule (eos_token_id == 2) takes the
  // largest id, the current one the first EOS.
  at::Tensor eos = config_.eos_token_id == 2 ? ids.to(at::kInt).argmax(-1)
                                             : (ids.to(at::kInt) == config_.eos_token_id).to(at::kInt).argmax(-1);
  at::Tensor pooled = last.index({at::arange(ids.size(0), ids.options().dtype(at::kLong)), eos});
  return {penultimate, projection_.defined() ? at::linear(pooled, projection_) : pooled};
}

}  // namespace tp::nn
