#include "pipeline/sd3/sd3_workspace.h"

namespace tp::sd3 {
namespace {

constexpr int64_t kClipLength = 77;

// SD3Transformer::forward (sd3_transformer.cpp) on `runs` latents of
// (C, lh, lw) and a (runs, context, joint_attention_dim) context.
uint64_t transformer_forward(nn::PeakTracker& t, const TransformerConfig& c, int64_t runs, int64_t lh, int64_t lw,
                             int64_t context, const nn::ActivationTarget& target) {
  const int64_t e = target.elem_bytes, p = c.patch_size, d = c.inner_dim(), heads = c.heads, hd = c.head_dim;
  const int64_t tokens = (lh / p) * (lw / p), all = tokens + context;
  const uint64_t nx = nn::bytes_of(runs * tokens * d, e), nc = nn::bytes_of(runs * context * d, e);
  // Patches, the position embedding's crop (made contiguous), their sum.
  const uint64_t patches = nn::conv_into(t, runs, c.in_channels, d, lh / p, lw / p, p, target, p);
  const uint64_t pos = t.add(nn::bytes_of(tokens * d, e));
  uint64_t x = t.add(nx);
  t.drop(patches + pos);
  // Timestep and pooled text: (runs, 256) fp32 and a few (runs, d).
  const uint64_t temb = t.add(nn::bytes_of(runs * 256, 4) + nn::bytes_of(3 * runs * d, e));
  uint64_t ctx = t.add(nc);
  for (int64_t i = 0; i < c.layers; ++i) {
    const bool dual = std::find(c.dual_attention_layers.begin(), c.dual_attention_layers.end(), i) !=
                      c.dual_attention_layers.end();
    const bool pre_only = i + 1 == c.layers;  // the last block's context only feeds the attention
    const uint64_t mods = t.add(nn::bytes_of(runs * (dual ? 9 : 6) * d + runs * 6 * d, e));
    const uint64_t nx0 = nn::norm_into(t, runs * tokens * d, runs * tokens, target);
    const uint64_t nxm = nn::modulate_into(t, nx);
    const uint64_t lnc = nn::norm_into(t, runs * context * d, runs * context, target);
    const uint64_t nctx = nn::modulate_into(t, nc);
    t.drop(lnc);
    // The joint attention: q, k, v of both streams (q, k normed), joined, attended.
    auto attention = [&](bool joint, uint64_t* context_out) {
      uint64_t q = t.add(nx), k = t.add(nx), v = t.add(nx);
      if (!c.qk_norm.empty()) {
        const uint64_t qn = nn::rms_into(t, runs * tokens * d, target);
        t.drop(q);
        const uint64_t kn = nn::rms_into(t, runs * tokens * d, target);
        t.drop(k);
        q = qn, k = kn;
      }
      uint64_t streams = 0;
      int64_t length = tokens;
      if (joint) {
        uint64_t cq = t.add(nc), ck = t.add(nc);
        const uint64_t cv = t.add(nc);
        if (!c.qk_norm.empty()) {
          const uint64_t qn = nn::rms_into(t, runs * context * d, target);
          t.drop(cq);
          const uint64_t kn = nn::rms_into(t, runs * context * d, target);
          t.drop(ck);
          cq = qn, ck = kn;
        }
        streams = cq + ck + cv;
        length = all;
        const uint64_t joined = nn::bytes_of(runs * all * d, e);
        t.add(joined);
        t.drop(q);
        t.add(joined);
        t.drop(k);
        t.add(joined);
        t.drop(v);
        q = k = v = joined;
      }
      const uint64_t o = nn::attention_into(t, runs, heads, length, length, hd, target);
      if (joint && !pre_only) *context_out = nn::sliced_linear_into(t, runs * context, d, d, target);
      const uint64_t out = nn::sliced_linear_into(t, runs * tokens, d, d, target);
      t.drop(q + k + v + streams + o);
      return out;
    };
    uint64_t context_attn = 0;
    const uint64_t attn = attention(true, &context_attn);
    x = nn::gated_residual_into(t, x, nx);
    if (dual) {
      const uint64_t m = nn::modulate_into(t, nx);
      const uint64_t a2 = attention(false, nullptr);
      x = nn::gated_residual_into(t, x, nx);
      t.drop(m + a2);
    }
    {
      const uint64_t ln = nn::norm_into(t, runs * tokens * d, runs * tokens, target);
      const uint64_t m = nn::modulate_into(t, nx);
      const uint64_t f1 = t.add(4 * nx), g = t.add(4 * nx), f2 = t.add(nx);
      t.drop(ln + m + f1 + g);
      x = nn::gated_residual_into(t, x, nx);
      t.drop(f2);
    }
    if (!pre_only) {
      ctx = nn::gated_residual_into(t, ctx, nc);
      const uint64_t ln = nn::norm_into(t, runs * context * d, runs * context, target);
      const uint64_t m = nn::modulate_into(t, nc);
      const uint64_t f1 = t.add(4 * nc), g = t.add(4 * nc), f2 = t.add(nc);
      t.drop(ln + m + f1 + g);
      ctx = nn::gated_residual_into(t, ctx, nc);
      t.drop(f2);
    }
    t.drop(mods + nx0 + nxm + nctx + context_attn + attn);
  }
  const uint64_t ln = nn::norm_into(t, runs * tokens * d, runs * tokens, target);
  const uint64_t m = nn::modulate_into(t, nx);
  const int64_t out_elements = runs * tokens * p * p * c.out_channels;
  const uint64_t proj = t.add(nn::bytes_of(out_elements, e));
  t.drop(ln + m);
  const uint64_t out = t.add(nn::bytes_of(out_elements, e));  // unpatchified
  t.drop(proj + x + ctx + temb);
  return out;
}

}  // namespace

Sd3Workspace estimate_workspace(const Sd3Spec& spec, const nn::RequestShape& r,
                                const std::function<nn::ActivationTarget(std::string_view)>& target) {
  Sd3Workspace w;
  const int64_t texts = r.texts(), batch = r.batch(), ipp = r.images_per_prompt;
  const int64_t t5_length = r.max_sequence_length, context = kClipLength + t5_length;
  const int64_t joint = spec.transformer.joint_attention_dim;
  w.text_encoder = nn::clip_activation_bytes(spec.clip1, texts, kClipLength, target("text_encoder"));
  w.text_encoder_2 = nn::clip_activation_bytes(spec.clip2, texts, kClipLength, target("text_encoder_2"));
  // After the last encoder: CLIP's states side by side, padded to T5's
  // width, joined with T5's (or zeros), the pooled outputs joined, then
  // repeated for each image of a prompt.
  const nn::ActivationTarget last = target(spec.t5 ? "text_encoder_3" : "text_encoder_2");
  nn::PeakTracker tail;
  const int64_t e = last.elem_bytes;
  tail.add(nn::bytes_of(texts * t5_length * joint, e));  // T5's state (or the zeros)
  const uint64_t clip = tail.add(nn::bytes_of(texts * kClipLength * (spec.clip1.hidden_size + spec.clip2.hidden_size), e));
  tail.add(nn::bytes_of(texts * kClipLength * joint, e));  // padded to T5's width
  tail.drop(clip);
  const uint64_t embeds = tail.add(nn::bytes_of(texts * context * joint, e));
  const uint64_t pooled = tail.add(nn::bytes_of(texts * (spec.clip1.projection_dim + spec.clip2.projection_dim), e));
  if (ipp > 1) tail.add(ipp * (embeds + pooled));
  if (spec.t5) {
    w.text_encoder_3 = std::max(nn::t5_activation_bytes(*spec.t5, texts, t5_length, last), tail.peak());
  } else {
    w.text_encoder_2 = std::max(w.text_encoder_2, nn::clip_output_bytes(spec.clip2, texts, kClipLength, last) + tail.peak());
  }

  // Denoising: the noise, then per step the guidance batch and the transformer.
  const nn::ActivationTarget tt = target("transformer");
  const int64_t vsf = spec.vae.scale_factor(), lh = r.height / vsf, lw = r.width / vsf;
  const int64_t latent_elements = batch * spec.transformer.in_channels * lh * lw;
  nn::PeakTracker t;
  const uint64_t latents = t.add(nn::bytes_of(latent_elements, tt.cpu ? 4 : tt.elem_bytes));
  const uint64_t input = r.cfg ? t.add(nn::bytes_of(2 * latent_elements, tt.elem_bytes)) : 0;
  const uint64_t out = transformer_forward(t, spec.transformer, r.runs(), lh, lw, context, tt);
  t.drop(input);
  nn::euler_update_into(t, out, latents, latent_elements, r.cfg, tt);
  w.transformer = t.peak();

  const nn::ActivationTarget vt = target("vae");
  w.vae = nn::vae_decode_activation_bytes(spec.vae, batch, lh, lw, tt.elem_bytes, vt);
  for (uint64_t* b : {&w.text_encoder, &w.text_encoder_2, &w.text_encoder_3, &w.transformer, &w.vae})
    if (*b) *b = nn::with_margin(*b);
  return w;
}

}  // namespace tp::sd3
