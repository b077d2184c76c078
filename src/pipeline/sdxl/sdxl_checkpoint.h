// Private (pipeline): SDXL single-file checkpoints, the original Stability
// layout (sgm's checkpoints, as ComfyUI, stable-diffusion.cpp and diffusers'
// from_single_file read them), mapped to diffusers' names at the header level.
// Torch-free (twistedpic_pipeline_spec).
//
// One file holds the four networks, each under its prefix (kCheckpointParts).
// Each network stays its own registry model and reads only its part of the
// file, renamed (a TensorSelection: weights/tensor_selection.h), so that the
// networks, bound by diffusers' names, need no change:
//   UNet    model.diffusion_model.{time_embed, label_emb, input_blocks,
//           middle_block, output_blocks, out}: the block numbering follows the
//           UNet's config (layers per block, which levels have attention);
//           resnets' in_layers / out_layers / emb_layers / skip_connection
//           become norm1, conv1, norm2, conv2, time_emb_proj, conv_shortcut;
//           attention blocks keep their inner names.
//   CLIP-L  conditioner.embedders.0.transformer.text_model.*: transformers'
//           own names (position_ids, a buffer, is skipped).
//   CLIP-G  conditioner.embedders.1.model.*, OpenCLIP's layout: each
//           resblock's fused attn.in_proj_{weight,bias} (3H rows) becomes
//           q/k/v_proj, three row ranges of the same bytes; text_projection,
//           stored (H, P) as the transpose of text_projection.weight (P, H),
//           is read transposed (a strided view, no copy); logit_scale is skipped.
//   VAE     first_stage_model.{encoder, decoder, quant_conv, post_quant_conv}:
//           down.N.block.M / up.N.block.M (up numbered from the bottom) become
//           down_blocks / up_blocks; the mid-block attention's 1x1
//           convolutions (C, C, 1, 1) are read as linears (C, C).
// Keys outside the four prefixes (model_ema.*, denoiser.*) are not read.
//
// Errors name the file and the part: kNotFound for a part the file lacks
// ("has no first_stage_model.* (the VAE)"); kInvalidArgument for keys that
// map to no diffusers name under the folder's configs (a few, and how many)
// and for a tensor whose shape does not fit the config where the mapping
// depends on it (the fused in_proj, text_projection, the reshaped VAE
// attention, conv_in, the embeddings, cross-attention widths, resnet
// channels); the binder checks every other shape when the network binds.
//
// Threading: pure functions.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "pipeline/common/network_configs.h"
#include "pipeline/sdxl/unet_config.h"
#include "pipeline/spec.h"
#include "twistedpic/expected.h"
#include "weights/safetensors.h"
#include "weights/tensor_selection.h"

namespace tp::sdxl {

struct CheckpointPart {
  std::string_view component;  // the network's component: "unet"
  std::string_view prefix;     // its keys in the file: "model.diffusion_model."
  std::string_view what;       // for messages: "the UNet"
};

inline constexpr CheckpointPart kCheckpointParts[] = {
    {"unet", "model.diffusion_model.", "the UNet"},
    {"text_encoder", "conditioner.embedders.0.transformer.", "CLIP-L, the first text encoder"},
    {"text_encoder_2", "conditioner.embedders.1.model.", "OpenCLIP-G, the second text encoder"},
    {"vae", "first_stage_model.", "the VAE"},
};

// Each part on its own, under the names of the network's diffusers files
// (CLIP-L with transformers 4's "text_model." prefix, which the binder reads
// as well as the unprefixed one). `file` names the checkpoint in messages.
Expected<TensorSelection> unet_part(const SafetensorsHeader& header, const UNetConfig& config, std::string_view file);
Expected<TensorSelection> clip_l_part(const SafetensorsHeader& header, const nn::ClipConfig& config,
                                      std::string_view file);
Expected<TensorSelection> clip_g_part(const SafetensorsHeader& header, const nn::ClipConfig& config,
                                      std::string_view file);
Expected<TensorSelection> vae_part(const SafetensorsHeader& header, const nn::VaeConfig& config, std::string_view file);

// PipelineFamily::checkpoint for SDXL: the four parts, by component, from the
// configs of `spec` (an SdxlSpec).
Expected<std::map<std::string, std::shared_ptr<const TensorSelection>>> checkpoint_parts(
    const PipelineSpec& spec, const SafetensorsHeader& header, const std::string& file);

}  // namespace tp::sdxl
