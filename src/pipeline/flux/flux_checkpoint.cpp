#include "pipeline/flux/flux_checkpoint.h"

#include <ATen/Functions.h>

#include <algorithm>
#include <charconv>
#include <string_view>
#include <utility>
#include <vector>

namespace tp::flux {
namespace {

constexpr std::string_view kComfyPrefix = "model.diffusion_model.";

// BFL names (without the .weight / .bias / .scale suffix) of the layers outside the blocks.
constexpr std::pair<std::string_view, std::string_view> kTopLevel[] = {
    {"img_in", "x_embedder"},
    {"txt_in", "context_embedder"},
    {"time_in.in_layer", "time_text_embed.timestep_embedder.linear_1"},
    {"time_in.out_layer", "time_text_embed.timestep_embedder.linear_2"},
    {"guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1"},
    {"guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2"},
    {"vector_in.in_layer", "time_text_embed.text_embedder.linear_1"},
    {"vector_in.out_layer", "time_text_embed.text_embedder.linear_2"},
    {"final_layer.linear", "proj_out"},
};

// Inside double_blocks.N (not the fused qkv, split below).
constexpr std::pair<std::string_view, std::string_view> kDouble[] = {
    {"img_mod.lin", "norm1.linear"},
    {"txt_mod.lin", "norm1_context.linear"},
    {"img_attn.norm.query_norm", "attn.norm_q"},
    {"img_attn.norm.key_norm", "attn.norm_k"},
    {"txt_attn.norm.query_norm", "attn.norm_added_q"},
    {"txt_attn.norm.key_norm", "attn.norm_added_k"},
    {"img_attn.proj", "attn.to_out.0"},
    {"txt_attn.proj", "attn.to_add_out"},
    {"img_mlp.0", "ff.net.0.proj"},
    {"img_mlp.2", "ff.net.2"},
    {"txt_mlp.0", "ff_context.net.0.proj"},
    {"txt_mlp.2", "ff_context.net.2"},
};

// Inside single_blocks.N (not the fused linear1, split below).
constexpr std::pair<std::string_view, std::string_view> kSingle[] = {
    {"modulation.lin", "norm.linear"},
    {"norm.query_norm", "attn.norm_q"},
    {"norm.key_norm", "attn.norm_k"},
    {"linear2", "proj_out"},
};

std::string_view strip(std::string_view name) {
  return name.starts_with(kComfyPrefix) ? name.substr(kComfyPrefix.size()) : name;
}

// "double_blocks.12.img_mod.lin" -> {"12", "img_mod.lin"} when `name` starts with `blocks`.
bool split_block(std::string_view name, std::string_view blocks, std::string_view& index, std::string_view& rest) {
  if (!name.starts_with(blocks)) return false;
  name.remove_prefix(blocks.size());
  const size_t dot = name.find('.');
  if (dot == 0 || dot == std::string_view::npos) return false;
  index = name.substr(0, dot);
  int n = 0;
  auto [end, ec] = std::from_chars(index.data(), index.data() + index.size(), n);
  if (ec != std::errc() || end != index.data() + index.size()) return false;
  rest = name.substr(dot + 1);
  return true;
}

template <size_t N>
const std::string_view* lookup(const std::pair<std::string_view, std::string_view> (&table)[N], std::string_view key) {
  for (const auto& [from, to] : table)
    if (from == key) return &to;
  return nullptr;
}

}  // namespace

bool is_bfl_layout(const nn::TensorMap& weights) {
  for (const char* probe : {"img_in.weight", "double_blocks.0.img_attn.qkv.weight"})
    if (weights.count(probe) || weights.count(std::string(kComfyPrefix) + probe)) return true;
  return false;
}

Status check_known_layout(const nn::TensorMap& weights) {
  if (weights.count("x_embedder.weight") || is_bfl_layout(weights)) return {};
  std::vector<std::string> keys;
  for (const auto& [name, tensor] : weights) keys.push_back(name);
  std::sort(keys.begin(), keys.end());
  std::string list;
  for (size_t i = 0; i < keys.size() && i < 5; ++i) list += (i ? ", '" : "'") + keys[i] + "'";
  return invalid_argument("the transformer's weights are in neither diffusers' layout (no 'x_embedder.weight') nor "
                          "the original Black Forest Labs one (no 'img_in.weight'); keys not recognised (" +
                          std::to_string(keys.size()) + "): " + list + (keys.size() > 5 ? ", ..." : ""));
}

Expected<nn::TensorMap> from_bfl_layout(const nn::TensorMap& weights, const TransformerConfig& c) {
  const int64_t d = c.inner_dim();
  nn::TensorMap out;
  std::vector<std::string> unknown;
  // Rows [offset, offset + rows) of a fused tensor, checked against the config.
  auto rows = [&](const std::string& name, const at::Tensor& t, int64_t total, int64_t offset, int64_t count)
      -> Expected<at::Tensor> {
    if (t.dim() < 1 || t.size(0) != total)
      return invalid_argument("weight '" + name + "' has " + std::to_string(t.dim() ? t.size(0) : 0) +
                              " rows, but the config's fused projection has " + std::to_string(total));
    return t.narrow(0, offset, count);
  };
  for (const auto& [full, tensor] : weights) {
    std::string_view name = strip(full);
    const size_t dot = name.rfind('.');
    if (dot == std::string_view::npos) {
      unknown.push_back(full);
      continue;
    }
    const std::string_view base = name.substr(0, dot), suffix_in = name.substr(dot + 1);
    if (suffix_in != "weight" && suffix_in != "bias" && suffix_in != "scale") {
      unknown.push_back(full);
      continue;
    }
    const std::string suffix = suffix_in == "scale" ? "weight" : std::string(suffix_in);
    std::string_view index, rest;
    if (const std::string_view* to = lookup(kTopLevel, base)) {
      out[std::string(*to) + "." + suffix] = tensor;
    } else if (base == "final_layer.adaLN_modulation.1") {
      // Stored (shift, scale); AdaLayerNormContinuous reads (scale, shift).
      TP_ASSIGN_OR_RETURN(at::Tensor shift, rows(full, tensor, 2 * d, 0, d));
      TP_ASSIGN_OR_RETURN(at::Tensor scale, rows(full, tensor, 2 * d, d, d));
      out["norm_out.linear." + suffix] = at::cat({scale, shift}, 0);
    } else if (split_block(base, "double_blocks.", index, rest)) {
      const std::string p = "transformer_blocks." + std::string(index) + ".";
      if (rest == "img_attn.qkv" || rest == "txt_attn.qkv") {
        const bool img = rest == "img_attn.qkv";
        const char* names[3] = {img ? "attn.to_q" : "attn.add_q_proj", img ? "attn.to_k" : "attn.add_k_proj",
                                img ? "attn.to_v" : "attn.add_v_proj"};
        for (int64_t i = 0; i < 3; ++i) {
          TP_ASSIGN_OR_RETURN(out[p + names[i] + "." + suffix], rows(full, tensor, 3 * d, i * d, d));
        }
      } else if (const std::string_view* to = lookup(kDouble, rest)) {
        out[p + std::string(*to) + "." + suffix] = tensor;
      } else {
        unknown.push_back(full);
      }
    } else if (split_block(base, "single_blocks.", index, rest)) {
      const std::string p = "single_transformer_blocks." + std::string(index) + ".";
      if (rest == "linear1") {
        const char* names[4] = {"attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"};
        for (int64_t i = 0; i < 4; ++i) {
          TP_ASSIGN_OR_RETURN(out[p + names[i] + "." + suffix], rows(full, tensor, 7 * d, i * d, i < 3 ? d : 4 * d));
        }
      } else if (const std::string_view* to = lookup(kSingle, rest)) {
        out[p + std::string(*to) + "." + suffix] = tensor;
      } else {
        unknown.push_back(full);
      }
    } else {
      unknown.push_back(full);
    }
  }
  if (!unknown.empty()) {
    std::sort(unknown.begin(), unknown.end());
    std::string list;
    for (size_t i = 0; i < unknown.size() && i < 5; ++i) list += (i ? ", '" : "'") + unknown[i] + "'";
    return invalid_argument("a Black Forest Labs-layout Flux checkpoint with " + std::to_string(unknown.size()) +
                            " key(s) not recognised: " + list + (unknown.size() > 5 ? ", ..." : ""));
  }
  return out;
}

}  // namespace tp::flux
