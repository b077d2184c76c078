#include "pipeline/common/activation_estimate.h"

namespace tp::nn {

uint64_t attention_into(PeakTracker& t, int64_t batch, int64_t heads, int64_t lq, int64_t lk, int64_t head_dim,
                        const ActivationTarget& target) {
  const uint64_t out = t.add(bytes_of(batch * heads * lq * head_dim, target.elem_bytes));
  uint64_t scratch = bytes_of(batch * heads * lq, 4);  // log-sum-exp, fp32
  if (target.cpu) {
    // aten/src/ATen/native/cpu/FlashAttentionKernel.cpp: per thread, a
    // q-block x kv-block of scores, its max and sum, and a q-block of output.
    const int64_t q_split = std::min<int64_t>(lq >= 768 ? 256 : lq >= 192 ? 64 : 32, lq);
    const int64_t kv_split = std::min<int64_t>(512, lk);
    scratch += bytes_of(target.threads * (q_split * kv_split + 2 * q_split + q_split * head_dim), 4);
    if (target.elem_bytes < 4) scratch += bytes_of(target.threads * q_split * kv_split, target.elem_bytes);
  }
  t.spike(scratch);
  return out;
}

uint64_t norm_into(PeakTracker& t, int64_t elements, int64_t rows, const ActivationTarget& target) {
  const uint64_t out = t.add(bytes_of(elements, target.elem_bytes));
  t.spike(bytes_of(2 * rows, 4));  // mean and rstd
  return out;
}

uint64_t conv_into(PeakTracker& t, int64_t batch, int64_t in_ch, int64_t out_ch, int64_t h, int64_t w, int64_t kernel,
                   const ActivationTarget& target, int64_t stride) {
  const int64_t e = target.elem_bytes;
  const uint64_t out = t.add(bytes_of(batch * out_ch * h * w, e));
  if (!target.cpu) return out;
  // aten/src/ATen/native/Convolution.cpp (use_mkldnn): fp32 runs oneDNN for a
  // batch above 1 or an input above 20480 elements, and the matrix-multiply
  // convolution otherwise. oneDNN reorders the input and the weights into its
  // blocked layouts (channels padded to 16), the output too when its channels
  // are not a multiple of 16 (padded to 8), plus a small scratchpad; the
  // matrix multiply unfolds the input (im2col) unless it is 1x1.
  const int64_t input = batch * in_ch * h * stride * w * stride;
  if (batch > 1 || input > 20480) {
    auto pad = [](int64_t c, int64_t to) { return (c + to - 1) / to * to; };
    uint64_t scratch = bytes_of(batch * pad(in_ch, 16) * h * stride * w * stride, e) +
                       bytes_of(pad(out_ch, 16) * pad(in_ch, 16) * kernel * kernel, e) + 2048;
    if (out_ch % 16 != 0 && in_ch % 16 == 0) scratch += bytes_of(batch * pad(out_ch, 8) * h * w, e);
    t.spike(scratch);
  } else if (kernel > 1 || stride > 1) {
    t.spike(bytes_of(batch * in_ch * kernel * kernel * h * w, e));
  }
  return out;
}

namespace {

// x * sigmoid(1.702 x) makes three tensors; GELU and ReLU one.
uint64_t activation_into(PeakTracker& t, uint64_t bytes, const std::string& act) {
  if (act == "quick_gelu") {
    const uint64_t scaled = t.add(bytes), sig = t.add(bytes), out = t.add(bytes);
    t.drop(scaled + sig);
    return out;
  }
  return t.add(bytes);
}

}  // namespace

// rms_norm (layers.cpp): the square in fp32, the product in fp32, back to
// the weight's dtype, times the weight.
uint64_t rms_into(PeakTracker& t, int64_t elements, const ActivationTarget& target) {
  const int64_t e = target.elem_bytes;
  t.spike(bytes_of(elements, 4) + (e < 4 ? bytes_of(elements, 4) : 0));
  uint64_t y = t.add(bytes_of(elements, 4));
  if (e < 4) {
    const uint64_t half = t.add(bytes_of(elements, e));
    t.drop(y);
    y = half;
  }
  const uint64_t out = t.add(bytes_of(elements, e));
  t.drop(y);
  return out;
}

uint64_t sliced_linear_into(PeakTracker& t, int64_t rows, int64_t in, int64_t out, const ActivationTarget& target) {
  t.spike(bytes_of(rows * in, target.elem_bytes));
  return t.add(bytes_of(rows * out, target.elem_bytes));
}

uint64_t modulate_into(PeakTracker& t, uint64_t bytes) {
  const uint64_t product = t.add(bytes), out = t.add(bytes);
  t.drop(product);
  return out;
}

uint64_t gated_residual_into(PeakTracker& t, uint64_t x, uint64_t bytes) {
  const uint64_t product = t.add(bytes), out = t.add(bytes);
  t.drop(product + x);
  return out;
}

void euler_update_into(PeakTracker& t, uint64_t out, uint64_t latents, int64_t latent_elements, bool cfg,
                       const ActivationTarget& target) {
  const int64_t e = target.elem_bytes;
  const uint64_t lat = bytes_of(latent_elements, e);
  uint64_t velocity = out;
  if (cfg) {
    const uint64_t diff = t.add(lat), scaled = t.add(lat);
    velocity += t.add(lat);
    t.drop(diff + scaled);
  }
  const uint64_t f32 = e != 4 ? t.add(bytes_of(latent_elements, 4)) : 0;
  const uint64_t step = t.add(bytes_of(latent_elements, 4)), sum = t.add(bytes_of(latent_elements, 4));
  if (e != 4) t.add(lat);  // the new latents in their dtype
  t.drop(f32 + step + (e != 4 ? sum : 0) + velocity + latents);
}

uint64_t clip_output_bytes(const ClipConfig& c, int64_t batch, int64_t length, const ActivationTarget& target) {
  const int64_t pooled = c.with_projection ? c.projection_dim : c.hidden_size;
  return bytes_of(batch * length * c.hidden_size + batch * pooled, target.elem_bytes);
}

uint64_t clip_activation_bytes(const ClipConfig& c, int64_t batch, int64_t length, const ActivationTarget& target) {
  PeakTracker t;
  const int64_t e = target.elem_bytes, rows = batch * length;
  const uint64_t n = bytes_of(rows * c.hidden_size, e), ni = bytes_of(rows * c.intermediate_size, e);
  const uint64_t ids = t.add(bytes_of(rows, 8));
  const uint64_t embedded = t.add(n);
  uint64_t x = t.add(n);
  t.drop(embedded);
  for (int64_t i = 0; i < c.layers; ++i) {
    const bool keep = i + 1 == c.layers;  // the penultimate state stays
    const uint64_t h = norm_into(t, rows * c.hidden_size, rows, target);
    const uint64_t qkv = t.add(3 * n);
    const uint64_t a = attention_into(t, batch, c.heads, length, length, c.hidden_size / c.heads, target);
    t.drop(qkv);
    const uint64_t o = t.add(n);
    const uint64_t x1 = t.add(n);
    t.drop(o);
    if (!keep) t.drop(x);
    const uint64_t ln2 = norm_into(t, rows * c.hidden_size, rows, target);
    const uint64_t f1 = t.add(ni);
    const uint64_t act = activation_into(t, ni, c.act);
    const uint64_t f2 = t.add(n);
    x = t.add(n);
    t.drop(f2 + act + f1 + ln2 + x1);
    t.drop(h + a);
  }
  const uint64_t last = norm_into(t, rows * c.hidden_size, rows, target);
  t.spike(bytes_of(rows, 4 + 1 + 4) + bytes_of(batch, 16));  // the EOS position
  const uint64_t pooled = t.add(bytes_of(batch * c.hidden_size, e));
  if (c.with_projection) {
    t.add(bytes_of(batch * c.projection_dim, e));
    t.drop(pooled);
  }
  t.drop(last + x + ids);
  return t.peak();
}

uint64_t t5_activation_bytes(const T5Config& c, int64_t batch, int64_t length, const ActivationTarget& target) {
  PeakTracker t;
  const int64_t e = target.elem_bytes, rows = batch * length, ll = length * length;
  const int64_t inner = c.heads * c.d_kv;
  const uint64_t n = bytes_of(rows * c.d_model, e);
  const uint64_t ids = t.add(bytes_of(rows, 8));
  uint64_t x = t.add(n);
  const uint64_t bias = bytes_of(ll * c.heads, e);
  // position_bias: the relative positions, their buckets (int64), the log
  // branch in fp32, then the (1, heads, L, L) bias.
  {
    const uint64_t pos = t.add(bytes_of(length, 8));
    const uint64_t relative = t.add(bytes_of(ll, 8));
    const uint64_t cmp = t.add(bytes_of(ll, 1)), as_long = t.add(bytes_of(ll, 8));
    uint64_t bucket = t.add(bytes_of(ll, 8));
    t.drop(cmp + as_long);
    const uint64_t abs = t.add(bytes_of(ll, 8));
    t.drop(relative);
    const uint64_t chain = t.add(bytes_of(5 * ll, 4) + bytes_of(ll, 8));
    uint64_t large = t.add(bytes_of(ll, 8));
    t.drop(chain);
    const uint64_t full = t.add(bytes_of(ll, 8)), minimum = t.add(bytes_of(ll, 8));
    t.drop(full + large);
    large = minimum;
    const uint64_t lt = t.add(bytes_of(ll, 1)), where = t.add(bytes_of(ll, 8)), sum = t.add(bytes_of(ll, 8));
    t.drop(lt + where + bucket);
    bucket = sum;
    t.add(bias);  // live to the end
    t.drop(bucket + large + abs + pos);
  }
  auto clamp_into = [&](uint64_t v) {
    if (e != 2) return v;
    t.spike(bytes_of(rows * c.d_model, 1));
    const uint64_t clamped = t.add(n);
    t.drop(v);
    return clamped;
  };
  for (int64_t i = 0; i < c.layers; ++i) {
    const uint64_t h = rms_into(t, rows * c.d_model, target);
    const uint64_t qkv = t.add(bytes_of(3 * rows * inner, e));
    // The bias is a permuted view: SDPA takes a contiguous copy for the call.
    const uint64_t mask = t.add(bias);
    const uint64_t a = attention_into(t, batch, c.heads, length, length, c.d_kv, target);
    t.drop(qkv + mask);
    const uint64_t o = t.add(n);
    uint64_t s = t.add(n);
    t.drop(o);
    s = clamp_into(s);
    t.drop(x);
    x = s;
    const uint64_t h2 = rms_into(t, rows * c.d_model, target);
    t.drop(h);
    const uint64_t ff = bytes_of(rows * c.d_ff, e);
    const uint64_t wi0 = t.add(ff);
    uint64_t f = t.add(ff);
    t.drop(wi0);
    if (c.gated) {
      const uint64_t wi1 = t.add(ff), product = t.add(ff);
      t.drop(wi1 + f);
      f = product;
    }
    const uint64_t wo = t.add(n);
    s = t.add(n);
    t.drop(wo);
    s = clamp_into(s);
    t.drop(x);
    x = s;
    t.drop(f + h2 + a);
  }
  rms_into(t, rows * c.d_model, target);
  t.drop(x + ids);
  return t.peak();
}

uint64_t vae_decode_activation_bytes(const VaeConfig& c, int64_t batch, int64_t h, int64_t w,
                                     int64_t latents_elem_bytes, const ActivationTarget& target) {
  PeakTracker t;
  const int64_t e = target.elem_bytes, groups = c.groups;
  const int64_t lat = batch * c.latent_channels * h * w;
  if (latents_elem_bytes != e) t.add(bytes_of(lat, e));  // the latents in the VAE's dtype
  t.add(bytes_of(2 * lat, e));                             // / scaling_factor, + shift_factor
  uint64_t x = 0;
  if (c.post_quant_conv) x = conv_into(t, batch, c.latent_channels, c.latent_channels, h, w, 1, target);
  const int64_t top = c.block_out_channels.back();
  {
    const uint64_t in = conv_into(t, batch, c.latent_channels, top, h, w, 3, target);
    t.drop(x);
    x = in;
  }
  auto resnet = [&](int64_t in, int64_t out) {
    const int64_t hw = h * w;
    const uint64_t g = norm_into(t, batch * in * hw, batch * groups, target), s = t.add(bytes_of(batch * in * hw, e));
    const uint64_t h1 = conv_into(t, batch, in, out, h, w, 3, target);
    t.drop(g + s);
    const uint64_t g2 = norm_into(t, batch * out * hw, batch * groups, target),
                   s2 = t.add(bytes_of(batch * out * hw, e));
    const uint64_t h2 = conv_into(t, batch, out, out, h, w, 3, target);
    t.drop(h1 + g2 + s2);
    const uint64_t shortcut = in != out ? conv_into(t, batch, in, out, h, w, 1, target) : 0;
    const uint64_t sum = t.add(bytes_of(batch * out * hw, e));
    t.drop(shortcut + h2 + x);
    x = sum;
  };
  resnet(top, top);
  if (c.mid_attention) {
    const int64_t hw = h * w;
    const uint64_t n = bytes_of(batch * top * hw, e);
    const uint64_t g = norm_into(t, batch * top * hw, batch * groups, target);
    uint64_t qkv = 0;
    for (int i = 0; i < 3; ++i) {
      t.spike(n);  // the transposed input made contiguous for the matmul
      qkv += t.add(n);
    }
    const uint64_t a = attention_into(t, batch, 1, hw, hw, top, target);
    t.drop(qkv);
    const uint64_t o = t.add(n), back = t.add(n), sum = t.add(n);
    t.drop(o + back + a + g + x);
    x = sum;
  }
  resnet(top, top);
  int64_t channels = top;
  const size_t blocks = c.block_out_channels.size();
  for (size_t i = 0; i < blocks; ++i) {
    const int64_t out = c.block_out_channels[blocks - 1 - i];
    for (int64_t j = 0; j <= c.layers_per_block; ++j) resnet(j == 0 ? channels : out, out);
    channels = out;
    if (i + 1 < blocks) {
      h *= 2;
      w *= 2;
      const uint64_t up = t.add(bytes_of(batch * out * h * w, e));
      const uint64_t conv = conv_into(t, batch, out, out, h, w, 3, target);
      t.drop(up + x);
      x = conv;
    }
  }
  const int64_t c0 = c.block_out_channels.front(), hw = h * w, pixels = batch * 3 * hw;
  const uint64_t g = norm_into(t, batch * c0 * hw, batch * groups, target), s = t.add(bytes_of(batch * c0 * hw, e));
  const uint64_t decoded = conv_into(t, batch, c0, c.out_channels, h, w, 3, target);
  t.drop(g + s + x);
  // to_images: (decoded / 2 + 0.5).clamp(0, 1) in fp32; on the CPU also the bytes.
  const uint64_t s1 = t.add(bytes_of(pixels, e)), s2 = t.add(bytes_of(pixels, e));
  t.drop(s1);
  const uint64_t s3 = t.add(bytes_of(pixels, e));
  t.drop(s2);
  uint64_t image = s3;
  if (e != 4) image += t.add(bytes_of(pixels, 4));
  if (target.cpu) {
    const uint64_t scaled = t.add(bytes_of(pixels, 4)), rounded = t.add(bytes_of(pixels, 4));
    t.drop(scaled);
    const uint64_t u8 = t.add(bytes_of(pixels, 1));
    t.drop(rounded);
    t.add(bytes_of(pixels, 1));  // contiguous
    t.drop(u8);
  }
  t.drop(image + decoded);
  return t.peak();
}

}  // namespace tp::nn
