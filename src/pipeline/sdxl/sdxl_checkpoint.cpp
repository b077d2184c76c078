// The Stability SDXL layout -> diffusers' names, one TensorSelection per network.
#include "pipeline/sdxl/sdxl_checkpoint.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <utility>
#include <vector>

#include "pipeline/sdxl/sdxl_spec.h"

namespace tp::sdxl {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// If `s` starts with `head` followed by a number and a dot, consumes them and sets `n`.
bool take_index(std::string_view& s, std::string_view head, int64_t& n) {
  if (!s.starts_with(head)) return false;
  std::string_view rest = s.substr(head.size());
  auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), n);
  if (ec != std::errc() || end == rest.data() || end == rest.data() + rest.size() || *end != '.' || n < 0)
    return false;
  s = rest.substr(static_cast<size_t>(end - rest.data()) + 1);
  return true;
}

bool take(std::string_view& s, std::string_view head) {
  if (!s.starts_with(head)) return false;
  s.remove_prefix(head.size());
  return true;
}

bool is_param(std::string_view s) { return s == "weight" || s == "bias"; }

// The keys of one part and the selection being built from them.
class Part {
 public:
  Part(const SafetensorsHeader& header, const CheckpointPart& part, std::string_view file)
      : header_(header), part_(part), file_(file) {
    selection_.what = std::string(part.what) + " (" + std::string(part.prefix) + "*)";
  }

  // The part's tensors, their names without the prefix; kNotFound when there are none.
  Expected<std::vector<std::pair<std::string_view, const TensorInfo*>>> keys() const {
    std::vector<std::pair<std::string_view, const TensorInfo*>> out;
    auto it = std::lower_bound(header_.tensors.begin(), header_.tensors.end(), part_.prefix,
                               [](const TensorInfo& t, std::string_view p) { return t.name < p; });
    for (; it != header_.tensors.end() && std::string_view(it->name).starts_with(part_.prefix); ++it)
      out.emplace_back(std::string_view(it->name).substr(part_.prefix.size()), &*it);
    if (out.empty())
      return not_found(file_ + ": the checkpoint has no " + std::string(part_.prefix) + "* (" +
                       std::string(part_.what) + "); an SDXL single file holds model.diffusion_model.* (the UNet), "
                       "conditioner.embedders.0.* and .1.* (the text encoders) and first_stage_model.* (the VAE)");
    return out;
  }

  // Picks `info` as `name`; the caller may set the pick's rows, shape or transposition.
  TensorPick& pick(const TensorInfo& info, std::string name) {
    TensorPick& p = selection_.picks.emplace_back();
    p.name = std::move(name);
    p.source = info.name;
    return p;
  }
  void unknown(const TensorInfo& info) { unknown_.push_back(info.name); }

  // `info` has `want`'s shape (-1: any size there), else a named error is kept.
  void expect(const TensorInfo& info, const std::vector<int64_t>& want, std::string_view why) {
    bool fits = info.shape.size() == want.size();
    for (size_t i = 0; fits && i < want.size(); ++i) fits = want[i] < 0 || want[i] == info.shape[i];
    if (fits || bad_shape_) return;
    std::vector<int64_t> shown = want;
    std::string text = "(";
    for (size_t i = 0; i < shown.size(); ++i) text += (i ? ", " : "") + (shown[i] < 0 ? "*" : std::to_string(shown[i]));
    text += shown.size() == 1 ? ",)" : ")";
    bad_shape_ = file_ + ": " + selection_.what + ": '" + info.name + "' has shape " + shape_text(info.shape) +
                 ", but the config wants " + text + " (" + std::string(why) + ")";
  }

  Expected<TensorSelection> finish() {
    if (!unknown_.empty()) {
      std::string list;
      for (size_t i = 0; i < unknown_.size() && i < 5; ++i) list += (i ? ", '" : "'") + unknown_[i] + "'";
      return invalid_argument(file_ + ": " + selection_.what + ": " + std::to_string(unknown_.size()) +
                              " key(s) that map to no diffusers name under the folder's config: " + list +
                              (unknown_.size() > 5 ? ", ..." : ""));
    }
    if (bad_shape_) return invalid_argument(*bad_shape_);
    return std::move(selection_);
  }

