#include "pipeline/sd3/sd3_transformer.h"

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>

#include <algorithm>

#include "pipeline/common/binder.h"

namespace tp::sd3 {

using nn::layer_norm_plain;
using nn::merge_heads;
using nn::rms_norm;
using nn::split_heads;

Expected<SD3Transformer> SD3Transformer::bind(const TransformerConfig& c, const TensorMap& weights,
                                              std::string_view prefix) {
  return nn::bind_checked<SD3Transformer>([&] {
    nn::Binder b(weights, prefix);
    SD3Transformer t;
    t.config_ = c;
    const int64_t d = c.inner_dim(), p = c.patch_size;
    t.patch_embed_ = b.conv("pos_embed.proj", c.in_channels, d, p, p, 0);
    t.pos_embed_ = b.get("pos_embed.pos_embed", {1, c.pos_embed_max_size * c.pos_embed_max_size, d});
    t.time1_ = b.linear("time_text_embed.timestep_embedder.linear_1", 256, d);
    t.time2_ = b.linear("time_text_embed.timestep_embedder.linear_2", d, d);
    t.text1_ = b.linear("time_text_embed.text_embedder.linear_1", c.pooled_projection_dim, d);
    t.text2_ = b.linear("time_text_embed.text_embedder.linear_2", d, d);
    t.context_embedder_ = b.linear("context_embedder", c.joint_attention_dim, c.caption_projection_dim);
    const bool qk = c.qk_norm == "rms_norm";
    auto attention = [&](const std::string& n, bool joint, bool context_out) {
      Attention a;
      a.q = b.linear(n + ".to_q", d, d);
      a.k = b.linear(n + ".to_k", d, d);
      a.v = b.linear(n + ".to_v", d, d);
      a.out = b.linear(n + ".to_out.0", d, d);
      if (qk) {
        a.norm_q = b.get(n + ".norm_q.weight", {c.head_dim});
        a.norm_k = b.get(n + ".norm_k.weight", {c.head_dim});
      }
      if (joint) {
        a.add_q = b.linear(n + ".add_q_proj", d, d);
        a.add_k = b.linear(n + ".add_k_proj", d, d);
        a.add_v = b.linear(n + ".add_v_proj", d, d);
        if (context_out) a.add_out = b.linear(n + ".to_add_out", d, d);
        if (qk) {
          a.norm_added_q = b.get(n + ".norm_added_q.weight", {c.head_dim});
          a.norm_added_k = b.get(n + ".norm_added_k.weight", {c.head_dim});
        }
      }
      return a;
    };
    for (int64_t i = 0; i < c.layers; ++i) {
      const std::string n = "transformer_blocks." + std::to_string(i) + ".";
      Block k;
      k.context_pre_only = i == c.layers - 1;
      k.dual = std::find(c.dual_attention_layers.begin(), c.dual_attention_layers.end(), i) !=
               c.dual_attention_layers.end();
      k.norm1 = b.linear(n + "norm1.linear", d, (k.dual ? 9 : 6) * d);
      k.norm1_context = b.linear(n + "norm1_context.linear", d, (k.context_pre_only ? 2 : 6) * d);
      k.attn = attention(n + "attn", true, !k.context_pre_only);
      if (k.dual) k.attn2 = attention(n + "attn2", false, false);
      k.ff1 = b.linear(n + "ff.net.0.proj", d, 4 * d);
      k.ff2 = b.linear(n + "ff.net.2", 4 * d, d);
      if (!k.context_pre_only) {
        k.ff_context1 = b.linear(n + "ff_context.net.0.proj", d, 4 * d);
        k.ff_context2 = b.linear(n + "ff_context.net.2", 4 * d, d);
      }
      t.blocks_.push_back(std::move(k));
    }
    t.norm_out_ = b.linear("norm_out.linear", d, 2 * d);
    t.proj_out_ = b.linear("proj_out", d, p * p * c.out_channels);
    return t;
  });
}

// Self-attention over x, joined with the context stream when `context` is
// given (its result goes to *context_out, projected unless context_pre_only).
at::Tensor SD3Transformer::attention(const Attention& a, const at::Tensor& x, const at::Tensor* context,
                                     at::Tensor* context_out) const {
  const int64_t heads = config_.heads;
  at::Tensor q = split_heads(a.q(x), heads), k = split_heads(a.k(x), heads), v = split_heads(a.v(x), heads);
  if (a.norm_q.defined()) {
    q = rms_norm(q, a.norm_q, 1e-6);
    k = rms_norm(k, a.norm_k, 1e-6);
  }
  if (context) {
    at::Tensor cq = split_heads(a.add_q(*context), heads), ck = split_heads(a.add_k(*context), heads);
    at::Tensor cv = split_heads(a.add_v(*context), heads);
    if (a.norm_added_q.defined()) {
      cq = rms_norm(cq, a.norm_added_q, 1e-6);
      ck = rms_norm(ck, a.norm_added_k, 1e-6);
    }
    q = at::cat({q, cq}, 2);
    k = at::cat({k, ck}, 2);
    v = at::cat({v, cv}, 2);
  }
  at::Tensor o = merge_heads(nn::attention(q, k, v)).to(q.scalar_type());
  if (context) {
    const int64_t n = x.size(1);
    at::Tensor c = o.slice(1, n);
    o = o.slice(1, 0, n);
    if (a.add_out.weight.defined()) *context_out = a.add_out(c);
  }
  return a.out(o);
}

at::Tensor SD3Transformer::forward(const at::Tensor& latents, const at::Tensor& timestep, const at::Tensor& context,
                                   const at::Tensor& pooled) const {
  const TransformerConfig& c = config_;
  const int64_t batch = latents.size(0), p = c.patch_size;
  const int64_t h = latents.size(2) / p, w = latents.size(3) / p;

  // Patches plus the centre crop of the position embedding.
  at::Tensor x = patch_embed_(latents).flatten(2).transpose(1, 2);
  const int64_t m = c.pos_embed_max_size, top = (m - h) / 2, left = (m - w) / 2;
  at::Tensor pos = pos_embed_.reshape({1, m, m, -1}).slice(1, top, top + h).slice(2, left, left + w);
  x = (x + pos.reshape({1, h * w, -1})).to(x.scalar_type());

  // Timestep (sinusoidal, cos first) plus pooled text.
  at::Tensor t_proj = nn::timestep_embedding(timestep.to(latents.device()), 256).to(pooled.scalar_type());
  at::Tensor temb = time2_(at::silu(time1_(t_proj))) + text2_(at::silu(text1_(pooled)));
  at::Tensor silu_temb = at::silu(temb);
  at::Tensor ctx = context_embedder_(context);

  for (const Block& k : blocks_) {
    std::vector<at::Tensor> m1 = k.norm1(silu_temb).chunk(k.dual ? 9 : 6, 1);
    auto mod = [](const at::Tensor& v, const at::Tensor& scale, const at::Tensor& shift) {
      return v * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1);
    };
    at::Tensor nx0 = layer_norm_plain(x);
    at::Tensor nx = mod(nx0, m1[1], m1[0]);
    at::Tensor nctx, context_attn;
    std::vector<at::Tensor> mc;
    if (k.context_pre_only) {
      std::vector<at::Tensor> s = k.norm1_context(silu_temb.to(ctx.scalar_type())).chunk(2, 1);
      nctx = mod(layer_norm_plain(ctx), s[0], s[1]);  // AdaLayerNormContinuous: scale first
    } else {
      mc = k.norm1_context(silu_temb).chunk(6, 1);
      nctx = mod(layer_norm_plain(ctx), mc[1], mc[0]);
    }
    at::Tensor attn = attention(k.attn, nx, &nctx, &context_attn);
    x = x + m1[2].unsqueeze(1) * attn;
    if (k.dual) x = x + m1[8].unsqueeze(1) * attention(k.attn2, mod(nx0, m1[7], m1[6]), nullptr, nullptr);
    at::Tensor ff = k.ff2(at::gelu(k.ff1(mod(layer_norm_plain(x), m1[4], m1[3])), "tanh"));
    x = x + m1[5].unsqueeze(1) * ff;
    if (!k.context_pre_only) {
      ctx = ctx + mc[2].unsqueeze(1) * context_attn;
      at::Tensor cff = k.ff_context2(at::gelu(k.ff_context1(mod(layer_norm_plain(ctx), mc[4], mc[3])), "tanh"));
      ctx = ctx + mc[5].unsqueeze(1) * cff;
    }
  }

  std::vector<at::Tensor> s = norm_out_(silu_temb.to(x.scalar_type())).chunk(2, 1);
  x = proj_out_(layer_norm_plain(x) * (1 + s[0].unsqueeze(1)) + s[1].unsqueeze(1));
  // Unpatchify: (B, h*w, p*p*C) -> (B, C, h*p, w*p).
  x = x.reshape({batch, h, w, p, p, c.out_channels}).permute({0, 5, 1, 3, 2, 4});
  return x.reshape({batch, c.out_channels, h * p, w * p});
}

}  // namespace tp::sd3
