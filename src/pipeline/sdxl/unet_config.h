// Private (pipeline): UNet2DConditionModel's config.json as SDXL configures
// it, read and checked. Torch-free (twistedpic_pipeline_spec).
//
// Read as diffusers reads it: absent fields take UNet2DConditionModel's
// defaults; attention_head_dim is the number of heads (num_attention_heads
// must be null, as diffusers requires); an int broadcasts to every block; up
// block i mirrors down block n-1-i with one resnet more. Every option of
// UNet2DConditionModel is either implemented or refused, by name.
//
// Threading: plain values and a pure function.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "twistedpic/expected.h"

namespace tp::sdxl {

struct UNetConfig {
  int64_t in_channels = 4, out_channels = 4;
  int64_t sample_size = 128;  // latent pixels of the default image side
  std::vector<int64_t> block_out_channels;
  std::vector<std::string> down_block_types, up_block_types;
  std::vector<int64_t> layers_per_block;              // per down block (diffusers accepts an int)
  std::vector<int64_t> transformer_layers_per_block;  // per down block
  std::vector<int64_t> heads;                         // per down block: attention_head_dim, as diffusers reads it
  int64_t cross_attention_dim = 2048;
  int64_t addition_time_embed_dim = 256;
  int64_t projection_class_embeddings_input_dim = 2816;  // 6 * addition_time_embed_dim + the pooled text width

  // What the network needs beyond the spec's fields (sdxl_unet.cpp).
  // Per up block (reverse_transformer_layers_per_block, or the down blocks' list reversed).
  std::vector<int64_t> up_transformer_layers;
  bool mid_block = true;               // "UNetMidBlock2DCrossAttn"; false for a null mid_block_type
  int64_t mid_transformer_layers = 1;  // transformer_layers_per_block of the last down block
  int64_t norm_num_groups = 32;
  double norm_eps = 1e-5;
  bool use_linear_projection = false;  // Linear proj_in/proj_out (SDXL); 1x1 convolutions otherwise
  bool flip_sin_to_cos = true;
  double freq_shift = 0;
  int64_t time_embed_dim = 1280;  // time_embedding_dim, or 4 * block_out_channels[0]
  int64_t conv_in_kernel = 3, conv_out_kernel = 3;
  int64_t downsample_padding = 1;
  double mid_block_scale_factor = 1;  // the mid block's resnets divide their output by it
  bool scale_shift = false;           // resnet_time_scale_shift "scale_shift" (else "default")
  bool center_input_sample = false;
  bool has_attention(size_t down_block) const { return down_block_types[down_block] == "CrossAttnDownBlock2D"; }
  bool up_has_attention(size_t up_block) const { return up_block_types[up_block] == "CrossAttnUpBlock2D"; }
  // Resnets of up block i: layers_per_block[n - 1 - i] + 1.
  int64_t up_layers(size_t up_block) const { return layers_per_block[layers_per_block.size() - 1 - up_block] + 1; }
  // Heads of up block i (the down blocks' list reversed).
  int64_t up_heads(size_t up_block) const { return heads[heads.size() - 1 - up_block]; }
};

// kInvalidArgument for malformed or inconsistent values, kUnimplemented for a
// valid diffusers option not implemented here; both name `origin` and the field.
Expected<UNetConfig> parse_unet_config(const nlohmann::json& config, std::string_view origin);

}  // namespace tp::sdxl
