#include "pipeline/sd3_model.h"

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <sstream>

namespace tp::sd3 {
namespace {

// Thrown while binding, caught by bind(): never escapes this file.
struct BindError {
  Error error;
};

std::string shape_string(at::IntArrayRef shape) {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << ']';
  return s.str();
}

// Takes a component's tensors by name and checks their shapes against the
// ones its config implies.
class Binder {
 public:
  Binder(const TensorMap& weights, std::string_view prefix) : weights_(weights), prefix_(prefix) {}

  bool has(const std::string& name) const { return weights_.count(prefix_ + name) != 0; }

  at::Tensor get(const std::string& name, std::vector<int64_t> shape) const {
    auto it = weights_.find(prefix_ + name);
    if (it == weights_.end())
      throw BindError{Error{ErrorCode::kInvalidArgument,
                            label() + "weight '" + name + "' is missing, but config.json implies it"}};
    if (it->second.sizes() != at::IntArrayRef(shape))
      throw BindError{Error{ErrorCode::kInvalidArgument, label() + "weight '" + name + "' has shape " +
                                                             shape_string(it->second.sizes()) +
                                                             ", but config.json implies " + shape_string(shape)}};
    return it->second;
  }

  Linear linear(const std::string& name, int64_t in, int64_t out, bool bias = true) const {
    return {get(name + ".weight", {out, in}), bias ? get(name + ".bias", {out}) : at::Tensor()};
  }
  Norm norm(const std::string& name, int64_t dim, double eps, bool bias = true) const {
    return {get(name + ".weight", {dim}), bias ? get(name + ".bias", {dim}) : at::Tensor(), eps};
  }
  Conv2d conv(const std::string& name, int64_t in, int64_t out, int64_t kernel, int64_t stride,
              int64_t padding) const {
    return {get(name + ".weight", {out, in, kernel, kernel}), get(name + ".bias", {out}), stride, padding};
  }

 private:
  std::string label() const { return prefix_.empty() ? std::string() : prefix_ + ": "; }
  const TensorMap& weights_;
  std::string prefix_;
};

template <class T, class F>
Expected<T> bind_checked(F&& f) {
  try {
    return f();
  } catch (const BindError& e) {
    return tl::unexpected(e.error);
  } catch (const std::exception& e) {
    return internal_error(std::string("binding weights: ") + e.what());
  }
}

// config.json fields, with errors naming the file and field.
class ConfigReader {
 public:
  static Expected<ConfigReader> parse(std::string_view text, std::string_view origin) {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return invalid_argument(std::string(origin) + ": not a JSON object");
    return ConfigReader(std::move(j), origin);
  }

  // A positive integer; `fallback` when absent (0: required).
  Expected<int64_t> positive(const char* key, int64_t fallback = 0) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      if (fallback > 0) return fallback;
      return invalid_argument(where(key) + " is missing");
    }
    if (!it->is_number_integer() || it->get<int64_t>() <= 0 || it->get<int64_t>() > (int64_t{1} << 24))
      return invalid_argument(where(key) + " must be a positive integer, not " + it->dump());
    return it->get<int64_t>();
  }
  Expected<double> number(const char* key, double fallback) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return fallback;
    if (!it->is_number()) return invalid_argument(where(key) + " must be a number, not " + it->dump());
    return it->get<double>();
  }
  Expected<bool> boolean(const char* key, bool fallback) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) return invalid_argument(where(key) + " must be true or false, not " + it->dump());
    return it->get<bool>();
  }
  Expected<std::string> string(const char* key, std::string fallback) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return fallback;
    if (!it->is_string()) return invalid_argument(where(key) + " must be a string, not " + it->dump());
    return it->get<std::string>();
  }
  // A list of non-negative integers.
  Expected<std::vector<int64_t>> ints(const char* key) const {
    std::vector<int64_t> out;
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return out;
    if (!it->is_array()) return invalid_argument(where(key) + " must be a list of integers, not " + it->dump());
    for (const auto& v : *it) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > (int64_t{1} << 24))
        return invalid_argument(where(key) + " must be a list of non-negative integers, not " + it->dump());
      out.push_back(v.get<int64_t>());
    }
    return out;
  }
  std::string where(const char* key) const { return origin_ + ": '" + key + "'"; }

 private:
  ConfigReader(nlohmann::json j, std::string_view origin) : j_(std::move(j)), origin_(origin) {}
  nlohmann::json j_;
  std::string origin_;
};

