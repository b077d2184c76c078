#include "pipeline/common/t5.h"

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>

#include <cmath>

#include "pipeline/common/binder.h"

namespace tp::nn {

Expected<T5Encoder> T5Encoder::bind(const T5Config& c, const TensorMap& weights, std::string_view prefix) {
  return bind_checked<T5Encoder>([&] {
    Binder b(weights, prefix);
    T5Encoder e;
    e.config_ = c;
    const int64_t inner = c.heads * c.d_kv;
    // The tied embedding is saved under either name.
    e.embedding_ = b.has("shared.weight") ? b.get("shared.weight", {c.vocab_size, c.d_model})
                                          : b.get("encoder.embed_tokens.weight", {c.vocab_size, c.d_model});
    e.relative_bias_ = b.get("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                             {c.buckets, c.heads});
    for (int64_t i = 0; i < c.layers; ++i) {
      const std::string p = "encoder.block." + std::to_string(i) + ".layer.";
      Layer l;
      l.ln1 = b.get(p + "0.layer_norm.weight", {c.d_model});
      l.q = b.linear(p + "0.SelfAttention.q", c.d_model, inner, false);
      l.k = b.linear(p + "0.SelfAttention.k", c.d_model, inner, false);
      l.v = b.linear(p + "0.SelfAttention.v", c.d_model, inner, false);
      l.o = b.linear(p + "0.SelfAttention.o", inner, c.d_model, false);
      l.ln2 = b.get(p + "1.layer_norm.weight", {c.d_model});
      if (c.gated) {
        l.wi0 = b.linear(p + "1.DenseReluDense.wi_0", c.d_model, c.d_ff, false);
        l.wi1 = b.linear(p + "1.DenseReluDense.wi_1", c.d_model, c.d_ff, false);
      } else {
        l.wi0 = b.linear(p + "1.DenseReluDense.wi", c.d_model, c.d_ff, false);
      }
      l.wo = b.linear(p + "1.DenseReluDense.wo", c.d_ff, c.d_model, false);
      e.layers_.push_back(std::move(l));
    }
    e.final_norm_ = b.get("encoder.final_layer_norm.weight", {c.d_model});
    return e;
  });
}

// (1, heads, L, L): T5's bidirectional relative position buckets, looked up.
at::Tensor T5Encoder::position_bias(int64_t length) const {
  auto opts = at::TensorOptions().dtype(at::kLong).device(relative_bias_.device());
  at::Tensor pos = at::arange(length, opts);
  at::Tensor relative = pos.unsqueeze(0) - pos.unsqueeze(1);  // key - query
  const int64_t half = config_.buckets / 2;
  at::Tensor bucket = (relative > 0).to(at::kLong) * half;
  relative = relative.abs();
  const int64_t max_exact = half / 2;
  at::Tensor large = max_exact + (at::log(relative.to(at::kFloat) / max_exact) /
                                  std::log(static_cast<double>(config_.max_distance) / max_exact) *
                                  (half - max_exact))
                                     .to(at::kLong);
  large = at::minimum(large, at::full_like(large, half - 1));
  bucket = bucket + at::where(relative < max_exact, relative, large);
  return at::embedding(relative_bias_, bucket).permute({2, 0, 1}).unsqueeze(0);
}

at::Tensor T5Encoder::forward(const at::Tensor& ids) const {
  at::Tensor x = at::embedding(embedding_, ids);
  const at::Tensor bias = position_bias(ids.size(1)).to(x.scalar_type());
  // T5 keeps fp16 activations finite by clamping them, as transformers does.
  auto clamp_fp16 = [](at::Tensor t) {
    if (t.scalar_type() != at::kHalf) return t;
    const double max = 65504.0;
    const double v = at::isinf(t).any().item<bool>() ? max - 1000 : max;
    return at::clamp(t, -v, v);
  };
  for (const Layer& l : layers_) {
    at::Tensor h = rms_norm(x, l.ln1, config_.eps);
    // T5 attention has no 1/sqrt(d) scaling: scale 1 undoes SDPA's.
    at::Tensor a = attention(split_heads(l.q(h), config_.heads), split_heads(l.k(h), config_.heads),
                             split_heads(l.v(h), config_.heads), bias, false, /*scale=*/1.0);
    x = clamp_fp16(x + l.o(merge_heads(a)));
    h = rms_norm(x, l.ln2, config_.eps);
    at::Tensor f = activation(l.wi0(h), config_.act);
    if (l.wi1.weight.defined()) f = f * l.wi1(h);
    x = clamp_fp16(x + l.wo(f));
  }
  return rms_norm(x, final_norm_, config_.eps);
}

}  // namespace tp::nn
