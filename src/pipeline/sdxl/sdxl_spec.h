// Private (pipeline): what a Stable Diffusion XL pipeline needs from its
// diffusers folder, read once and checked to fit together. Torch-free.
//
// Threading: plain values; an SdxlSpec is immutable once described.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>

#include "pipeline/common/network_configs.h"
#include "pipeline/common/scheduler.h"
#include "pipeline/family.h"
#include "pipeline/sdxl/unet_config.h"
#include "pipeline/spec.h"
#include "text/tokenizer.h"

namespace tp::sdxl {

// StableDiffusionXLPipeline's defaults (diffusers): 50 steps, guidance 5,
// unet.sample_size x the VAE's scale factor (1024 x 1024 for SDXL 1.0).
inline constexpr GenerationDefaults kDefaults{50, 5.0};
inline constexpr int kClipLength = 77;

struct SdxlSpec final : PipelineSpec {
  nn::ClipConfig clip;   // CLIPTextModel (CLIP-L): its penultimate hidden state
  nn::ClipConfig clip2;  // CLIPTextModelWithProjection (CLIP-G): penultimate state and projected pooled output
  UNetConfig unet;
  nn::VaeConfig vae;
  // The folder's scheduler_config.json, from which a request's "scheduler"
  // option makes another class (as diffusers' from_config does), and the
  // folder's own scheduler, used when the request names none.
  nlohmann::json scheduler_config;
  std::string scheduler_origin;
  std::shared_ptr<const nn::Scheduler> scheduler;
  std::shared_ptr<const ClipTokenizer> tokenizer, tokenizer2;
  // model_index.json's force_zeros_for_empty_prompt (diffusers' default true):
  // with no negative prompt, the unconditional embeddings are zeros.
  bool force_zeros_for_empty_prompt = true;

  int size_multiple() const { return static_cast<int>(vae.scale_factor()); }
  int default_side() const { return static_cast<int>(unet.sample_size * vae.scale_factor()); }
  // The stock SDXL VAE overflows in fp16: with force_upcast, diffusers decodes in fp32.
  DType network_dtype(std::string_view component, DType configured) const override;
};

// The options of an SDXL request (GenerateRequest::options): "scheduler"
// (a scheduler class or a sampler name, nn::make_scheduler_named) and
// "guidance_rescale" (0 when absent; the std-ratio blend of diffusers'
// rescale_noise_cfg, applied only above 0).
extern const std::string_view kRequestOptions[2];

// The SDXL family: StableDiffusionXLPipeline folders (families.cpp registers it).
extern const PipelineFamily kFamily;

}  // namespace tp::sdxl