at::Tensor activation(const at::Tensor& x, const std::string& act) {
  if (act == "quick_gelu") return x * at::sigmoid(1.702 * x);
  if (act == "gelu") return at::gelu(x);
  if (act == "relu") return at::relu(x);
  return at::gelu(x, "tanh");  // gelu_new, gelu_pytorch_tanh
}

at::Tensor layer_norm(const at::Tensor& x, const Norm& n) {
  return at::layer_norm(x, {x.size(-1)}, n.weight, n.bias, n.eps);
}

at::Tensor layer_norm_plain(const at::Tensor& x, double eps = 1e-6) {
  return at::layer_norm(x, {x.size(-1)}, {}, {}, eps);
}

// RMS norm as diffusers' RMSNorm and T5's T5LayerNorm compute it: the
// variance in fp32, the result in the weight's dtype when that is half.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor var = x.to(at::kFloat).pow(2).mean(-1, /*keepdim=*/true);
  at::Tensor y = x * at::rsqrt(var + eps);
  if (weight.scalar_type() == at::kHalf || weight.scalar_type() == at::kBFloat16) y = y.to(weight.scalar_type());
  return weight * y;
}

at::Tensor group_norm(const at::Tensor& x, const Norm& n, int64_t groups) {
  return at::group_norm(x, groups, n.weight, n.bias, n.eps);
}

// (B, L, H*D) -> (B, H, L, D)
at::Tensor split_heads(const at::Tensor& x, int64_t heads) {
  return x.view({x.size(0), x.size(1), heads, -1}).transpose(1, 2);
}
// (B, H, L, D) -> (B, L, H*D)
at::Tensor merge_heads(const at::Tensor& x) {
  return x.transpose(1, 2).reshape({x.size(0), x.size(2), x.size(1) * x.size(3)});
}

// Fails unless `v` is among the supported values.
Status check_one_of(const ConfigReader& r, const char* key, const std::string& v,
                    std::initializer_list<const char*> allowed) {
  for (const char* a : allowed)
    if (v == a) return {};
  std::string list;
  for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + "'" + a + "'";
  return unimplemented(r.where(key) + " is '" + v + "'; supported: " + list);
}

}  // namespace

at::Tensor Linear::operator()(const at::Tensor& x) const { return at::linear(x, weight, bias); }

at::Tensor Conv2d::operator()(const at::Tensor& x) const {
  return at::conv2d(x, weight, bias, {stride, stride}, {padding, padding});
}

// ---------------------------------------------------------------------------
// CLIP

Expected<ClipConfig> parse_clip_config(std::string_view json, std::string_view origin) {
  TP_ASSIGN_OR_RETURN(ConfigReader r, ConfigReader::parse(json, origin));
  ClipConfig c;
  TP_ASSIGN_OR_RETURN(c.vocab_size, r.positive("vocab_size"));
  TP_ASSIGN_OR_RETURN(c.hidden_size, r.positive("hidden_size"));
  TP_ASSIGN_OR_RETURN(c.intermediate_size, r.positive("intermediate_size"));
  TP_ASSIGN_OR_RETURN(c.heads, r.positive("num_attention_heads"));
  TP_ASSIGN_OR_RETURN(c.layers, r.positive("num_hidden_layers"));
  TP_ASSIGN_OR_RETURN(c.projection_dim, r.positive("projection_dim"));
  TP_ASSIGN_OR_RETURN(c.max_positions, r.positive("max_position_embeddings", 77));
  TP_ASSIGN_OR_RETURN(c.eos_token_id, r.positive("eos_token_id", 2));
  TP_ASSIGN_OR_RETURN(c.act, r.string("hidden_act", "quick_gelu"));
  TP_ASSIGN_OR_RETURN(c.eps, r.number("layer_norm_eps", 1e-5));
  TP_TRY(check_one_of(r, "hidden_act", c.act, {"quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh", "relu"}));
  if (c.hidden_size % c.heads != 0)
    return invalid_argument(r.where("hidden_size") + " is not a multiple of num_attention_heads");
  if (c.layers < 2) return invalid_argument(r.where("num_hidden_layers") + " must be at least 2 (SD3 uses the penultimate layer)");
  return c;
}

