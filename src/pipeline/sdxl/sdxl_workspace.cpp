#include "pipeline/sdxl/sdxl_workspace.h"

#include <vector>

namespace tp::sdxl {
namespace {

// UNet::forward (sdxl_unet.cpp) on `runs` latents of (in_channels, h, w).
class UNetReplay {
 public:
  UNetReplay(nn::PeakTracker& t, const UNetConfig& c, int64_t runs, const nn::ActivationTarget& target)
      : t_(t), c_(c), runs_(runs), target_(target), e_(target.elem_bytes) {}

  uint64_t forward(int64_t h, int64_t w) {
    h_ = h, w_ = w;
    const uint64_t emb = t_.add(nn::bytes_of(runs_ * (c_.block_out_channels[0] + c_.addition_time_embed_dim * 6), 4) +
                                nn::bytes_of(runs_ * (c_.projection_class_embeddings_input_dim + 4 * c_.time_embed_dim), e_));
    const int64_t c0 = c_.block_out_channels[0];
    x_ = nn::conv_into(t_, runs_, c_.in_channels, c0, h_, w_, c_.conv_in_kernel, target_);
    ch_ = c0;
    struct Skip {
      uint64_t bytes;
      int64_t channels, h, w;
    };
    std::vector<Skip> skips{{x_, c0, h_, w_}};
    const size_t n = c_.block_out_channels.size();
    for (size_t i = 0; i < n; ++i) {
      const int64_t out = c_.block_out_channels[i];
      for (int64_t j = 0; j < c_.layers_per_block[i]; ++j) {
        resnet(out, 1.0, false);  // its input is the last skip
        if (c_.has_attention(i)) transformer(c_.heads[i], c_.transformer_layers_per_block[i], true);
        skips.push_back({x_, ch_, h_, w_});
      }
      if (i + 1 < n) {
        const uint64_t pad = c_.downsample_padding == 0 ? t_.add(bytes(ch_)) : 0;
        h_ = (h_ + 1) / 2, w_ = (w_ + 1) / 2;
        x_ = nn::conv_into(t_, runs_, ch_, ch_, h_, w_, 3, target_, 2);
        t_.drop(pad);
        skips.push_back({x_, ch_, h_, w_});
      }
    }
    if (c_.mid_block) {
      const double s = c_.mid_block_scale_factor;
      resnet(ch_, s, false);
      transformer(c_.heads.back(), c_.mid_transformer_layers, true);
      resnet(ch_, s, true);
    }
    bool x_is_skip = !c_.mid_block;  // without a mid block the first join meets x itself
    for (size_t i = 0; i < n; ++i) {
      const int64_t out = c_.block_out_channels[n - 1 - i];
      const int64_t layers = c_.up_layers(i);
      for (int64_t j = 0; j < layers; ++j) {
        const uint64_t skip = skips.back().bytes;
        const int64_t skip_ch = skips.back().channels;
        const uint64_t joined = t_.add(nn::bytes_of(runs_ * (ch_ + skip_ch) * h_ * w_, e_));
        // The previous x (the mid block's or this block's output) goes, and the skip when popped.
        t_.drop(x_is_skip ? skip : x_ + skip);
        x_is_skip = false;
        skips.pop_back();
        x_ = joined;
        ch_ += skip_ch;
        resnet(out, 1.0, true);
        if (c_.up_has_attention(i)) transformer(c_.up_heads(i), c_.up_transformer_layers[i], true);
      }
      if (i + 1 < n) {
        const int64_t sh = skips.back().h, sw = skips.back().w;  // nearest, to the next skip's size
        const uint64_t up = t_.add(nn::bytes_of(runs_ * ch_ * sh * sw, e_));
        h_ = sh, w_ = sw;
        const uint64_t conv = nn::conv_into(t_, runs_, ch_, ch_, h_, w_, 3, target_);
        t_.drop(up + x_);
        x_ = conv;
      }
    }
    const uint64_t g = nn::norm_into(t_, runs_ * ch_ * h_ * w_, runs_ * c_.norm_num_groups, target_),
                   s = t_.add(bytes(ch_));
    const uint64_t out = nn::conv_into(t_, runs_, ch_, c_.out_channels, h_, w_, c_.conv_out_kernel, target_);
    t_.drop(g + s + x_ + emb);
    return out;
  }

 private:
  uint64_t bytes(int64_t channels) const { return nn::bytes_of(runs_ * channels * h_ * w_, e_); }

