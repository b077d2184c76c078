#include "pipeline/sdxl/sdxl_unet.h"

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>

#include <cmath>
#include <string>

#include "pipeline/common/binder.h"

namespace tp::sdxl {

using nn::group_norm;
using nn::layer_norm;

Expected<UNet> UNet::bind(const UNetConfig& c, const nn::TensorMap& weights, std::string_view prefix) {
  return nn::bind_checked<UNet>([&] {
    nn::Binder b(weights, prefix);
    UNet u;
    u.config_ = c;
    const size_t n = c.block_out_channels.size();
    const int64_t temb = c.time_embed_dim, c0 = c.block_out_channels[0];
    auto resnet = [&](const std::string& p, int64_t in, int64_t out) {
      Resnet r{b.norm(p + "norm1", in, c.norm_eps),
               b.norm(p + "norm2", out, c.norm_eps),
               b.conv(p + "conv1", in, out, 3, 1, 1),
               b.conv(p + "conv2", out, out, 3, 1, 1),
               nn::Conv2d{},
               b.linear(p + "time_emb_proj", temb, c.scale_shift ? 2 * out : out)};
      if (in != out) r.shortcut = b.conv(p + "conv_shortcut", in, out, 1, 1, 0);
      return r;
    };
    auto transformer = [&](const std::string& p, int64_t ch, int64_t heads, int64_t layers) {
      Transformer t;
      t.heads = heads;
      const int64_t d = heads * (ch / heads), ctx = c.cross_attention_dim;  // diffusers' inner_dim
      t.norm = b.norm(p + "norm", ch, 1e-6);
      if (c.use_linear_projection) {
        t.proj_in = b.linear(p + "proj_in", ch, d);
        t.proj_out = b.linear(p + "proj_out", d, ch);
      } else {
        t.proj_in_conv = b.conv(p + "proj_in", ch, d, 1, 1, 0);
        t.proj_out_conv = b.conv(p + "proj_out", d, ch, 1, 1, 0);
      }
      for (int64_t i = 0; i < layers; ++i) {
        const std::string q = p + "transformer_blocks." + std::to_string(i) + ".";
        auto attention = [&](const std::string& a, int64_t kv) {
          return Attention{b.linear(q + a + ".to_q", d, d, false), b.linear(q + a + ".to_k", kv, d, false),
                           b.linear(q + a + ".to_v", kv, d, false), b.linear(q + a + ".to_out.0", d, d)};
        };
        t.blocks.push_back({b.norm(q + "norm1", d, 1e-5), b.norm(q + "norm2", d, 1e-5), b.norm(q + "norm3", d, 1e-5),
                            attention("attn1", d), attention("attn2", ctx), b.linear(q + "ff.net.0.proj", d, 8 * d),
                            b.linear(q + "ff.net.2", 4 * d, d)});
      }
      return t;
    };
    const int64_t k_in = c.conv_in_kernel, k_out = c.conv_out_kernel;
    u.conv_in_ = b.conv("conv_in", c.in_channels, c0, k_in, 1, (k_in - 1) / 2);
    u.time1_ = b.linear("time_embedding.linear_1", c0, temb);
    u.time2_ = b.linear("time_embedding.linear_2", temb, temb);
    u.add1_ = b.linear("add_embedding.linear_1", c.projection_class_embeddings_input_dim, temb);
    u.add2_ = b.linear("add_embedding.linear_2", temb, temb);

    int64_t ch = c0;
    for (size_t i = 0; i < n; ++i) {
      const std::string p = "down_blocks." + std::to_string(i) + ".";
      const int64_t out = c.block_out_channels[i];
      Block block;
      for (int64_t j = 0; j < c.layers_per_block[i]; ++j) {
        const std::string s = std::to_string(j);
        block.resnets.push_back(resnet(p + "resnets." + s + ".", j == 0 ? ch : out, out));
        if (c.has_attention(i))
          block.attentions.push_back(
              transformer(p + "attentions." + s + ".", out, c.heads[i], c.transformer_layers_per_block[i]));
      }
      if (i + 1 < n) block.resample = b.conv(p + "downsamplers.0.conv", out, out, 3, 2, c.downsample_padding);
      u.down_.push_back(std::move(block));
      ch = out;
    }
    if (c.mid_block) {
      Block mid;
      mid.resnets.push_back(resnet("mid_block.resnets.0.", ch, ch));
      mid.attentions.push_back(transformer("mid_block.attentions.0.", ch, c.heads.back(), c.mid_transformer_layers));
      mid.resnets.push_back(resnet("mid_block.resnets.1.", ch, ch));
      u.mid_ = std::move(mid);
    }
    int64_t prev = c.block_out_channels[n - 1];
    for (size_t i = 0; i < n; ++i) {
      const std::string p = "up_blocks." + std::to_string(i) + ".";
      const int64_t out = c.block_out_channels[n - 1 - i], in = c.block_out_channels[n - 1 - std::min(i + 1, n - 1)];
      Block block;
      const int64_t layers = c.up_layers(i);
      for (int64_t j = 0; j < layers; ++j) {
        const std::string s = std::to_string(j);
        const int64_t skip = j + 1 == layers ? in : out;
        block.resnets.push_back(resnet(p + "resnets." + s + ".", (j == 0 ? prev : out) + skip, out));
        if (c.up_has_attention(i))
          block.attentions.push_back(
              transformer(p + "attentions." + s + ".", out, c.up_heads(i), c.up_transformer_layers[i]));
      }
      if (i + 1 < n) block.resample = b.conv(p + "upsamplers.0.conv", out, out, 3, 1, 1);
      u.up_.push_back(std::move(block));
      prev = out;
    }
    u.norm_out_ = b.norm("conv_norm_out", c0, c.norm_eps);
    u.conv_out_ = b.conv("conv_out", c0, c.out_channels, k_out, 1, (k_out - 1) / 2);
    return u;
  });
}

// diffusers' get_timestep_embedding (Timesteps), op for op: fp32 out.
at::Tensor UNet::sinusoid(const at::Tensor& t, int64_t dim) const {
  const int64_t half = dim / 2;
  auto fopts = at::TensorOptions().dtype(at::kFloat).device(t.device());
  at::Tensor exponent = at::arange(half, fopts) * -std::log(10000.0);
  exponent = exponent / (static_cast<double>(half) - config_.freq_shift);
  at::Tensor args = t.to(at::kFloat).unsqueeze(1) * at::exp(exponent).unsqueeze(0);
  at::Tensor emb = config_.flip_sin_to_cos ? at::cat({at::cos(args), at::sin(args)}, -1)
                                           : at::cat({at::sin(args), at::cos(args)}, -1);
  if (dim % 2 == 1) emb = at::constant_pad_nd(emb, {0, 1});
  return emb;
}

at::Tensor UNet::resnet(const Resnet& r, const at::Tensor& x, const at::Tensor& emb, double scale) const {
  const int64_t groups = config_.norm_num_groups;
  at::Tensor h = r.conv1(at::silu(group_norm(x, r.norm1, groups)));
  at::Tensor t = r.time_proj(at::silu(emb)).unsqueeze(-1).unsqueeze(-1);
  if (config_.scale_shift) {
    std::vector<at::Tensor> st = t.chunk(2, 1);
    h = group_norm(h, r.norm2, groups) * (1 + st[0]) + st[1];
  } else {
    h = group_norm(h + t, r.norm2, groups);
  }
  h = r.conv2(at::silu(h));
  at::Tensor out = (r.shortcut.weight.defined() ? r.shortcut(x) : x) + h;
  return scale == 1 ? out : out / scale;
}

at::Tensor UNet::transformer(const Transformer& t, const at::Tensor& x, const at::Tensor& context) const {
  const int64_t batch = x.size(0), height = x.size(2), width = x.size(3);
  at::Tensor h = group_norm(x, t.norm, config_.norm_num_groups);
  auto tokens = [&](const at::Tensor& y) {
    return y.permute({0, 2, 3, 1}).reshape({batch, height * width, y.size(1)});
  };
  h = config_.use_linear_projection ? t.proj_in(tokens(h)) : tokens(t.proj_in_conv(h));
  auto attend = [&](const Attention& a, const at::Tensor& q, const at::Tensor& kv) {
    at::Tensor o = nn::attention(nn::split_heads(a.q(q), t.heads), nn::split_heads(a.k(kv), t.heads),
                                 nn::split_heads(a.v(kv), t.heads));
    return a.out(nn::merge_heads(o));
  };
  for (const TransformerBlock& blk : t.blocks) {
    at::Tensor n1 = layer_norm(h, blk.norm1);
    h = attend(blk.self_attn, n1, n1) + h;
    h = attend(blk.cross_attn, layer_norm(h, blk.norm2), context) + h;
    std::vector<at::Tensor> gate = blk.ff_in(layer_norm(h, blk.norm3)).chunk(2, -1);
    h = blk.ff_out(gate[0] * at::gelu(gate[1])) + h;
  }
  auto image = [&](const at::Tensor& y) {
    return y.reshape({batch, height, width, y.size(2)}).permute({0, 3, 1, 2}).contiguous();
  };
  h = config_.use_linear_projection ? image(t.proj_out(h)) : t.proj_out_conv(image(h));
  return h + x;
}

at::Tensor UNet::forward(const at::Tensor& sample, const at::Tensor& timestep, const at::Tensor& context_in,
                         const at::Tensor& text_embeds, const at::Tensor& time_ids) const {
  const UNetConfig& c = config_;
  const auto dtype = conv_in_.weight.scalar_type();
  const int64_t batch = sample.size(0), groups = c.norm_num_groups;
  at::Tensor x = sample.to(dtype);
  if (c.center_input_sample) x = 2 * x - 1.0;
  const at::Tensor context = context_in.to(dtype);

  at::Tensor t = timestep.dim() == 0 ? timestep.unsqueeze(0) : timestep;
  at::Tensor emb = time2_(at::silu(time1_(sinusoid(t.expand({batch}), c.block_out_channels[0]).to(dtype))));
  at::Tensor time_embeds = sinusoid(time_ids.flatten(), c.addition_time_embed_dim).reshape({text_embeds.size(0), -1});
  at::Tensor add = at::cat({text_embeds, time_embeds}, -1).to(emb.scalar_type());
  emb = emb + add2_(at::silu(add1_(add)));

  x = conv_in_(x);
  std::vector<at::Tensor> skips{x};
  for (const Block& blk : down_) {
    for (size_t j = 0; j < blk.resnets.size(); ++j) {
      x = resnet(blk.resnets[j], x, emb, 1.0);
      if (!blk.attentions.empty()) x = transformer(blk.attentions[j], x, context);
      skips.push_back(x);
    }
    if (blk.resample) {
      if (c.downsample_padding == 0) x = at::constant_pad_nd(x, {0, 1, 0, 1});
      x = (*blk.resample)(x);
      skips.push_back(x);
    }
  }
  if (mid_) {
    x = resnet(mid_->resnets[0], x, emb, c.mid_block_scale_factor);
    x = transformer(mid_->attentions[0], x, context);
    x = resnet(mid_->resnets[1], x, emb, c.mid_block_scale_factor);
  }
  for (const Block& blk : up_) {
    for (size_t j = 0; j < blk.resnets.size(); ++j) {
      x = at::cat({x, skips.back()}, 1);
      skips.pop_back();
      x = resnet(blk.resnets[j], x, emb, 1.0);
      if (!blk.attentions.empty()) x = transformer(blk.attentions[j], x, context);
    }
    if (blk.resample) {
      // Nearest, to the size of the skip connection it meets next (2x, or
      // what diffusers forwards as upsample_size when a side is odd).
      x = at::upsample_nearest2d(x, {skips.back().size(2), skips.back().size(3)});
      x = (*blk.resample)(x);
    }
  }
  return conv_out_(at::silu(group_norm(x, norm_out_, groups)));
}

}  // namespace tp::sdxl
