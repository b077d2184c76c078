#include "pipeline/sdxl/unet_config.h"

#include <algorithm>
#include <cmath>

#include "pipeline/common/config_reader.h"

namespace tp::sdxl {
namespace {

using nlohmann::json;
using nn::ConfigReader;

const json* field(const ConfigReader& r, const char* key) {
  auto it = r.json().find(key);
  return it == r.json().end() || it->is_null() ? nullptr : &*it;
}

bool small_int(const json& v, int64_t min) {
  return v.is_number_integer() && v.get<int64_t>() >= min && v.get<int64_t>() <= (int64_t{1} << 24);
}

// An int that diffusers broadcasts to `n` blocks, or a list of `n` ints, each at least `min`.
Expected<std::vector<int64_t>> per_block(const ConfigReader& r, const char* key, size_t n, int64_t fallback,
                                         int64_t min) {
  const json* v = field(r, key);
  if (!v) return std::vector<int64_t>(n, fallback);
  if (small_int(*v, min)) return std::vector<int64_t>(n, v->get<int64_t>());
  if (!v->is_array())
    return invalid_argument(r.where(key) + " must be an integer or a list of integers, not " + v->dump());
  std::vector<int64_t> out;
  for (const json& e : *v) {
    if (e.is_array()) return unimplemented(r.where(key) + ": lists per resnet (" + v->dump() + ") are not supported");
    if (!small_int(e, min))
      return invalid_argument(r.where(key) + " must hold integers of at least " + std::to_string(min) + ", not " +
                              v->dump());
    out.push_back(e.get<int64_t>());
  }
  if (out.size() != n)
    return invalid_argument(r.where(key) + " has " + std::to_string(out.size()) + " entries for " + std::to_string(n) +
                            " down_block_types");
  return out;
}

Expected<std::vector<std::string>> strings(const ConfigReader& r, const char* key, std::vector<std::string> fallback) {
  const json* v = field(r, key);
  if (!v) return fallback;
  std::vector<std::string> out;
  if (!v->is_array()) return invalid_argument(r.where(key) + " must be a list of strings, not " + v->dump());
  for (const json& e : *v) {
    if (!e.is_string()) return invalid_argument(r.where(key) + " must be a list of strings, not " + v->dump());
    out.push_back(e.get<std::string>());
  }
  return out;
}

// kUnimplemented unless `key` is absent or null.
Status unset(const ConfigReader& r, const char* key) {
  if (const json* v = field(r, key))
    return unimplemented(r.where(key) + " is " + v->dump() + "; only null is supported");
  return {};
}

// kUnimplemented unless `key` is absent, null, false, or a list of false.
Status all_false(const ConfigReader& r, const char* key) {
  const json* v = field(r, key);
  if (!v) return {};
  auto is_false = [](const json& e) { return e.is_boolean() && !e.get<bool>(); };
  bool ok = is_false(*v) || (v->is_array() && std::all_of(v->begin(), v->end(), is_false));
  if (!ok && !v->is_boolean() && !v->is_array())
    return invalid_argument(r.where(key) + " must be true, false or a list of them, not " + v->dump());
  if (!ok) return unimplemented(r.where(key) + " is " + v->dump() + "; only false is supported");
  return {};
}

// The options of UNet2DConditionModel that SDXL does not use, refused unless at their defaults.
// (upcast_attention is accepted: diffusers' default attention, AttnProcessor2_0, ignores it; dropout
// and addition_embed_type_num_heads do nothing at inference with "text_time"; resnet_out_scale_factor
// below.)
Status refuse_unimplemented(const ConfigReader& r) {
  if (field(r, "num_attention_heads"))
    return invalid_argument(r.where("num_attention_heads") +
                            " must be null: diffusers' UNet2DConditionModel reads the heads from attention_head_dim");
  for (const char* key : {"class_embed_type", "num_class_embeds", "encoder_hid_dim", "encoder_hid_dim_type",
                          "time_embedding_act_fn", "timestep_post_act", "time_cond_proj_dim", "cross_attention_norm"})
    TP_TRY(unset(r, key));
  for (const char* key : {"only_cross_attention", "mid_block_only_cross_attention", "dual_cross_attention",
                          "class_embeddings_concat", "resnet_skip_time_act"})
    TP_TRY(all_false(r, key));
  TP_ASSIGN_OR_RETURN(std::string act, r.string("act_fn", "silu"));
  TP_TRY(r.one_of("act_fn", act, {"silu", "swish"}));
  TP_ASSIGN_OR_RETURN(std::string time, r.string("time_embedding_type", "positional"));
  TP_TRY(r.one_of("time_embedding_type", time, {"positional"}));
  TP_ASSIGN_OR_RETURN(std::string attention, r.string("attention_type", "default"));
  TP_TRY(r.one_of("attention_type", attention, {"default"}));
  const json* add = field(r, "addition_embed_type");
  if (!add) return unimplemented(r.where("addition_embed_type") + " is null; supported: 'text_time' (SDXL)");
  TP_ASSIGN_OR_RETURN(std::string add_type, r.string("addition_embed_type", ""));
  return r.one_of("addition_embed_type", add_type, {"text_time"});
}

// Every GroupNorm's channels must be a multiple of norm_num_groups: the
// resnets' (an up block's first ones see the skip connection concatenated),
// the transformers' and the output norm's. diffusers' channel arithmetic for
// the skip connections always lines up with the down path's outputs.
Status check_groups(const ConfigReader& r, const UNetConfig& c) {
  const size_t n = c.block_out_channels.size();
  auto grouped = [&](int64_t channels) -> Status {
    if (channels % c.norm_num_groups == 0) return {};
    return invalid_argument(r.where("norm_num_groups") + " (" + std::to_string(c.norm_num_groups) +
                            ") does not divide a GroupNorm of " + std::to_string(channels) + " channels");
  };
  for (int64_t ch : c.block_out_channels) TP_TRY(grouped(ch));
  int64_t prev = c.block_out_channels[n - 1];
  for (size_t i = 0; i < n; ++i) {
    const int64_t out = c.block_out_channels[n - 1 - i], in = c.block_out_channels[n - 1 - std::min(i + 1, n - 1)];
    for (int64_t j = 0; j < c.up_layers(i); ++j)
      TP_TRY(grouped((j == 0 ? prev : out) + (j + 1 == c.up_layers(i) ? in : out)));
    prev = out;
  }
  return {};
}

}  // namespace

Expected<UNetConfig> parse_unet_config(const nlohmann::json& config, std::string_view origin) {
  TP_ASSIGN_OR_RETURN(ConfigReader r, ConfigReader::over(config, origin));
  TP_TRY(refuse_unimplemented(r));
  UNetConfig c;
  TP_ASSIGN_OR_RETURN(c.in_channels, r.positive("in_channels", 4));
  TP_ASSIGN_OR_RETURN(c.out_channels, r.positive("out_channels", 4));
  if (const json* s = field(r, "sample_size");
      s && s->is_array() && s->size() == 2 && small_int((*s)[0], 1) && small_int((*s)[1], 1)) {
    c.sample_size = (*s)[0].get<int64_t>();  // (height, width): the height
  } else {
    TP_ASSIGN_OR_RETURN(c.sample_size, r.positive("sample_size", 128));
  }
  TP_ASSIGN_OR_RETURN(c.block_out_channels, r.ints("block_out_channels"));
  if (!field(r, "block_out_channels")) c.block_out_channels = {320, 640, 1280, 1280};
  const size_t n = c.block_out_channels.size();
  if (n == 0 || n > 8) return invalid_argument(r.where("block_out_channels") + " must have 1 to 8 entries");
  for (int64_t ch : c.block_out_channels)
    if (ch == 0) return invalid_argument(r.where("block_out_channels") + " must hold positive integers");
  TP_ASSIGN_OR_RETURN(c.down_block_types,
                      strings(r, "down_block_types",
                              {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"}));
  TP_ASSIGN_OR_RETURN(
      c.up_block_types,
      strings(r, "up_block_types", {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"}));
  if (c.down_block_types.size() != n)
    return invalid_argument(r.where("down_block_types") + " has " + std::to_string(c.down_block_types.size()) +
                            " entries for " + std::to_string(n) + " block_out_channels");
  if (c.up_block_types.size() != n)
    return invalid_argument(r.where("up_block_types") + " has " + std::to_string(c.up_block_types.size()) +
                            " entries for " + std::to_string(n) + " down_block_types");
  for (const std::string& t : c.down_block_types)
    TP_TRY(r.one_of("down_block_types", t, {"CrossAttnDownBlock2D", "DownBlock2D"}));
  for (const std::string& t : c.up_block_types)
    TP_TRY(r.one_of("up_block_types", t, {"CrossAttnUpBlock2D", "UpBlock2D"}));
  TP_ASSIGN_OR_RETURN(std::string mid, r.string("mid_block_type", "UNetMidBlock2DCrossAttn"));
  c.mid_block = field(r, "mid_block_type") != nullptr || !r.json().contains("mid_block_type");
  if (c.mid_block) TP_TRY(r.one_of("mid_block_type", mid, {"UNetMidBlock2DCrossAttn"}));

  TP_ASSIGN_OR_RETURN(c.layers_per_block, per_block(r, "layers_per_block", n, 2, 1));
  TP_ASSIGN_OR_RETURN(c.transformer_layers_per_block, per_block(r, "transformer_layers_per_block", n, 1, 1));
  c.mid_transformer_layers = c.transformer_layers_per_block.back();
  c.up_transformer_layers.assign(c.transformer_layers_per_block.rbegin(), c.transformer_layers_per_block.rend());
  if (field(r, "reverse_transformer_layers_per_block")) {
    TP_ASSIGN_OR_RETURN(c.up_transformer_layers, per_block(r, "reverse_transformer_layers_per_block", n, 1, 1));
  }
  TP_ASSIGN_OR_RETURN(c.heads, per_block(r, "attention_head_dim", n, 8, 1));
  TP_ASSIGN_OR_RETURN(std::vector<int64_t> cross, per_block(r, "cross_attention_dim", n, 1280, 1));
  // One context feeds every block, so the blocks with attention must agree on its width.
  c.cross_attention_dim = cross.back();
  for (size_t i = 0; i < n; ++i)
    if ((c.has_attention(i) || c.up_has_attention(n - 1 - i)) && cross[i] != c.cross_attention_dim)
      return invalid_argument(r.where("cross_attention_dim") +
                              ": the blocks with cross-attention must share one context width");
  for (size_t i = 0; i < n; ++i)
    if (c.heads[i] > c.block_out_channels[i])
      return invalid_argument(r.where("attention_head_dim") + " (the number of heads) exceeds block_out_channels");

  if (const json* g = field(r, "norm_num_groups"); !g && r.json().contains("norm_num_groups"))
    return unimplemented(r.where("norm_num_groups") + " is null; only GroupNorm UNets are supported");
  TP_ASSIGN_OR_RETURN(c.norm_num_groups, r.positive("norm_num_groups", 32));
  TP_ASSIGN_OR_RETURN(c.norm_eps, r.number("norm_eps", 1e-5));
  if (!(c.norm_eps > 0)) return invalid_argument(r.where("norm_eps") + " must be positive");
  TP_ASSIGN_OR_RETURN(c.use_linear_projection, r.boolean("use_linear_projection", false));
  TP_ASSIGN_OR_RETURN(c.flip_sin_to_cos, r.boolean("flip_sin_to_cos", true));
  TP_ASSIGN_OR_RETURN(c.freq_shift, r.number("freq_shift", 0));
  TP_ASSIGN_OR_RETURN(c.center_input_sample, r.boolean("center_input_sample", false));
  TP_ASSIGN_OR_RETURN(c.time_embed_dim, r.positive("time_embedding_dim", 4 * c.block_out_channels[0]));
  TP_ASSIGN_OR_RETURN(c.conv_in_kernel, r.positive("conv_in_kernel", 3));
  TP_ASSIGN_OR_RETURN(c.conv_out_kernel, r.positive("conv_out_kernel", 3));
  if (c.conv_in_kernel % 2 == 0) return unimplemented(r.where("conv_in_kernel") + ": only odd kernels are supported");
  if (c.conv_out_kernel % 2 == 0) return unimplemented(r.where("conv_out_kernel") + ": only odd kernels are supported");
  if (const json* p = field(r, "downsample_padding")) {
    if (!small_int(*p, 0))
      return invalid_argument(r.where("downsample_padding") + " must be 0 or more, not " + p->dump());
    c.downsample_padding = p->get<int64_t>();
    if (c.downsample_padding > 1)
      return unimplemented(r.where("downsample_padding") + " is " + p->dump() + "; supported: 0, 1");
  }
  // resnet_out_scale_factor is accepted and, as in diffusers, unused: it reaches only the block types
  // not implemented here (ResnetDownsampleBlock2D, SimpleCrossAttn*).
  TP_ASSIGN_OR_RETURN(c.mid_block_scale_factor, r.number("mid_block_scale_factor", 1));
  if (c.mid_block_scale_factor == 0) return invalid_argument(r.where("mid_block_scale_factor") + " must not be 0");
  TP_ASSIGN_OR_RETURN(std::string shift, r.string("resnet_time_scale_shift", "default"));
  TP_TRY(r.one_of("resnet_time_scale_shift", shift, {"default", "scale_shift"}));
  c.scale_shift = shift == "scale_shift";

  TP_ASSIGN_OR_RETURN(c.addition_time_embed_dim, r.positive("addition_time_embed_dim"));
  TP_ASSIGN_OR_RETURN(c.projection_class_embeddings_input_dim, r.positive("projection_class_embeddings_input_dim"));
  if (c.projection_class_embeddings_input_dim <= c.addition_time_embed_dim)
    return invalid_argument(r.where("projection_class_embeddings_input_dim") +
                            " must exceed addition_time_embed_dim (it holds the pooled text and the time ids)");
  TP_TRY(check_groups(r, c));
  return c;
}

}  // namespace tp::sdxl
