#include "pipeline/flux/flux_transformer.h"

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>

#include "pipeline/common/binder.h"
#include "pipeline/flux/flux_checkpoint.h"

namespace tp::flux {

using nn::layer_norm_plain;

namespace {

constexpr double kRopeTheta = 10000.0;
constexpr const char* kGuidanceWeight = "time_text_embed.guidance_embedder.linear_1.weight";

// torch.nn.RMSNorm(head_dim, eps=1e-6) over the last axis, as diffusers' FluxAttention has it.
at::Tensor rms(const at::Tensor& x, const at::Tensor& weight) {
  return at::rms_norm(x, {x.size(-1)}, weight, 1e-6);
}

// diffusers' apply_rotary_emb(use_real, unbind_dim -1, sequence_dim 1): pairs
// (x0, x1) rotate as complex numbers; x is (B, L, H, D), cos and sin (L, D).
at::Tensor apply_rotary(const at::Tensor& x, const Rotary& r) {
  std::vector<int64_t> pairs(x.sizes().begin(), x.sizes().end() - 1);
  pairs.push_back(-1);
  pairs.push_back(2);
  std::vector<at::Tensor> parts = x.reshape(pairs).unbind(-1);
  at::Tensor rotated = at::stack({-parts[1], parts[0]}, -1).flatten(3);
  const at::Tensor cos = r.cos.unsqueeze(1), sin = r.sin.unsqueeze(1);  // (L, 1, D)
  return (x.to(at::kFloat) * cos + rotated.to(at::kFloat) * sin).to(x.scalar_type());
}

// x * (1 + scale) + shift, per sample.
at::Tensor modulate(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& shift) {
  return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1);
}

// fp16 activations are clipped to its range, as diffusers does.
at::Tensor clip_fp16(const at::Tensor& x) { return x.scalar_type() == at::kHalf ? x.clip(-65504, 65504) : x; }

}  // namespace

at::Tensor text_ids(int64_t length) { return at::zeros({length, 3}, at::kFloat); }

at::Tensor image_ids(int64_t rows, int64_t cols) {
  at::Tensor ids = at::zeros({rows, cols, 3}, at::kFloat);
  ids.select(2, 1).add_(at::arange(rows, at::kFloat).unsqueeze(1));
  ids.select(2, 2).add_(at::arange(cols, at::kFloat).unsqueeze(0));
  return ids.reshape({rows * cols, 3});
}

at::Tensor pack_latents(const at::Tensor& latents) {
  const int64_t b = latents.size(0), c = latents.size(1), rows = latents.size(2) / 2, cols = latents.size(3) / 2;
  return latents.view({b, c, rows, 2, cols, 2}).permute({0, 2, 4, 1, 3, 5}).reshape({b, rows * cols, c * 4});
}

at::Tensor unpack_latents(const at::Tensor& tokens, int64_t rows, int64_t cols) {
  const int64_t b = tokens.size(0), c = tokens.size(2) / 4;
  return tokens.view({b, rows, cols, c, 2, 2}).permute({0, 3, 1, 4, 2, 5}).reshape({b, c, rows * 2, cols * 2});
}