 private:
  const SafetensorsHeader& header_;
  const CheckpointPart& part_;
  std::string file_;
  TensorSelection selection_;
  std::vector<std::string> unknown_;
  std::optional<std::string> bad_shape_;
};

// ---- UNet ---------------------------------------------------------------------

enum class Kind { kPlain, kResnet, kAttention };

struct Block {
  std::string to;              // diffusers' prefix, ending with '.'
  Kind kind = Kind::kPlain;
  int64_t transformer_layers = 0;  // attention blocks: transformer_blocks.N with N below this
  int64_t channels = -1;           // resnets: their output channels (conv1's rows)
};

// ldm_resnet_inner -> diffusers' (the UNet's ResBlock names).
constexpr std::pair<std::string_view, std::string_view> kUnetResnet[] = {
    {"in_layers.0.", "norm1."},  {"in_layers.2.", "conv1."},        {"out_layers.0.", "norm2."},
    {"out_layers.3.", "conv2."}, {"emb_layers.1.", "time_emb_proj."}, {"skip_connection.", "conv_shortcut."},
};

std::map<std::string, Block, std::less<>> unet_blocks(const UNetConfig& c) {
  std::map<std::string, Block, std::less<>> b;
  b["time_embed.0."] = {"time_embedding.linear_1."};
  b["time_embed.2."] = {"time_embedding.linear_2."};
  b["label_emb.0.0."] = {"add_embedding.linear_1."};
  b["label_emb.0.2."] = {"add_embedding.linear_2."};
  b["input_blocks.0.0."] = {"conv_in."};
  b["out.0."] = {"conv_norm_out."};
  b["out.2."] = {"conv_out."};
  const size_t n = c.block_out_channels.size();
  auto s = [](auto v) { return std::to_string(v); };
  int64_t k = 1;
  for (size_t level = 0; level < n; ++level) {
    const std::string d = "down_blocks." + s(level) + ".";
    for (int64_t j = 0; j < c.layers_per_block[level]; ++j, ++k) {
      b["input_blocks." + s(k) + ".0."] = {d + "resnets." + s(j) + ".", Kind::kResnet, 0, c.block_out_channels[level]};
      if (c.has_attention(level))
        b["input_blocks." + s(k) + ".1."] = {d + "attentions." + s(j) + ".", Kind::kAttention,
                                             c.transformer_layers_per_block[level]};
    }
    if (level + 1 < n) b["input_blocks." + s(k++) + ".0.op."] = {d + "downsamplers.0.conv."};
  }
  if (c.mid_block) {
    b["middle_block.0."] = {"mid_block.resnets.0.", Kind::kResnet, 0, c.block_out_channels.back()};
    b["middle_block.1."] = {"mid_block.attentions.0.", Kind::kAttention, c.mid_transformer_layers};
    b["middle_block.2."] = {"mid_block.resnets.1.", Kind::kResnet, 0, c.block_out_channels.back()};
  }
  k = 0;
  for (size_t i = 0; i < n; ++i) {
    const std::string u = "up_blocks." + s(i) + ".";
    const bool attention = c.up_has_attention(i);
    const int64_t layers = c.up_layers(i);
    for (int64_t j = 0; j < layers; ++j, ++k) {
      b["output_blocks." + s(k) + ".0."] = {u + "resnets." + s(j) + ".", Kind::kResnet, 0,
                                            c.block_out_channels[n - 1 - i]};
      if (attention)
        b["output_blocks." + s(k) + ".1."] = {u + "attentions." + s(j) + ".", Kind::kAttention,
                                              c.up_transformer_layers[i]};
      if (j + 1 == layers && i + 1 < n)
        b["output_blocks." + s(k) + (attention ? ".2" : ".1") + ".conv."] = {u + "upsamplers.0.conv."};
    }
  }
  return b;
}

// ---- VAE ----------------------------------------------------------------------

