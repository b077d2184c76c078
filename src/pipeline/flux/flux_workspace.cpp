#include "pipeline/flux/flux_workspace.h"

namespace tp::flux {
namespace {

// torch's rms_norm (composite): the square, x * rsqrt, times the weight; in
// fp32 for half inputs.
uint64_t native_rms_into(nn::PeakTracker& t, int64_t elements, const nn::ActivationTarget& target) {
  const int64_t e = target.elem_bytes;
  const uint64_t up = e != 4 ? t.add(nn::bytes_of(elements, 4)) : 0;
  t.spike(nn::bytes_of(elements, 4));
  uint64_t r = t.add(nn::bytes_of(elements, 4));
  if (e != 4) {
    const uint64_t back = t.add(nn::bytes_of(elements, e));
    t.drop(r + up);
    r = back;
  }
  const uint64_t out = t.add(nn::bytes_of(elements, e));
  t.drop(r);
  return out;
}

// apply_rotary (flux_transformer.cpp) on `elements`; replaces `x` (dropped) by its result.
uint64_t rotary_into(nn::PeakTracker& t, uint64_t x, int64_t elements, const nn::ActivationTarget& target) {
  const int64_t e = target.elem_bytes;
  const uint64_t n = nn::bytes_of(elements, e), f = nn::bytes_of(elements, 4);
  const uint64_t neg = t.add(n / 2), rotated = t.add(n);
  t.drop(neg);
  const uint64_t xf = e != 4 ? t.add(f) : 0, p1 = t.add(f);
  const uint64_t rf = e != 4 ? t.add(f) : 0, p2 = t.add(f);
  uint64_t sum = t.add(f);
  t.drop(xf + p1 + rf + p2);
  if (e != 4) {
    const uint64_t back = t.add(n);
    t.drop(sum);
    sum = back;
  }
  t.drop(rotated + x);
  return sum;
}

// FluxTransformer::forward on (runs, tokens, in_channels) packed latents and
// a (runs, text, joint_attention_dim) context.
uint64_t transformer_forward(nn::PeakTracker& t, const TransformerConfig& c, int64_t runs, int64_t tokens, int64_t text,
                             const nn::ActivationTarget& target) {
  const int64_t e = target.elem_bytes, d = c.inner_dim(), heads = c.heads, hd = c.head_dim, all = tokens + text;
  const uint64_t nx = nn::bytes_of(runs * tokens * d, e), nc = nn::bytes_of(runs * text * d, e),
                 na = nn::bytes_of(runs * all * d, e);
  uint64_t x = t.add(nx);
  const uint64_t temb = t.add(nn::bytes_of(2 * runs * 256, 4) + nn::bytes_of(6 * runs * d, e));
  uint64_t ctx = t.add(nc);
  // q and k of one stream: the projection, its RMS norm.
  auto normed = [&](int64_t rows) {
    const uint64_t proj = t.add(nn::bytes_of(rows * d, e));
    const uint64_t out = native_rms_into(t, rows * d, target);
    t.drop(proj);
    return out;
  };
  // The attention over `rows` of image (and `context` text) tokens, its
  // output left live and returned (projected when joint).
  auto attention = [&](int64_t per_run, bool joint, uint64_t* context_out) {
    const int64_t rows = runs * per_run;
    uint64_t q = normed(rows), k = normed(rows), v = t.add(nn::bytes_of(rows * d, e));
    int64_t length = per_run;
    if (joint) {
      length = per_run + text;
      const uint64_t joined = nn::bytes_of(runs * length * d, e);
      for (uint64_t* side : {&q, &k, &v}) {
        // The text's projection lives to the end of the statement that joins it.
        const uint64_t proj = t.add(nc);
        const uint64_t part = side == &v ? 0 : native_rms_into(t, runs * text * d, target);
        t.drop(0);
        t.add(joined);
        t.drop(proj);
        t.drop(part + *side);
        *side = joined;
      }
    }
    q = rotary_into(t, q, runs * length * d, target);
    k = rotary_into(t, k, runs * length * d, target);
    const uint64_t o = nn::attention_into(t, runs, heads, length, length, hd, target);
    t.drop(q + k + v);
    if (!joint) return o;
    *context_out = nn::sliced_linear_into(t, runs * text, d, d, target);
    const uint64_t out = nn::sliced_linear_into(t, rows, d, d, target);
    t.drop(o);
    return out;
  };
  for (int64_t i = 0; i < c.layers; ++i) {
    const uint64_t mods = t.add(nn::bytes_of(12 * runs * d, e));
    const uint64_t lnc = nn::norm_into(t, runs * text * d, runs * text, target);
    const uint64_t nctx = nn::modulate_into(t, nc);
    t.drop(lnc);
    const uint64_t ln = nn::norm_into(t, runs * tokens * d, runs * tokens, target);
    const uint64_t m = nn::modulate_into(t, nx);
    uint64_t context_attn = 0;
    const uint64_t attn = attention(tokens, true, &context_attn);
    t.drop(ln + m);
    x = nn::gated_residual_into(t, x, nx);
    for (bool image : {true, false}) {
      const uint64_t n = image ? nx : nc;
      const int64_t rows = runs * (image ? tokens : text);
      if (!image) ctx = nn::gated_residual_into(t, ctx, nc);
      const uint64_t l = nn::norm_into(t, rows * d, rows, target);
      const uint64_t mm = nn::modulate_into(t, n);
      const uint64_t f1 = t.add(4 * n), g = t.add(4 * n), f2 = t.add(n);
      if (image) {
        x = nn::gated_residual_into(t, x, n);
        t.drop(l + mm + f1 + g + f2);
      } else {
        t.drop(l + mm + f1 + g);
        ctx = nn::gated_residual_into(t, ctx, n);
        if (e == 2) {
          const uint64_t clipped = t.add(n);
          t.drop(ctx);
          ctx = clipped;
        }
        t.drop(f2);
      }
    }
    t.drop(mods + nctx + context_attn + attn);
  }
  uint64_t h = t.add(na);  // x and ctx stay live: named locals of forward()
  for (int64_t i = 0; i < c.single_layers; ++i) {
    const uint64_t mods = t.add(nn::bytes_of(3 * runs * d, e));
    const uint64_t ln = nn::norm_into(t, runs * all * d, runs * all, target);
    const uint64_t nh = nn::modulate_into(t, na);
    t.drop(ln);
    const uint64_t proj = t.add(4 * na), mlp = t.add(4 * na);
    t.drop(proj);
    const uint64_t attn = attention(all, false, nullptr);
    const uint64_t joined = t.add(5 * na), out = t.add(na);
    uint64_t next = nn::gated_residual_into(t, h, na);
    if (e == 2) {
      const uint64_t clipped = t.add(na);
      t.drop(next);
      next = clipped;
    }
    h = next;
    t.drop(joined + out + nh + mlp + attn + mods);
  }
  const uint64_t ln = nn::norm_into(t, runs * tokens * d, runs * tokens, target);
  const uint64_t m = nn::modulate_into(t, nx);
  const uint64_t out = t.add(nn::bytes_of(runs * tokens * c.patch_size * c.patch_size * c.out_channels, e));
  t.drop(ln + m + h + temb + x + ctx);
  return out;
}

}  // namespace

FluxWorkspace estimate_workspace(const FluxSpec& spec, const nn::RequestShape& r,
                                 const std::function<nn::ActivationTarget(std::string_view)>& target) {
  FluxWorkspace w;
  const int64_t texts = r.texts(), batch = r.batch(), ipp = r.images_per_prompt, length = r.max_sequence_length;
  w.text_encoder = nn::clip_activation_bytes(spec.clip, texts, kClipLength, target("text_encoder"));
  {
    const nn::ActivationTarget tt = target("text_encoder_2");
    uint64_t peak = nn::t5_activation_bytes(spec.t5, texts, length, tt);
    if (ipp > 1) {  // repeated for each image of a prompt, after the lease
      const uint64_t embeds = nn::bytes_of(texts * length * spec.t5.d_model, tt.elem_bytes);
      const uint64_t pooled = nn::bytes_of(texts * spec.clip.hidden_size, tt.elem_bytes);
      peak = std::max(peak, embeds + ipp * (embeds + pooled));
    }
    w.text_encoder_2 = peak;
  }
  const nn::ActivationTarget tt = target("transformer");
  const int64_t vsf = spec.vae.scale_factor(), rows = r.height / (vsf * 2), cols = r.width / (vsf * 2);
  const int64_t tokens = rows * cols, all = tokens + length, hd = spec.transformer.head_dim;
  const int64_t latent_elements = batch * tokens * spec.transformer.in_channels;
  nn::PeakTracker t;
  // The noise (drawn in fp32), packed 2 x 2; the rotary tables (fp32 cos and sin, made in float64).
  const uint64_t noise = t.add(nn::bytes_of(latent_elements, tt.cpu ? 4 : tt.elem_bytes));
  const uint64_t latents = t.add(nn::bytes_of(latent_elements, tt.elem_bytes));
  t.drop(noise);
  t.spike(nn::bytes_of(all * 3, 4 * 3) + nn::bytes_of(all * hd, 8 * 2) + nn::bytes_of(all * hd, 4 * 2));
  t.add(nn::bytes_of(2 * all * hd, 4));
  const uint64_t input = r.cfg ? t.add(nn::bytes_of(2 * latent_elements, tt.elem_bytes)) : 0;
  const uint64_t out = transformer_forward(t, spec.transformer, r.runs(), tokens, length, tt);
  t.drop(input);
  nn::euler_update_into(t, out, latents, latent_elements, r.cfg, tt);
  w.transformer = t.peak();

  // The VAE gets the latents unpacked (a copy).
  nn::PeakTracker v;
  v.add(nn::bytes_of(latent_elements, tt.elem_bytes));
  w.vae = v.live() + nn::vae_decode_activation_bytes(spec.vae, batch, rows * 2, cols * 2, tt.elem_bytes,
                                                     target("vae"));
  for (uint64_t* b : {&w.text_encoder, &w.text_encoder_2, &w.transformer, &w.vae}) *b = nn::with_margin(*b);
  return w;
}

}  // namespace tp::flux
