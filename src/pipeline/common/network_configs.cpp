#include "pipeline/common/network_configs.h"

#include <cmath>

#include "pipeline/common/config_reader.h"

namespace tp::nn {

Expected<ClipConfig> parse_clip_config(const nlohmann::json& config, std::string_view origin) {
  TP_ASSIGN_OR_RETURN(ConfigReader r, ConfigReader::over(config, origin));
  ClipConfig c;
  TP_ASSIGN_OR_RETURN(c.vocab_size, r.positive("vocab_size"));
  TP_ASSIGN_OR_RETURN(c.hidden_size, r.positive("hidden_size"));
  TP_ASSIGN_OR_RETURN(c.intermediate_size, r.positive("intermediate_size"));
  TP_ASSIGN_OR_RETURN(c.heads, r.positive("num_attention_heads"));
  TP_ASSIGN_OR_RETURN(c.layers, r.positive("num_hidden_layers"));
  TP_ASSIGN_OR_RETURN(c.projection_dim, r.positive("projection_dim", 512));  // CLIPTextConfig's default
  TP_ASSIGN_OR_RETURN(c.max_positions, r.positive("max_position_embeddings", 77));
  TP_ASSIGN_OR_RETURN(c.eos_token_id, r.positive("eos_token_id", 2));
  TP_ASSIGN_OR_RETURN(c.act, r.string("hidden_act", "quick_gelu"));
  TP_ASSIGN_OR_RETURN(c.eps, r.number("layer_norm_eps", 1e-5));
  TP_TRY(r.one_of("hidden_act", c.act, {"quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh", "relu"}));
  if (c.hidden_size % c.heads != 0)
    return invalid_argument(r.where("hidden_size") + " is not a multiple of num_attention_heads");
  if (c.layers < 2)
    return invalid_argument(r.where("num_hidden_layers") + " must be at least 2 (SD3 uses the penultimate layer)");
  return c;
}

Expected<T5Config> parse_t5_config(const nlohmann::json& config, std::string_view origin) {
  TP_ASSIGN_OR_RETURN(ConfigReader r, ConfigReader::over(config, origin));
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
  TP_TRY(r.one_of("feed_forward_proj", ff, {"relu", "gated-gelu", "gated-relu", "gelu"}));
  c.gated = ff.starts_with("gated-");
  c.act = ff == "gated-gelu" ? "gelu_new" : ff.substr(c.gated ? 6 : 0);
  return c;
}

Expected<VaeConfig> parse_vae_config(const nlohmann::json& config, std::string_view origin) {
  TP_ASSIGN_OR_RETURN(ConfigReader r, ConfigReader::over(config, origin));
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
  TP_ASSIGN_OR_RETURN(c.force_upcast, r.boolean("force_upcast", true));
  for (const char* key : {"latents_mean", "latents_std"})
    if (config.contains(key) && !config[key].is_null())
      return unimplemented(r.where(key) + " is set; twistedpic decodes with scaling_factor and shift_factor only");
  if (c.scaling_factor == 0 || !std::isfinite(c.scaling_factor))
    return invalid_argument(r.where("scaling_factor") + " must be a non-zero number");
  for (int64_t ch : c.block_out_channels)
    if (ch == 0 || ch % c.groups != 0)
      return invalid_argument(r.where("block_out_channels") + ": every entry must be a positive multiple of "
                              "norm_num_groups (" + std::to_string(c.groups) + ")");
  if (c.block_out_channels.size() > 6) return invalid_argument(r.where("block_out_channels") + " has too many blocks");
  return c;
}

}  // namespace tp::nn