  // UNet::resnet on x_ (ch_ channels) to `out`; `drop_input`: x_ is not held elsewhere.
  void resnet(int64_t out, double scale, bool drop_input) {
    const int64_t groups = c_.norm_num_groups, rows = runs_ * groups;
    const uint64_t g1 = nn::norm_into(t_, runs_ * ch_ * h_ * w_, rows, target_), s1 = t_.add(bytes(ch_));
    uint64_t h = nn::conv_into(t_, runs_, ch_, out, h_, w_, 3, target_);
    t_.drop(g1 + s1);
    const uint64_t temb = t_.add(nn::bytes_of(runs_ * (c_.scale_shift ? 2 : 1) * out, e_));
    if (c_.scale_shift) {
      const uint64_t g = nn::norm_into(t_, runs_ * out * h_ * w_, rows, target_), p = t_.add(bytes(out)),
                     sum = t_.add(bytes(out));
      t_.drop(g + p + h);
      h = sum;
    } else {
      const uint64_t sum = t_.add(bytes(out));
      const uint64_t g = nn::norm_into(t_, runs_ * out * h_ * w_, rows, target_);
      t_.drop(sum + h);
      h = g;
    }
    const uint64_t s2 = t_.add(bytes(out));
    const uint64_t h2 = nn::conv_into(t_, runs_, out, out, h_, w_, 3, target_);
    t_.drop(s2 + h);
    const uint64_t shortcut = ch_ != out ? nn::conv_into(t_, runs_, ch_, out, h_, w_, 1, target_) : 0;
    uint64_t result = t_.add(bytes(out));
    t_.drop(shortcut + h2);
    if (scale != 1) {
      const uint64_t scaled = t_.add(bytes(out));
      t_.drop(result);
      result = scaled;
    }
    t_.drop(temb);
    if (drop_input) t_.drop(x_);
    x_ = result;
    ch_ = out;
  }

  // UNet::transformer on x_ (ch_ channels, heads of ch_ / heads); x_ stays (the residual).
  void transformer(int64_t heads, int64_t layers, bool drop_input) {
    const int64_t tokens = h_ * w_, rows = runs_ * tokens, d = heads * (ch_ / heads), hd = d / heads;
    const uint64_t n = nn::bytes_of(rows * d, e_), nc = bytes(ch_);
    uint64_t hs;
    {
      const uint64_t g = nn::norm_into(t_, runs_ * ch_ * tokens, runs_ * c_.norm_num_groups, target_);
      if (c_.use_linear_projection) {
        const uint64_t tok = t_.add(nc);
        hs = t_.add(n);
        t_.drop(tok + g);
      } else {
        const uint64_t conv = nn::conv_into(t_, runs_, ch_, d, h_, w_, 1, target_);
        hs = t_.add(n);
        t_.drop(conv + g);
      }
    }
    for (int64_t l = 0; l < layers; ++l) {
      const uint64_t n1 = nn::norm_into(t_, rows * d, rows, target_);
      // Self-attention, then the residual.
      {
        // attend(): q, k, v and the heads go when it returns, before the residual.
        const uint64_t qkv = t_.add(3 * n);
        const uint64_t o = nn::attention_into(t_, runs_, heads, tokens, tokens, hd, target_);
        const uint64_t out = t_.add(n);
        t_.drop(qkv + o);
        const uint64_t sum = t_.add(n);
        t_.drop(out + hs);
        hs = sum;
      }
      // Cross-attention on the 77 text tokens.
      {
        const uint64_t ln = nn::norm_into(t_, rows * d, rows, target_);
        const uint64_t q = t_.add(n), k = t_.add(nn::bytes_of(2 * runs_ * kClipLength * d, e_));
        const uint64_t o = nn::attention_into(t_, runs_, heads, tokens, kClipLength, hd, target_);
        const uint64_t out = t_.add(n);
        t_.drop(q + k + o);
        const uint64_t sum = t_.add(n);
        t_.drop(ln + out + hs);
        hs = sum;
      }
      // GEGLU: the projection (8 d) lives to the end of the block.
      {
        const uint64_t ln = nn::norm_into(t_, rows * d, rows, target_);
        const uint64_t proj = t_.add(8 * n);
        t_.drop(ln);
        const uint64_t gelu = t_.add(4 * n), product = t_.add(4 * n), out = t_.add(n), sum = t_.add(n);
        t_.drop(gelu + product + out + hs);
        hs = sum;
        t_.drop(proj + n1);
      }
    }
    uint64_t back;
    if (c_.use_linear_projection) {
      const uint64_t proj = t_.add(nc);
      back = t_.add(nc);
      t_.drop(proj);
    } else {
      const uint64_t image = t_.add(n);
      back = nn::conv_into(t_, runs_, d, ch_, h_, w_, 1, target_);
      t_.drop(image);
    }
    const uint64_t sum = t_.add(nc);
    t_.drop(back + hs);
    if (drop_input) t_.drop(x_);
    x_ = sum;
  }

