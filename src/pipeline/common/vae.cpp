#include "pipeline/common/vae.h"

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>

#include <cmath>

#include "pipeline/common/binder.h"

namespace tp::nn {

Expected<VaeDecoder> VaeDecoder::bind(const VaeConfig& c, const TensorMap& weights, std::string_view prefix) {
  return bind_checked<VaeDecoder>([&] {
    Binder b(weights, prefix);
    VaeDecoder v;
    v.config_ = c;
    auto resnet = [&](const std::string& n, int64_t in, int64_t out) {
      Resnet r{b.norm(n + ".norm1", in, 1e-6), b.norm(n + ".norm2", out, 1e-6), b.conv(n + ".conv1", in, out, 3, 1, 1),
               b.conv(n + ".conv2", out, out, 3, 1, 1), Conv2d{}};
      if (in != out) r.shortcut = b.conv(n + ".conv_shortcut", in, out, 1, 1, 0);
      return r;
    };
    const int64_t top = c.block_out_channels.back(), lat = c.latent_channels;
    if (c.post_quant_conv) v.post_quant_conv_ = b.conv("post_quant_conv", lat, lat, 1, 1, 0);
    v.conv_in_ = b.conv("decoder.conv_in", lat, top, 3, 1, 1);
    v.mid1_ = resnet("decoder.mid_block.resnets.0", top, top);
    v.mid2_ = resnet("decoder.mid_block.resnets.1", top, top);
    if (c.mid_attention) {
      const std::string a = "decoder.mid_block.attentions.0.";
      v.mid_attn_norm_ = b.norm(a + "group_norm", top, 1e-6);
      v.mid_q_ = b.linear(a + "to_q", top, top);
      v.mid_k_ = b.linear(a + "to_k", top, top);
      v.mid_v_ = b.linear(a + "to_v", top, top);
      v.mid_out_ = b.linear(a + "to_out.0", top, top);
    }
    int64_t channels = top;
    const size_t n = c.block_out_channels.size();
    for (size_t i = 0; i < n; ++i) {
      const int64_t out = c.block_out_channels[n - 1 - i];
      const std::string u = "decoder.up_blocks." + std::to_string(i) + ".";
      Up up;
      for (int64_t j = 0; j <= c.layers_per_block; ++j)
        up.resnets.push_back(resnet(u + "resnets." + std::to_string(j), j == 0 ? channels : out, out));
      if (i + 1 < n) up.upsample = b.conv(u + "upsamplers.0.conv", out, out, 3, 1, 1);
      v.ups_.push_back(std::move(up));
      channels = out;
    }
    v.norm_out_ = b.norm("decoder.conv_norm_out", c.block_out_channels[0], 1e-6);
    v.conv_out_ = b.conv("decoder.conv_out", c.block_out_channels[0], c.out_channels, 3, 1, 1);
    return v;
  });
}

at::Tensor VaeDecoder::resnet(const Resnet& r, const at::Tensor& x) const {
  at::Tensor h = r.conv1(at::silu(group_norm(x, r.norm1, config_.groups)));
  h = r.conv2(at::silu(group_norm(h, r.norm2, config_.groups)));
  return (r.shortcut.weight.defined() ? r.shortcut(x) : x) + h;
}

at::Tensor VaeDecoder::forward(const at::Tensor& latents) const {
  at::Tensor x = post_quant_conv_ ? (*post_quant_conv_)(latents) : latents;
  x = conv_in_(x);
  x = resnet(mid1_, x);
  if (config_.mid_attention) {
    const int64_t b = x.size(0), ch = x.size(1), h = x.size(2), w = x.size(3);
    at::Tensor t = group_norm(x, mid_attn_norm_, config_.groups).view({b, ch, h * w}).transpose(1, 2);
    at::Tensor a = attention(mid_q_(t).unsqueeze(1), mid_k_(t).unsqueeze(1), mid_v_(t).unsqueeze(1));
    x = x + mid_out_(a.squeeze(1)).transpose(1, 2).reshape({b, ch, h, w});
  }
  x = resnet(mid2_, x);
  for (const Up& up : ups_) {
    for (const Resnet& r : up.resnets) x = resnet(r, x);
    if (up.upsample) {
      // Nearest 2x, in fp32 for bf16 as diffusers does.
      const auto dtype = x.scalar_type();
      at::Tensor y = dtype == at::kBFloat16 ? x.to(at::kFloat) : x;
      y = at::upsample_nearest2d(y, {x.size(2) * 2, x.size(3) * 2});
      x = (*up.upsample)(y.to(dtype));
    }
  }
  return conv_out_(at::silu(group_norm(x, norm_out_, config_.groups)));
}

at::Tensor VaeDecoder::decode_scaled(const at::Tensor& latents) const {
  return forward(latents / config_.scaling_factor + config_.shift_factor);
}

}  // namespace tp::nn