Expected<FluxTransformer> FluxTransformer::bind(const TransformerConfig& c, const TensorMap& weights,
                                                std::string_view prefix) {
  if (prefix.empty()) {
    TP_TRY(check_known_layout(weights));
    if (is_bfl_layout(weights)) {  // flux1-dev.safetensors and the like
      TP_ASSIGN_OR_RETURN(TensorMap mapped, from_bfl_layout(weights, c));
      return bind(c, mapped, prefix);
    }
  }
  return nn::bind_checked<FluxTransformer>([&] {
    nn::Binder b(weights, prefix);
    if (!c.guidance_embeds && b.has(kGuidanceWeight))
      throw nn::BindError{Error{ErrorCode::kInvalidArgument,
                                std::string("the weights hold a guidance embedding ('") + kGuidanceWeight +
                                    "'), but config.json does not set 'guidance_embeds'"}};
    if (c.guidance_embeds && !b.has(kGuidanceWeight))
      throw nn::BindError{Error{ErrorCode::kInvalidArgument,
                                std::string("config.json sets 'guidance_embeds', but the weights have no guidance "
                                            "embedding ('") + kGuidanceWeight + "')"}};
    FluxTransformer t;
    t.config_ = c;
    const int64_t d = c.inner_dim(), hd = c.head_dim;
    t.x_embedder_ = b.linear("x_embedder", c.in_channels, d);
    t.context_embedder_ = b.linear("context_embedder", c.joint_attention_dim, d);
    t.time1_ = b.linear("time_text_embed.timestep_embedder.linear_1", 256, d);
    t.time2_ = b.linear("time_text_embed.timestep_embedder.linear_2", d, d);
    if (c.guidance_embeds) {
      t.guidance1_ = b.linear("time_text_embed.guidance_embedder.linear_1", 256, d);
      t.guidance2_ = b.linear("time_text_embed.guidance_embedder.linear_2", d, d);
    }
    t.text1_ = b.linear("time_text_embed.text_embedder.linear_1", c.pooled_projection_dim, d);
    t.text2_ = b.linear("time_text_embed.text_embedder.linear_2", d, d);
    auto attention = [&](const std::string& n, bool joint) {
      Attention a;
      a.q = b.linear(n + ".to_q", d, d);
      a.k = b.linear(n + ".to_k", d, d);
      a.v = b.linear(n + ".to_v", d, d);
      a.norm_q = b.get(n + ".norm_q.weight", {hd});
      a.norm_k = b.get(n + ".norm_k.weight", {hd});
      if (joint) {
        a.out = b.linear(n + ".to_out.0", d, d);
        a.add_q = b.linear(n + ".add_q_proj", d, d);
        a.add_k = b.linear(n + ".add_k_proj", d, d);
        a.add_v = b.linear(n + ".add_v_proj", d, d);
        a.add_out = b.linear(n + ".to_add_out", d, d);
        a.norm_added_q = b.get(n + ".norm_added_q.weight", {hd});
        a.norm_added_k = b.get(n + ".norm_added_k.weight", {hd});
      }
      return a;
    };
    for (int64_t i = 0; i < c.layers; ++i) {
      const std::string n = "transformer_blocks." + std::to_string(i) + ".";
      DoubleBlock k;
      k.norm1 = b.linear(n + "norm1.linear", d, 6 * d);
      k.norm1_context = b.linear(n + "norm1_context.linear", d, 6 * d);
      k.attn = attention(n + "attn", true);
      k.ff1 = b.linear(n + "ff.net.0.proj", d, 4 * d);
      k.ff2 = b.linear(n + "ff.net.2", 4 * d, d);
      k.ff_context1 = b.linear(n + "ff_context.net.0.proj", d, 4 * d);
      k.ff_context2 = b.linear(n + "ff_context.net.2", 4 * d, d);
      t.double_blocks_.push_back(std::move(k));
    }
    for (int64_t i = 0; i < c.single_layers; ++i) {
      const std::string n = "single_transformer_blocks." + std::to_string(i) + ".";
      SingleBlock k;
      k.norm = b.linear(n + "norm.linear", d, 3 * d);
      k.proj_mlp = b.linear(n + "proj_mlp", d, 4 * d);
      k.proj_out = b.linear(n + "proj_out", 5 * d, d);
      k.attn = attention(n + "attn", false);
      t.single_blocks_.push_back(std::move(k));
    }
    t.norm_out_ = b.linear("norm_out.linear", d, 2 * d);
    t.proj_out_ = b.linear("proj_out", d, c.patch_size * c.patch_size * c.out_channels);
    return t;
  });
}

Rotary FluxTransformer::rotary(const at::Tensor& ids, at::Device device) const {
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor pos = ids.to(at::kFloat).cpu();
  std::vector<at::Tensor> cos, sin;
  for (int64_t axis = 0; axis < 3; ++axis) {
    const int64_t dim = config_.axes_dims_rope[axis];
    at::Tensor freqs = at::reciprocal(at::pow(kRopeTheta, at::arange(0, dim, 2, f64) / static_cast<double>(dim)));
    at::Tensor angles = at::outer(pos.select(1, axis).to(at::kDouble), freqs);  // (L, dim / 2), float64
    cos.push_back(angles.cos().repeat_interleave(2, 1).to(at::kFloat));
    sin.push_back(angles.sin().repeat_interleave(2, 1).to(at::kFloat));
  }
  return {at::cat(cos, -1).to(device), at::cat(sin, -1).to(device)};
}

