// src/pipeline/sdxl/unet_config.cpp: UNet2DConditionModel's config.json read
// as diffusers reads it (its quirks: attention_head_dim is the number of heads,
// ints broadcast per block, up blocks mirror the down blocks), and refused, by
// field, where it is malformed (kInvalidArgument) or asks for an option that is
// not implemented (kUnimplemented).
#include "pipeline/sdxl/unet_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tp::sdxl {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// stabilityai/stable-diffusion-xl-base-1.0's unet/config.json.
json sdxl_base() {
  return json::parse(R"({
    "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.19.0.dev0", "act_fn": "silu",
    "addition_embed_type": "text_time", "addition_embed_type_num_heads": 64, "addition_time_embed_dim": 256,
    "attention_head_dim": [5, 10, 20], "block_out_channels": [320, 640, 1280], "center_input_sample": false,
    "class_embed_type": null, "class_embeddings_concat": false, "conv_in_kernel": 3, "conv_out_kernel": 3,
    "cross_attention_dim": 2048, "cross_attention_norm": null,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1, "dual_cross_attention": false, "encoder_hid_dim": null, "encoder_hid_dim_type": null,
    "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
    "mid_block_only_cross_attention": null, "mid_block_scale_factor": 1, "mid_block_type": "UNetMidBlock2DCrossAttn",
    "norm_eps": 1e-05, "norm_num_groups": 32, "num_attention_heads": null, "num_class_embeds": null,
    "only_cross_attention": false, "out_channels": 4, "projection_class_embeddings_input_dim": 2816,
    "resnet_out_scale_factor": 1.0, "resnet_skip_time_act": false, "resnet_time_scale_shift": "default",
    "sample_size": 128, "time_cond_proj_dim": null, "time_embedding_act_fn": null, "time_embedding_dim": null,
    "time_embedding_type": "positional", "timestep_post_act": null, "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"], "upcast_attention": null,
    "use_linear_projection": true})");
}

// The same with `key` set to `value`.
json with(const std::string& key, json value) {
  json j = sdxl_base();
  j[key] = std::move(value);
  return j;
}

void expect_refused(const json& config, ErrorCode code, const std::string& field) {
  auto c = parse_unet_config(config, "unet/config.json");
  ASSERT_FALSE(c) << field;
  EXPECT_EQ(c.error().code, code) << c.error().message;
  EXPECT_THAT(c.error().message, HasSubstr("unet/config.json: '" + field + "'"));
}

TEST(UNetConfigTest, ReadsSdxlBase) {
  auto c = parse_unet_config(sdxl_base(), "unet/config.json");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_THAT(c->block_out_channels, ElementsAre(320, 640, 1280));
  EXPECT_THAT(c->heads, ElementsAre(5, 10, 20));  // attention_head_dim, read as heads
  EXPECT_THAT(c->layers_per_block, ElementsAre(2, 2, 2));
  EXPECT_THAT(c->transformer_layers_per_block, ElementsAre(1, 2, 10));
  EXPECT_THAT(c->up_transformer_layers, ElementsAre(10, 2, 1));
  EXPECT_EQ(c->mid_transformer_layers, 10);
  EXPECT_TRUE(c->mid_block);
  EXPECT_EQ(c->up_layers(0), 3);
  EXPECT_EQ(c->up_heads(0), 20);
  EXPECT_FALSE(c->has_attention(0));
  EXPECT_TRUE(c->up_has_attention(0));
  EXPECT_EQ(c->cross_attention_dim, 2048);
  EXPECT_EQ(c->addition_time_embed_dim, 256);
  EXPECT_EQ(c->projection_class_embeddings_input_dim, 2816);
  EXPECT_EQ(c->time_embed_dim, 1280);
  EXPECT_EQ(c->norm_num_groups, 32);
  EXPECT_TRUE(c->use_linear_projection);
  EXPECT_EQ(c->sample_size, 128);
}