constexpr std::pair<std::string_view, std::string_view> kVaeAttention[] = {
    {"norm.", "group_norm."}, {"q.", "to_q."}, {"k.", "to_k."}, {"v.", "to_v."}, {"proj_out.", "to_out.0."},
};

// A VAE resnet's inner name: the same but nin_shortcut.
std::optional<std::string> vae_resnet(std::string_view inner) {
  for (std::string_view layer : {"norm1.", "conv1.", "norm2.", "conv2."})
    if (inner.starts_with(layer) && is_param(inner.substr(layer.size()))) return std::string(inner);
  if (take(inner, "nin_shortcut.") && is_param(inner)) return "conv_shortcut." + std::string(inner);
  return std::nullopt;
}

}  // namespace

Expected<TensorSelection> unet_part(const SafetensorsHeader& header, const UNetConfig& c, std::string_view file) {
  Part part(header, kCheckpointParts[0], file);
  TP_ASSIGN_OR_RETURN(auto keys, part.keys());
  const auto blocks = unet_blocks(c);
  for (const auto& [rest, info] : keys) {
    // The longest block prefix of `rest`.
    const Block* block = nullptr;
    size_t block_length = 0;
    for (size_t dot = rest.find('.'); dot != std::string_view::npos; dot = rest.find('.', dot + 1))
      if (auto it = blocks.find(rest.substr(0, dot + 1)); it != blocks.end()) {
        block = &it->second;
        block_length = dot + 1;
      }
    if (!block) {
      part.unknown(*info);
      continue;
    }
    std::string_view inner = rest.substr(block_length);
    std::optional<std::string> name;
    switch (block->kind) {
      case Kind::kPlain:
        if (is_param(inner)) name = block->to + std::string(inner);
        break;
      case Kind::kResnet:
        for (const auto& [from, to] : kUnetResnet) {
          std::string_view p = inner;
          if (take(p, from) && is_param(p)) name = block->to + std::string(to) + std::string(p);
        }
        if (name && inner == "in_layers.2.weight") part.expect(*info, {block->channels, -1, -1, -1}, "the block's channels");
        break;
      case Kind::kAttention: {
        std::string_view p = inner;
        int64_t layer = 0;
        if (!take_index(p, "transformer_blocks.", layer) || layer < block->transformer_layers)
          name = block->to + std::string(inner);
        if (name && (inner.ends_with("attn2.to_k.weight") || inner.ends_with("attn2.to_v.weight")))
          part.expect(*info, {-1, c.cross_attention_dim}, "cross_attention_dim");
        break;
      }
    }
    if (!name) {
      part.unknown(*info);
      continue;
    }
    if (*name == "conv_in.weight")
      part.expect(*info, {c.block_out_channels.front(), c.in_channels, -1, -1}, "block_out_channels[0], in_channels");
    if (*name == "conv_out.weight")
      part.expect(*info, {c.out_channels, c.block_out_channels.front(), -1, -1}, "out_channels, block_out_channels[0]");
    if (*name == "add_embedding.linear_1.weight")
      part.expect(*info, {-1, c.projection_class_embeddings_input_dim}, "projection_class_embeddings_input_dim");
    part.pick(*info, std::move(*name));
  }
  return part.finish();
}

Expected<TensorSelection> clip_l_part(const SafetensorsHeader& header, const nn::ClipConfig& c, std::string_view file) {
  Part part(header, kCheckpointParts[1], file);
  TP_ASSIGN_OR_RETURN(auto keys, part.keys());
  for (const auto& [rest, info] : keys) {
    if (rest == "text_model.embeddings.position_ids") continue;  // a buffer transformers no longer saves
    std::string_view p = rest;
    int64_t layer = 0;
    if (!take(p, "text_model.") || (take_index(p, "encoder.layers.", layer) && layer >= c.layers)) {
      part.unknown(*info);
      continue;
    }
    if (rest == "text_model.embeddings.token_embedding.weight")
      part.expect(*info, {c.vocab_size, c.hidden_size}, "vocab_size, hidden_size");
    if (rest == "text_model.embeddings.position_embedding.weight")
      part.expect(*info, {c.max_positions, c.hidden_size}, "max_position_embeddings, hidden_size");
    part.pick(*info, std::string(rest));
  }
  return part.finish();
}