Expected<ClipTextEncoder> ClipTextEncoder::bind(const ClipConfig& c, const TensorMap& weights,
                                                std::string_view prefix) {
  return bind_checked<ClipTextEncoder>([&] {
    Binder b(weights, prefix);
    ClipTextEncoder e;
    e.config_ = c;
    const int64_t h = c.hidden_size;
    e.token_embedding_ = b.get("text_model.embeddings.token_embedding.weight", {c.vocab_size, h});
    e.position_embedding_ = b.get("text_model.embeddings.position_embedding.weight", {c.max_positions, h});
    for (int64_t i = 0; i < c.layers; ++i) {
      const std::string p = "text_model.encoder.layers." + std::to_string(i) + ".";
      e.layers_.push_back({b.norm(p + "layer_norm1", h, c.eps), b.norm(p + "layer_norm2", h, c.eps),
                           b.linear(p + "self_attn.q_proj", h, h), b.linear(p + "self_attn.k_proj", h, h),
                           b.linear(p + "self_attn.v_proj", h, h), b.linear(p + "self_attn.out_proj", h, h),
                           b.linear(p + "mlp.fc1", h, c.intermediate_size),
                           b.linear(p + "mlp.fc2", c.intermediate_size, h)});
    }
    e.final_norm_ = b.norm("text_model.final_layer_norm", h, c.eps);
    e.projection_ = b.get("text_projection.weight", {c.projection_dim, h});
    return e;
  });
}

ClipOutput ClipTextEncoder::forward(const at::Tensor& ids) const {
  const int64_t length = ids.size(1);
  at::Tensor x = at::embedding(token_embedding_, ids) + position_embedding_.slice(0, 0, length);
  at::Tensor penultimate;
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (i + 1 == layers_.size()) penultimate = x;
    const Layer& l = layers_[i];
    at::Tensor h = layer_norm(x, l.ln1);
    at::Tensor a = at::scaled_dot_product_attention(split_heads(l.q(h), config_.heads),
                                                    split_heads(l.k(h), config_.heads),
                                                    split_heads(l.v(h), config_.heads), {}, 0.0, /*is_causal=*/true);
    x = x + l.out(merge_heads(a));
    x = x + l.fc2(activation(l.fc1(layer_norm(x, l.ln2)), config_.act));
  }
  at::Tensor last = layer_norm(x, final_norm_);
  // The EOS position: transformers' legacy rule (eos_token_id == 2) takes the
  // largest id, the current one the first EOS.
  at::Tensor eos = config_.eos_token_id == 2 ? ids.to(at::kInt).argmax(-1)
                                             : (ids.to(at::kInt) == config_.eos_token_id).to(at::kInt).argmax(-1);
  at::Tensor pooled = last.index({at::arange(ids.size(0), ids.options().dtype(at::kLong)), eos});
  return {penultimate, at::linear(pooled, projection_)};
}

// ---------------------------------------------------------------------------
// T5