// stabilityai/stable-diffusion-xl-refiner-1.0's layout: four levels, DownBlock2D
// at both ends (the mid block takes the last level's heads), 5 time ids.
TEST(UNetConfigTest, ReadsTheRefinerLayout) {
  json j = sdxl_base();
  j["block_out_channels"] = {384, 768, 1536, 1536};
  j["attention_head_dim"] = {6, 12, 24, 24};
  j["down_block_types"] = {"DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"};
  j["up_block_types"] = {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"};
  j["transformer_layers_per_block"] = 4;
  j["cross_attention_dim"] = 1280;
  j["projection_class_embeddings_input_dim"] = 2560;
  auto c = parse_unet_config(j, "unet/config.json");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_THAT(c->transformer_layers_per_block, ElementsAre(4, 4, 4, 4));
  EXPECT_EQ(c->mid_transformer_layers, 4);
  EXPECT_EQ(c->up_heads(1), 24);
  EXPECT_EQ(c->time_embed_dim, 1536);
}

// diffusers' defaults for absent fields, and ints broadcast per block.
TEST(UNetConfigTest, DefaultsAndBroadcasts) {
  json j = {{"addition_embed_type", "text_time"},
            {"addition_time_embed_dim", 8},
            {"projection_class_embeddings_input_dim", 80},
            {"attention_head_dim", 8}};
  auto c = parse_unet_config(j, "unet/config.json");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_THAT(c->block_out_channels, ElementsAre(320, 640, 1280, 1280));
  EXPECT_THAT(c->heads, ElementsAre(8, 8, 8, 8));
  EXPECT_THAT(c->layers_per_block, ElementsAre(2, 2, 2, 2));
  EXPECT_EQ(c->cross_attention_dim, 1280);
  EXPECT_FALSE(c->use_linear_projection);
  EXPECT_EQ(c->down_block_types.back(), "DownBlock2D");

  json r = with("reverse_transformer_layers_per_block", {3, 2, 1});
  auto rev = parse_unet_config(r, "unet/config.json");
  ASSERT_TRUE(rev) << rev.error().message;
  EXPECT_THAT(rev->up_transformer_layers, ElementsAre(3, 2, 1));

  json no_mid = with("mid_block_type", nullptr);
  auto m = parse_unet_config(no_mid, "unet/config.json");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_FALSE(m->mid_block);
}

TEST(UNetConfigTest, RefusesMalformedFields) {
  expect_refused(with("num_attention_heads", {5, 10, 20}), ErrorCode::kInvalidArgument, "num_attention_heads");
  expect_refused(with("attention_head_dim", {5, 10}), ErrorCode::kInvalidArgument, "attention_head_dim");
  expect_refused(with("layers_per_block", "2"), ErrorCode::kInvalidArgument, "layers_per_block");
  expect_refused(with("transformer_layers_per_block", {1, 0, 10}), ErrorCode::kInvalidArgument,
                 "transformer_layers_per_block");
  expect_refused(with("up_block_types", {"CrossAttnUpBlock2D", "UpBlock2D"}), ErrorCode::kInvalidArgument,
                 "up_block_types");
  expect_refused(with("block_out_channels", {320, 640}), ErrorCode::kInvalidArgument, "down_block_types");
  expect_refused(with("norm_num_groups", 24), ErrorCode::kInvalidArgument, "norm_num_groups");
  expect_refused(with("cross_attention_dim", {2048, 2048, 1024}), ErrorCode::kInvalidArgument, "cross_attention_dim");
  expect_refused(with("addition_time_embed_dim", nullptr), ErrorCode::kInvalidArgument, "addition_time_embed_dim");
  expect_refused(with("attention_head_dim", {5, 10, 2000}), ErrorCode::kInvalidArgument, "attention_head_dim");
}

TEST(UNetConfigTest, RefusesUnimplementedOptionsByName) {
  expect_refused(with("addition_embed_type", nullptr), ErrorCode::kUnimplemented, "addition_embed_type");
  expect_refused(with("addition_embed_type", "text_image"), ErrorCode::kUnimplemented, "addition_embed_type");
  expect_refused(with("class_embed_type", "timestep"), ErrorCode::kUnimplemented, "class_embed_type");
  expect_refused(with("time_cond_proj_dim", 256), ErrorCode::kUnimplemented, "time_cond_proj_dim");
  expect_refused(with("encoder_hid_dim", 1024), ErrorCode::kUnimplemented, "encoder_hid_dim");
  expect_refused(with("only_cross_attention", {false, true, false}), ErrorCode::kUnimplemented, "only_cross_attention");
  expect_refused(with("dual_cross_attention", true), ErrorCode::kUnimplemented, "dual_cross_attention");
  expect_refused(with("resnet_time_scale_shift", "ada_group"), ErrorCode::kUnimplemented, "resnet_time_scale_shift");
  expect_refused(with("time_embedding_type", "fourier"), ErrorCode::kUnimplemented, "time_embedding_type");
  expect_refused(with("act_fn", "mish"), ErrorCode::kUnimplemented, "act_fn");
  expect_refused(with("attention_type", "gated"), ErrorCode::kUnimplemented, "attention_type");
  expect_refused(with("mid_block_type", "UNetMidBlock2DSimpleCrossAttn"), ErrorCode::kUnimplemented, "mid_block_type");
  expect_refused(with("down_block_types", {"DownBlock2D", "SimpleCrossAttnDownBlock2D", "CrossAttnDownBlock2D"}),
                 ErrorCode::kUnimplemented, "down_block_types");
  expect_refused(with("transformer_layers_per_block", json::parse("[[1, 1], [2, 2], [10, 10]]")),
                 ErrorCode::kUnimplemented, "transformer_layers_per_block");
  expect_refused(with("norm_num_groups", nullptr), ErrorCode::kUnimplemented, "norm_num_groups");
  expect_refused(with("conv_in_kernel", 4), ErrorCode::kUnimplemented, "conv_in_kernel");
}

}  // namespace
}  // namespace tp::sdxl