Expected<TensorSelection> clip_g_part(const SafetensorsHeader& header, const nn::ClipConfig& c, std::string_view file) {
  constexpr std::pair<std::string_view, std::string_view> kTop[] = {
      {"token_embedding.weight", "text_model.embeddings.token_embedding.weight"},
      {"positional_embedding", "text_model.embeddings.position_embedding.weight"},
      {"ln_final.weight", "text_model.final_layer_norm.weight"},
      {"ln_final.bias", "text_model.final_layer_norm.bias"},
  };
  constexpr std::pair<std::string_view, std::string_view> kLayer[] = {
      {"ln_1.", "layer_norm1."},           {"ln_2.", "layer_norm2."}, {"attn.out_proj.", "self_attn.out_proj."},
      {"mlp.c_fc.", "mlp.fc1."},           {"mlp.c_proj.", "mlp.fc2."},
  };
  const int64_t h = c.hidden_size;
  Part part(header, kCheckpointParts[2], file);
  TP_ASSIGN_OR_RETURN(auto keys, part.keys());
  for (const auto& [rest, info] : keys) {
    if (rest == "logit_scale") continue;  // CLIP's contrastive temperature: not a text-encoder weight
    if (rest == "text_projection") {
      // OpenCLIP computes x @ P with P (H, P); transformers' Linear holds P^T.
      part.expect(*info, {h, c.projection_dim}, "hidden_size, projection_dim");
      part.pick(*info, "text_projection.weight").transposed = true;
      continue;
    }
    bool done = false;
    for (const auto& [from, to] : kTop)
      if (rest == from) {
        if (from == "token_embedding.weight") part.expect(*info, {c.vocab_size, h}, "vocab_size, hidden_size");
        if (from == "positional_embedding")
          part.expect(*info, {c.max_positions, h}, "max_position_embeddings, hidden_size");
        part.pick(*info, std::string(to));
        done = true;
      }
    if (done) continue;
    std::string_view p = rest;
    int64_t layer = 0;
    if (!take_index(p, "transformer.resblocks.", layer) || layer >= c.layers) {
      part.unknown(*info);
      continue;
    }
    const std::string to = "text_model.encoder.layers." + std::to_string(layer) + ".";
    if (p == "attn.in_proj_weight" || p == "attn.in_proj_bias") {
      // The fused q, k, v projections: three row ranges of the same tensor.
      const bool weight = p == "attn.in_proj_weight";
      if (weight) part.expect(*info, {3 * h, h}, "3 x hidden_size rows of hidden_size");
      else part.expect(*info, {3 * h}, "3 x hidden_size");
      const char* names[3] = {"q_proj.", "k_proj.", "v_proj."};
      for (int64_t i = 0; i < 3; ++i) {
        TensorPick& rows = part.pick(*info, to + "self_attn." + names[i] + (weight ? "weight" : "bias"));
        rows.row_begin = i * h;
        rows.row_end = (i + 1) * h;
      }
      continue;
    }
    for (const auto& [from, into] : kLayer) {
      std::string_view q = p;
      if (take(q, from) && is_param(q)) {
        part.pick(*info, to + std::string(into) + std::string(q));
        done = true;
      }
    }
    if (!done) part.unknown(*info);
  }
  return part.finish();
}