Expected<T5Config> parse_t5_config(std::string_view json, std::string_view origin) {
  TP_ASSIGN_OR_RETURN(ConfigReader r, ConfigReader::parse(json, origin));
  T5Config c;
  TP_ASSIGN_OR_RETURN(c.vocab_size, r.positive("vocab_size"));
  TP_ASSIGN_OR_RETURN(c.d_model, r.positive("d_model"));
  TP_ASSIGN_OR_RETURN(c.d_kv, r.positive("d_kv"));
  TP_ASSIGN_OR_RETURN(c.d_ff, r.positive("d_ff"));
  TP_ASSIGN_OR_RETURN(c.layers, r.positive("num_layers"));
  TP_ASSIGN_OR_RETURN(c.heads, r.positive("num_heads"));
  TP_ASSIGN_OR_RETURN(c.buckets, r.positive("relative_attention_num_buckets", 32));
  TP_ASSIGN_OR_RETURN(c.max_distance, r.positive("relative_attention_max_distance", 128));
  TP_ASSIGN_OR_RETURN(c.eps, r.number("layer_norm_epsilon", 1e-6));
  TP_ASSIGN_OR_RETURN(std::string ff, r.string("feed_forward_proj", "relu"));
  TP_TRY(check_one_of(r, "feed_forward_proj", ff, {"relu", "gated-gelu", "gated-relu", "gelu"}));
  c.gated = ff.starts_with("gated-");
  c.act = ff == "gated-gelu" ? "gelu_new" : ff.substr(c.gated ? 6 : 0);
  return c;
}