at::Tensor FluxTransformer::attention(const Attention& a, const at::Tensor& x, const at::Tensor* context,
                                      at::Tensor* context_out, const Rotary& rotary) const {
  // Heads as (B, L, H, D), diffusers' layout: the norms, the concatenation and
  // the rotation run on contiguous tensors; SDPA gets (B, H, L, D) views.
  const int64_t heads = config_.heads;
  auto split = [heads](const at::Tensor& t) { return t.view({t.size(0), t.size(1), heads, -1}); };
  at::Tensor q = rms(split(a.q(x)), a.norm_q), k = rms(split(a.k(x)), a.norm_k), v = split(a.v(x));
  if (context) {
    // [text, image]: the text stream first (SD3 puts it last).
    q = at::cat({rms(split(a.add_q(*context)), a.norm_added_q), q}, 1);
    k = at::cat({rms(split(a.add_k(*context)), a.norm_added_k), k}, 1);
    v = at::cat({split(a.add_v(*context)), v}, 1);
  }
  q = apply_rotary(q, rotary);
  k = apply_rotary(k, rotary);
  at::Tensor o = nn::attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2).flatten(2);
  o = o.to(q.scalar_type());
  if (!context) return o;
  const int64_t text = context->size(1);
  *context_out = a.add_out(o.slice(1, 0, text));
  return a.out(o.slice(1, text));
}

at::Tensor FluxTransformer::forward(const at::Tensor& hidden, const at::Tensor& timestep, const at::Tensor& guidance,
                                    const at::Tensor& context, const at::Tensor& pooled, const Rotary& rotary) const {
  at::Tensor x = x_embedder_(hidden);
  const at::ScalarType dtype = x.scalar_type();

  // Timestep (and guidance) embeddings plus the pooled text, as
  // CombinedTimestep(Guidance)TextProjEmbeddings: the inputs in the
  // activations' dtype, times 1000, then sinusoidal (fp32), then the MLPs.
  auto embed = [&](const at::Tensor& v, const Linear& l1, const Linear& l2) {
    at::Tensor proj = nn::timestep_embedding(v.to(x.device()).to(dtype) * 1000, 256).to(pooled.scalar_type());
    return l2(at::silu(l1(proj)));
  };
  at::Tensor temb = embed(timestep, time1_, time2_);
  if (config_.guidance_embeds) temb = temb + embed(guidance, guidance1_, guidance2_);
  temb = temb + text2_(at::silu(text1_(pooled)));
  const at::Tensor silu_temb = at::silu(temb);
  at::Tensor ctx = context_embedder_(context);

  for (const DoubleBlock& k : double_blocks_) {
    std::vector<at::Tensor> m = k.norm1(silu_temb).chunk(6, 1);  // shift, scale, gate (attention), then (MLP)
    std::vector<at::Tensor> mc = k.norm1_context(silu_temb).chunk(6, 1);
    at::Tensor nctx = modulate(layer_norm_plain(ctx), mc[1], mc[0]);
    at::Tensor context_attn;
    at::Tensor attn = attention(k.attn, modulate(layer_norm_plain(x), m[1], m[0]), &nctx, &context_attn, rotary);
    x = x + m[2].unsqueeze(1) * attn;
    x = x + m[5].unsqueeze(1) * k.ff2(at::gelu(k.ff1(modulate(layer_norm_plain(x), m[4], m[3])), "tanh"));
    ctx = ctx + mc[2].unsqueeze(1) * context_attn;
    at::Tensor cff = k.ff_context2(at::gelu(k.ff_context1(modulate(layer_norm_plain(ctx), mc[4], mc[3])), "tanh"));
    ctx = clip_fp16(ctx + mc[5].unsqueeze(1) * cff);
  }

  const int64_t text = ctx.size(1);
  at::Tensor h = at::cat({ctx, x}, 1);
  for (const SingleBlock& k : single_blocks_) {
    std::vector<at::Tensor> m = k.norm(silu_temb).chunk(3, 1);  // shift, scale, gate
    at::Tensor nh = modulate(layer_norm_plain(h), m[1], m[0]);
    at::Tensor mlp = at::gelu(k.proj_mlp(nh), "tanh");
    at::Tensor attn = attention(k.attn, nh, nullptr, nullptr, rotary);
    h = clip_fp16(h + m[2].unsqueeze(1) * k.proj_out(at::cat({attn, mlp}, 2)));
  }
  x = h.slice(1, text);

  // AdaLayerNormContinuous: scale first.
  std::vector<at::Tensor> s = norm_out_(silu_temb.to(x.scalar_type())).chunk(2, 1);
  return proj_out_(modulate(layer_norm_plain(x), s[0], s[1]));
}

}  // namespace tp::flux