  nn::PeakTracker& t_;
  const UNetConfig& c_;
  const int64_t runs_;
  const nn::ActivationTarget target_;
  const int64_t e_;
  int64_t h_ = 0, w_ = 0, ch_ = 0;
  uint64_t x_ = 0;
};

}  // namespace

SdxlWorkspace estimate_workspace(const SdxlSpec& spec, const nn::RequestShape& r,
                                 const std::function<nn::ActivationTarget(std::string_view)>& target) {
  SdxlWorkspace w;
  const int64_t texts = r.texts(), batch = r.batch(), ipp = r.images_per_prompt;
  w.text_encoder = nn::clip_activation_bytes(spec.clip, texts, kClipLength, target("text_encoder"));
  {
    // CLIP-G, then the two states side by side, the zeros of an empty
    // negative prompt joined in front, each row repeated per image.
    const nn::ActivationTarget tt = target("text_encoder_2");
    const uint64_t g = nn::clip_activation_bytes(spec.clip2, texts, kClipLength, tt);
    // CLIP-L's state was live when the lease began; it goes with CLIP-G's
    // outputs when encode() returns.
    nn::PeakTracker t;
    const uint64_t before = t.add(nn::bytes_of(texts * kClipLength * spec.clip.hidden_size, tt.elem_bytes));
    const uint64_t out = t.add(nn::clip_output_bytes(spec.clip2, texts, kClipLength, tt));
    const int64_t width = spec.clip.hidden_size + spec.clip2.hidden_size;
    uint64_t context = t.add(nn::bytes_of(texts * kClipLength * width, tt.elem_bytes));
    uint64_t pooled = nn::bytes_of(texts * spec.clip2.projection_dim, tt.elem_bytes);
    t.drop(before + out);
    t.add(pooled);
    if (r.cfg && !r.encode_negatives) {
      const uint64_t zeros = t.add(context);
      t.add(2 * context);
      t.drop(zeros + context);
      t.add(3 * pooled);
      context *= 2, pooled *= 2;
    }
    if (ipp > 1) t.add(ipp * (context + pooled));
    w.text_encoder_2 = std::max(g, t.peak() - before);
  }
  const nn::ActivationTarget ut = target("unet");
  const int64_t vsf = spec.vae.scale_factor(), lh = r.height / vsf, lw = r.width / vsf;
  const int64_t latent_elements = batch * spec.unet.in_channels * lh * lw, e = ut.elem_bytes;
  const uint64_t lat = nn::bytes_of(latent_elements, e);
  nn::PeakTracker t;
  // The noise (drawn in the latents' dtype), times the initial sigma.
  const uint64_t noise = t.add(lat);
  uint64_t latents = t.add(lat);
  t.drop(noise);
  t.spike(nn::bytes_of(r.runs() * 6, 8));
  // Per step: the scaled model input (the guidance batch joined first), the
  // UNet, the guidance mix, the sampler's fp32 update.
  const uint64_t joined = r.cfg ? t.add(2 * lat) : 0;
  const uint64_t input = t.add(nn::bytes_of(r.runs() * spec.unet.in_channels * lh * lw, e));
  t.drop(joined);
  UNetReplay unet(t, spec.unet, r.runs(), ut);
  uint64_t noise_out = unet.forward(lh, lw);
  if (r.cfg) {
    const uint64_t diff = t.add(lat), scaled = t.add(lat), sum = t.add(lat);
    t.drop(diff + scaled);
    noise_out += sum;
  }
  const uint64_t f32 = nn::bytes_of(latent_elements, 4);
  const uint64_t up = e != 4 ? t.add(f32) : 0;
  t.spike(4 * f32);
  t.add(lat);
  t.drop(up + noise_out + input + latents);
  w.unet = t.peak();

  w.vae = nn::vae_decode_activation_bytes(spec.vae, batch, lh, lw, e, target("vae"));
  for (uint64_t* b : {&w.text_encoder, &w.text_encoder_2, &w.unet, &w.vae}) *b = nn::with_margin(*b);
  return w;
}

}  // namespace tp::sdxl