Expected<T5Encoder> T5Encoder::bind(const T5Config& c, const TensorMap& weights, std::string_view prefix) {
  return bind_checked<T5Encoder>([&] {
    Binder b(weights, prefix);
    T5Encoder e;
    e.config_ = c;
    const int64_t inner = c.heads * c.d_kv;
    // The tied embedding is saved under either name.
    e.embedding_ = b.has("shared.weight") ? b.get("shared.weight", {c.vocab_size, c.d_model})
                                          : b.get("encoder.embed_tokens.weight", {c.vocab_size, c.d_model});
    e.relative_bias_ = b.get("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                             {c.buckets, c.heads});
    for (int64_t i = 0; i < c.layers; ++i) {
      const std::string p = "encoder.block." + std::to_string(i) + ".layer.";
      Layer l;
      l.ln1 = b.get(p + "0.layer_norm.weight", {c.d_model});
      l.q = b.linear(p + "0.SelfAttention.q", c.d_model, inner, false);
      l.k = b.linear(p + "0.SelfAttention.k", c.d_model, inner, false);
      l.v = b.linear(p + "0.SelfAttention.v", c.d_model, inner, false);
      l.o = b.linear(p + "0.SelfAttention.o", inner, c.d_model, false);
      l.ln2 = b.get(p + "1.layer_norm.weight", {c.d_model});
      if (c.gated) {
        l.wi0 = b.linear(p + "1.DenseReluDense.wi_0", c.d_model, c.d_ff, false);
        l.wi1 = b.linear(p + "1.DenseReluDense.wi_1", c.d_model, c.d_ff, false);
      } else {
        l.wi0 = b.linear(p + "1.DenseReluDense.wi", c.d_model, c.d_ff, false);
      }
      l.wo = b.linear(p + "1.DenseReluDense.wo", c.d_ff, c.d_model, false);
      e.layers_.push_back(std::move(l));
    }
    e.final_norm_ = b.get("encoder.final_layer_norm.weight", {c.d_model});
    return e;
  });
}

// (1, heads, L, L): T5's bidirectional relative position buckets, looked up.
at::Tensor T5Encoder::position_bias(int64_t length) const {
  auto opts = at::TensorOptions().dtype(at::kLong).device(relative_bias_.device());
  at::Tensor pos = at::arange(length, opts);
  at::Tensor relative = pos.unsqueeze(0) - pos.unsqueeze(1);  // key - query
  const int64_t half = config_.buckets / 2;
  at::Tensor bucket = (relative > 0).to(at::kLong) * half;
  relative = relative.abs();
  const int64_t max_exact = half / 2;
  at::Tensor large = max_exact + (at::log(relative.to(at::kFloat) / max_exact) /
                                  std::log(static_cast<double>(config_.max_distance) / max_exact) *
                                  (half - max_exact))
                                     .to(at::kLong);
  large = at::minimum(large, at::full_like(large, half - 1));
  bucket = bucket + at::where(relative < max_exact, relative, large);
  return at::embedding(relative_bias_, bucket).permute({2, 0, 1}).unsqueeze(0);
}

at::Tensor T5Encoder::forward(const at::Tensor& ids) const {
  at::Tensor x = at::embedding(embedding_, ids);
  const at::Tensor bias = position_bias(ids.size(1)).to(x.scalar_type());
  // T5 keeps fp16 activations finite by clamping them, as transformers does.
  auto clamp_fp16 = [](at::Tensor t) {
    if (t.scalar_type() != at::kHalf) return t;
    const double max = 65504.0;
    const double v = at::isinf(t).any().item<bool>() ? max - 1000 : max;
    return at::clamp(t, -v, v);
  };
  for (const Layer& l : layers_) {
    at::Tensor h = rms_norm(x, l.ln1, config_.eps);
    // T5 attention has no 1/sqrt(d) scaling: scale 1 undoes SDPA's.
    at::Tensor a = at::scaled_dot_product_attention(split_heads(l.q(h), config_.heads),
                                                    split_heads(l.k(h), config_.heads),
                                                    split_heads(l.v(h), config_.heads), bias, 0.0, false, 1.0);
    x = clamp_fp16(x + l.o(merge_heads(a)));
    h = rms_norm(x, l.ln2, config_.eps);
    at::Tensor f = activation(l.wi0(h), config_.act);
    if (l.wi1.weight.defined()) f = f * l.wi1(h);
    x = clamp_fp16(x + l.wo(f));
  }
  return rms_norm(x, final_norm_, config_.eps);
}

// ---------------------------------------------------------------------------
// Transformer

Expected<TransformerConfig> parse_transformer_config(std::string_view json, std::string_view origin) {
  TP_ASSIGN_OR_RETURN(ConfigReader r, ConfigReader::parse(json, origin));
  TransformerConfig c;
  TP_ASSIGN_OR_RETURN(c.sample_size, r.positive("sample_size", 128));
  TP_ASSIGN_OR_RETURN(c.patch_size, r.positive("patch_size", 2));
  TP_ASSIGN_OR_RETURN(c.in_channels, r.positive("in_channels", 16));
  TP_ASSIGN_OR_RETURN(c.out_channels, r.positive("out_channels", c.in_channels));
  TP_ASSIGN_OR_RETURN(c.layers, r.positive("num_layers", 18));
  TP_ASSIGN_OR_RETURN(c.head_dim, r.positive("attention_head_dim", 64));
  TP_ASSIGN_OR_RETURN(c.heads, r.positive("num_attention_heads", 18));
  TP_ASSIGN_OR_RETURN(c.joint_attention_dim, r.positive("joint_attention_dim", 4096));
  TP_ASSIGN_OR_RETURN(c.caption_projection_dim, r.positive("caption_projection_dim", 1152));
  TP_ASSIGN_OR_RETURN(c.pooled_projection_dim, r.positive("pooled_projection_dim", 2048));
  TP_ASSIGN_OR_RETURN(c.pos_embed_max_size, r.positive("pos_embed_max_size", 96));
  TP_ASSIGN_OR_RETURN(c.dual_attention_layers, r.ints("dual_attention_layers"));
  TP_ASSIGN_OR_RETURN(c.qk_norm, r.string("qk_norm", ""));
  TP_TRY(check_one_of(r, "qk_norm", c.qk_norm, {"", "rms_norm"}));
  if (c.caption_projection_dim != c.inner_dim())
    return invalid_argument(r.where("caption_projection_dim") + " must equal num_attention_heads * attention_head_dim (" +
                            std::to_string(c.inner_dim()) + ") for joint attention");
  for (int64_t i : c.dual_attention_layers)
    if (i >= c.layers) return invalid_argument(r.where("dual_attention_layers") + " names layer " + std::to_string(i) +
                                               " of " + std::to_string(c.layers));
  return c;
}

Expected<SD3Transformer> SD3Transformer::bind(const TransformerConfig& c, const TensorMap& weights,
                                              std::string_view prefix) {
  return bind_checked<SD3Transformer>([&] {
    Binder b(weights, prefix);
    SD3Transformer t;
    t.config_ = c;
    const int64_t d = c.inner_dim(), p = c.patch_size;
    t.patch_embed_ = b.conv("pos_embed.proj", c.in_channels, d, p, p, 0);
    t.pos_embed_ = b.get("pos_embed.pos_embed", {1, c.pos_embed_max_size * c.pos_embed_max_size, d});
    t.time1_ = b.linear("time_text_embed.timestep_embedder.linear_1", 256, d);
    t.time2_ = b.linear("time_text_embed.timestep_embedder.linear_2", d, d);
    t.text1_ = b.linear("time_text_embed.text_embedder.linear_1", c.pooled_projection_dim, d);
    t.text2_ = b.linear("time_text_embed.text_embedder.linear_2", d, d);
    t.context_embedder_ = b.linear("context_embedder", c.joint_attention_dim, c.caption_projection_dim);
    const bool qk = c.qk_norm == "rms_norm";
    auto attention = [&](const std::string& n, bool joint, bool context_out) {
      Attention a;
      a.q = b.linear(n + ".to_q", d, d);
      a.k = b.linear(n + ".to_k", d, d);
      a.v = b.linear(n + ".to_v", d, d);
      a.out = b.linear(n + ".to_out.0", d, d);
      if (qk) {
        a.norm_q = b.get(n + ".norm_q.weight", {c.head_dim});
        a.norm_k = b.get(n + ".norm_k.weight", {c.head_dim});
      }
      if (joint) {
        a.add_q = b.linear(n + ".add_q_proj", d, d);
        a.add_k = b.linear(n + ".add_k_proj", d, d);
        a.add_v = b.linear(n + ".add_v_proj", d, d);
        if (context_out) a.add_out = b.linear(n + ".to_add_out", d, d);
        if (qk) {
          a.norm_added_q = b.get(n + ".norm_added_q.weight", {c.head_dim});
          a.norm_added_k = b.get(n + ".norm_added_k.weight", {c.head_dim});
        }
      }
      return a;
    };
    for (int64_t i = 0; i < c.layers; ++i) {
      const std::string n = "transformer_blocks." + std::to_string(i) + ".";
      Block k;
      k.context_pre_only = i == c.layers - 1;
      k.dual = std::find(c.dual_attention_layers.begin(), c.dual_attention_layers.end(), i) !=
               c.dual_attention_layers.end();
      k.norm1 = b.linear(n + "norm1.linear", d, (k.dual ? 9 : 6) * d);
      k.norm1_context = b.linear(n + "norm1_context.linear", d, (k.context_pre_only ? 2 : 6) * d);
      k.attn = attention(n + "attn", true, !k.context_pre_only);
      if (k.dual) k.attn2 = attention(n + "attn2", false, false);
      k.ff1 = b.linear(n + "ff.net.0.proj", d, 4 * d);
      k.ff2 = b.linear(n + "ff.net.2", 4 * d, d);
      if (!k.context_pre_only) {
        k.ff_context1 = b.linear(n + "ff_context.net.0.proj", d, 4 * d);
        k.ff_context2 = b.linear(n + "ff_context.net.2", 4 * d, d);
      }
      t.blocks_.push_back(std::move(k));
    }
    t.norm_out_ = b.linear("norm_out.linear", d, 2 * d);
    t.proj_out_ = b.linear("proj_out", d, p * p * c.out_channels);
    return t;
  });
}

// Self-attention over x, joined with the context stream when `context` is
// given (its result goes to *context_out, projected unless context_pre_only).
at::Tensor SD3Transformer::attention(const Attention& a, const at::Tensor& x, const at::Tensor* context,
                                     at::Tensor* context_out) const {
  const int64_t heads = config_.heads;
  at::Tensor q = split_heads(a.q(x), heads), k = split_heads(a.k(x), heads), v = split_heads(a.v(x), heads);
  if (a.norm_q.defined()) {
    q = rms_norm(q, a.norm_q, 1e-6);
    k = rms_norm(k, a.norm_k, 1e-6);
  }
  if (context) {
    at::Tensor cq = split_heads(a.add_q(*context), heads), ck = split_heads(a.add_k(*context), heads);
    at::Tensor cv = split_heads(a.add_v(*context), heads);
    if (a.norm_added_q.defined()) {
      cq = rms_norm(cq, a.norm_added_q, 1e-6);
      ck = rms_norm(ck, a.norm_added_k, 1e-6);
    }
    q = at::cat({q, cq}, 2);
    k = at::cat({k, ck}, 2);
    v = at::cat({v, cv}, 2);
  }
  at::Tensor o = merge_heads(at::scaled_dot_product_attention(q, k, v)).to(q.scalar_type());
  if (context) {
    const int64_t n = x.size(1);
    at::Tensor c = o.slice(1, n);
    o = o.slice(1, 0, n);
    if (a.add_out.weight.defined()) *context_out = a.add_out(c);
  }
  return a.out(o);
}

at::Tensor SD3Transformer::forward(const at::Tensor& latents, const at::Tensor& timestep, const at::Tensor& context,
                                   const at::Tensor& pooled) const {
  const TransformerConfig& c = config_;
  const int64_t batch = latents.size(0), p = c.patch_size;
  const int64_t h = latents.size(2) / p, w = latents.size(3) / p;

  // Patches plus the centre crop of the position embedding.
  at::Tensor x = patch_embed_(latents).flatten(2).transpose(1, 2);
  const int64_t m = c.pos_embed_max_size, top = (m - h) / 2, left = (m - w) / 2;
  at::Tensor pos = pos_embed_.reshape({1, m, m, -1}).slice(1, top, top + h).slice(2, left, left + w);
  x = (x + pos.reshape({1, h * w, -1})).to(x.scalar_type());

  // Timestep (sinusoidal, cos first) plus pooled text.
  const int64_t half = 128;
  auto fopts = at::TensorOptions().dtype(at::kFloat).device(latents.device());
  at::Tensor freqs = at::exp(at::arange(half, fopts) * (-std::log(10000.0) / half));
  at::Tensor args = timestep.to(at::kFloat).unsqueeze(1) * freqs.unsqueeze(0);
  at::Tensor t_proj = at::cat({at::cos(args), at::sin(args)}, -1).to(pooled.scalar_type());
  at::Tensor temb = time2_(at::silu(time1_(t_proj))) + text2_(at::silu(text1_(pooled)));
  at::Tensor silu_temb = at::silu(temb);
  at::Tensor ctx = context_embedder_(context);

  for (const Block& k : blocks_) {
    std::vector<at::Tensor> m1 = k.norm1(silu_temb).chunk(k.dual ? 9 : 6, 1);
    auto mod = [](const at::Tensor& v, const at::Tensor& scale, const at::Tensor& shift) {
      return v * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1);
    };
    at::Tensor nx0 = layer_norm_plain(x);
    at::Tensor nx = mod(nx0, m1[1], m1[0]);
    at::Tensor nctx, context_attn;
    std::vector<at::Tensor> mc;
    if (k.context_pre_only) {
      std::vector<at::Tensor> s = k.norm1_context(silu_temb.to(ctx.scalar_type())).chunk(2, 1);
      nctx = mod(layer_norm_plain(ctx), s[0], s[1]);  // AdaLayerNormContinuous: scale first
    } else {
      mc = k.norm1_context(silu_temb).chunk(6, 1);
      nctx = mod(layer_norm_plain(ctx), mc[1], mc[0]);
    }
    at::Tensor attn = attention(k.attn, nx, &nctx, &context_attn);
    x = x + m1[2].unsqueeze(1) * attn;
    if (k.dual) x = x + m1[8].unsqueeze(1) * attention(k.attn2, mod(nx0, m1[7], m1[6]), nullptr, nullptr);
    at::Tensor ff = k.ff2(at::gelu(k.ff1(mod(layer_norm_plain(x), m1[4], m1[3])), "tanh"));
    x = x + m1[5].unsqueeze(1) * ff;
    if (!k.context_pre_only) {
      ctx = ctx + mc[2].unsqueeze(1) * context_attn;
      at::Tensor cff = k.ff_context2(at::gelu(k.ff_context1(mod(layer_norm_plain(ctx), mc[4], mc[3])), "tanh"));
      ctx = ctx + mc[5].unsqueeze(1) * cff;
    }
  }

  std::vector<at::Tensor> s = norm_out_(silu_temb.to(x.scalar_type())).chunk(2, 1);
  x = proj_out_(layer_norm_plain(x) * (1 + s[0].unsqueeze(1)) + s[1].unsqueeze(1));
  // Unpatchify: (B, h*w, p*p*C) -> (B, C, h*p, w*p).
  x = x.reshape({batch, h, w, p, p, c.out_channels}).permute({0, 5, 1, 3, 2, 4});
  return x.reshape({batch, c.out_channels, h * p, w * p});
}