Expected<TensorSelection> vae_part(const SafetensorsHeader& header, const nn::VaeConfig& c, std::string_view file) {
  const int64_t n = static_cast<int64_t>(c.block_out_channels.size());
  const int64_t top = c.block_out_channels.back();
  Part part(header, kCheckpointParts[3], file);
  TP_ASSIGN_OR_RETURN(auto keys, part.keys());
  for (const auto& [rest, info] : keys) {
    std::string_view p = rest;
    std::optional<std::string> name;
    std::vector<int64_t> shape;
    if (take(p, "quant_conv.") || take(p, "post_quant_conv.")) {
      if (is_param(p)) name = std::string(rest);
    } else if (std::string side = rest.starts_with("encoder.") ? "encoder" : "decoder"; take(p, side + ".")) {
      const bool encoder = side == "encoder";
      int64_t i = 0, j = 0;
      if (take(p, "conv_in.") || take(p, "conv_out.")) {
        if (is_param(p)) name = std::string(rest);
      } else if (take(p, "norm_out.")) {
        if (is_param(p)) name = side + ".conv_norm_out." + std::string(p);
      } else if (encoder && take_index(p, "down.", i) && i < n) {
        if (take_index(p, "block.", j) && j < c.layers_per_block) {
          if (auto r = vae_resnet(p)) name = "encoder.down_blocks." + std::to_string(i) + ".resnets." + std::to_string(j) + "." + *r;
        } else if (take(p, "downsample.conv.") && is_param(p) && i + 1 < n) {
          name = "encoder.down_blocks." + std::to_string(i) + ".downsamplers.0.conv." + std::string(p);
        }
      } else if (!encoder && take_index(p, "up.", i) && i < n) {
        const std::string up = "decoder.up_blocks." + std::to_string(n - 1 - i) + ".";  // numbered from the bottom
        if (take_index(p, "block.", j) && j < c.layers_per_block + 1) {
          if (auto r = vae_resnet(p)) name = up + "resnets." + std::to_string(j) + "." + *r;
        } else if (take(p, "upsample.conv.") && is_param(p) && i > 0) {
          name = up + "upsamplers.0.conv." + std::string(p);
        }
      } else if (take(p, "mid.block_1.") || take(p, "mid.block_2.")) {
        if (auto r = vae_resnet(p))
          name = side + ".mid_block.resnets." + (rest.find("mid.block_1.") != std::string_view::npos ? "0." : "1.") + *r;
      } else if (c.mid_attention && take(p, "mid.attn_1.")) {
        for (const auto& [from, to] : kVaeAttention) {
          std::string_view q = p;
          if (!take(q, from) || !is_param(q)) continue;
          name = side + ".mid_block.attentions.0." + std::string(to) + std::string(q);
          if (q == "weight" && from != "norm.") {
            // A 1x1 convolution (C, C, 1, 1) here, a linear (C, C) in diffusers: the same bytes.
            if (info->shape.size() == 4) part.expect(*info, {top, top, 1, 1}, "the VAE's last block_out_channels");
            else if (info->shape.size() == 3) part.expect(*info, {top, top, 1}, "the VAE's last block_out_channels");
            else part.expect(*info, {top, top}, "the VAE's last block_out_channels");
            shape = {top, top};
          }
        }
      }
    }
    if (!name) {
      part.unknown(*info);
      continue;
    }
    if (*name == "decoder.conv_in.weight")
      part.expect(*info, {top, c.latent_channels, -1, -1}, "block_out_channels[-1], latent_channels");
    part.pick(*info, std::move(*name)).shape = std::move(shape);
  }
  return part.finish();
}

Expected<std::map<std::string, std::shared_ptr<const TensorSelection>>> checkpoint_parts(
    const PipelineSpec& spec, const SafetensorsHeader& header, const std::string& file) {
  const auto& s = static_cast<const SdxlSpec&>(spec);
  std::map<std::string, std::shared_ptr<const TensorSelection>> out;
  TP_ASSIGN_OR_RETURN(TensorSelection unet, unet_part(header, s.unet, file));
  TP_ASSIGN_OR_RETURN(TensorSelection clip_l, clip_l_part(header, s.clip, file));
  TP_ASSIGN_OR_RETURN(TensorSelection clip_g, clip_g_part(header, s.clip2, file));
  TP_ASSIGN_OR_RETURN(TensorSelection vae, vae_part(header, s.vae, file));
  out["unet"] = std::make_shared<const TensorSelection>(std::move(unet));
  out["text_encoder"] = std::make_shared<const TensorSelection>(std::move(clip_l));
  out["text_encoder_2"] = std::make_shared<const TensorSelection>(std::move(clip_g));
  out["vae"] = std::make_shared<const TensorSelection>(std::move(vae));
  return out;
}

}  // namespace tp::sdxl