// ---------------------------------------------------------------------------
// VAE decoder

Expected<VaeConfig> parse_vae_config(std::string_view json, std::string_view origin) {
  TP_ASSIGN_OR_RETURN(ConfigReader r, ConfigReader::parse(json, origin));
  VaeConfig c;
  TP_ASSIGN_OR_RETURN(c.in_channels, r.positive("in_channels", 3));
  TP_ASSIGN_OR_RETURN(c.out_channels, r.positive("out_channels", 3));
  TP_ASSIGN_OR_RETURN(c.latent_channels, r.positive("latent_channels", 4));
  TP_ASSIGN_OR_RETURN(c.layers_per_block, r.positive("layers_per_block", 1));
  TP_ASSIGN_OR_RETURN(c.groups, r.positive("norm_num_groups", 32));
  TP_ASSIGN_OR_RETURN(c.block_out_channels, r.ints("block_out_channels"));
  if (c.block_out_channels.empty()) c.block_out_channels = {64};
  TP_ASSIGN_OR_RETURN(c.scaling_factor, r.number("scaling_factor", 0.18215));
  TP_ASSIGN_OR_RETURN(c.shift_factor, r.number("shift_factor", 0.0));
  TP_ASSIGN_OR_RETURN(c.post_quant_conv, r.boolean("use_post_quant_conv", true));
  TP_ASSIGN_OR_RETURN(c.mid_attention, r.boolean("mid_block_add_attention", true));
  if (c.scaling_factor == 0 || !std::isfinite(c.scaling_factor))
    return invalid_argument(r.where("scaling_factor") + " must be a non-zero number");
  for (int64_t ch : c.block_out_channels)
    if (ch == 0 || ch % c.groups != 0)
      return invalid_argument(r.where("block_out_channels") + ": every entry must be a positive multiple of "
                              "norm_num_groups (" + std::to_string(c.groups) + ")");
  if (c.block_out_channels.size() > 6) return invalid_argument(r.where("block_out_channels") + " has too many blocks");
  return c;
}

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
    at::Tensor a = at::scaled_dot_product_attention(mid_q_(t).unsqueeze(1), mid_k_(t).unsqueeze(1),
                                                    mid_v_(t).unsqueeze(1));
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

}  // namespace tp::sd3
