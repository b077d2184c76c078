#include "pipeline/sdxl/sdxl_spec.h"

#include "pipeline/common/config_reader.h"
#include "pipeline/common/discrete_schedulers.h"
#include "pipeline/common/folder_reader.h"
#include "pipeline/sdxl/sdxl_checkpoint.h"
#include "util/json.h"

namespace tp::sdxl {
namespace {

using nn::load_tokenizer;
using nn::parse_component;

constexpr std::string_view kFolderClasses[] = {"StableDiffusionXLPipeline"};

// SDXL's networks, in load order, with the classes implemented for them.
constexpr NetworkSpec kNetworks[] = {
    {"text_encoder", "CLIPTextModel", true, true, false},
    {"text_encoder_2", "CLIPTextModelWithProjection", true, true, false},
    {"unet", "UNet2DConditionModel", true, false, true},
    {"vae", "AutoencoderKL", true, false, false},
};

// The add_time_ids: original size, crop top-left and target size, two numbers each.
constexpr int64_t kTimeIds = 6;

// The networks must fit together.
Status check_fit(const SdxlSpec& s, const std::string& where) {
  const UNetConfig& u = s.unet;
  const std::string folder = s.root.string();
  if (s.clip.hidden_size + s.clip2.hidden_size != u.cross_attention_dim)
    return invalid_argument(where + ": the text encoders' hidden sizes (" + std::to_string(s.clip.hidden_size) +
                            " + " + std::to_string(s.clip2.hidden_size) +
                            ") do not add up to the UNet's cross_attention_dim (" +
                            std::to_string(u.cross_attention_dim) + ") in " + folder);
  const int64_t added = kTimeIds * u.addition_time_embed_dim + s.clip2.projection_dim;
  if (added != u.projection_class_embeddings_input_dim)
    return invalid_argument(where + ": the UNet's projection_class_embeddings_input_dim (" +
                            std::to_string(u.projection_class_embeddings_input_dim) + ") is not 6 x " +
                            "addition_time_embed_dim (" + std::to_string(u.addition_time_embed_dim) +
                            ") + text_encoder_2's projection_dim (" + std::to_string(s.clip2.projection_dim) +
                            ") = " + std::to_string(added) + " in " + folder);
  if (s.vae.latent_channels != u.in_channels || u.out_channels != u.in_channels)
    return invalid_argument(where + ": the VAE's latent_channels (" + std::to_string(s.vae.latent_channels) +
                            ") differ from the UNet's in/out channels (" + std::to_string(u.in_channels) + ", " +
                            std::to_string(u.out_channels) + ") in " + folder);
  return {};
}

// model_index.json's force_zeros_for_empty_prompt, true when absent (diffusers' default).
Expected<bool> force_zeros(const DiffusersFolder& folder) {
  const auto path = folder.root / "model_index.json";
  TP_ASSIGN_OR_RETURN(nlohmann::json index, detail::read_json_object_file(path, 1 << 20));
  TP_ASSIGN_OR_RETURN(nn::ConfigReader r, nn::ConfigReader::over(index, path.string()));
  return r.boolean("force_zeros_for_empty_prompt", true);
}

Expected<std::shared_ptr<const PipelineSpec>> describe(const DiffusersFolder& folder, const std::string& where) {
  auto spec = std::make_shared<SdxlSpec>();
  spec->family = "sdxl";
  spec->root = folder.root;
  auto in_where = [&](const Error& e) { return make_error(e.code, where + ": " + e.message); };
  auto read = [&]() -> Status {
    TP_ASSIGN_OR_RETURN(spec->clip, parse_component<nn::ClipConfig>(folder, "text_encoder", nn::parse_clip_config));
    spec->clip.with_projection = false;  // CLIPTextModel
    TP_ASSIGN_OR_RETURN(spec->clip2, parse_component<nn::ClipConfig>(folder, "text_encoder_2", nn::parse_clip_config));
    TP_ASSIGN_OR_RETURN(spec->unet, parse_component<UNetConfig>(folder, "unet", parse_unet_config));
    TP_ASSIGN_OR_RETURN(spec->vae, parse_component<nn::VaeConfig>(folder, "vae", nn::parse_vae_config));
    TP_ASSIGN_OR_RETURN(nn::SchedulerConfig sched, nn::scheduler_config(folder));
    TP_ASSIGN_OR_RETURN(spec->scheduler, nn::make_scheduler(sched.json, sched.origin));
    spec->scheduler_config = std::move(sched.json);
    spec->scheduler_origin = std::move(sched.origin);
    if (spec->scheduler->class_name() == "FlowMatchEulerDiscreteScheduler")
      return unimplemented(sched.origin + ": SDXL samples with a discrete-time scheduler (" +
                           nn::known_scheduler_names() + "), not a FlowMatchEulerDiscreteScheduler");
    TP_ASSIGN_OR_RETURN(spec->force_zeros_for_empty_prompt, force_zeros(folder));
    TP_ASSIGN_OR_RETURN(spec->defaults, read_generation_defaults(folder.root, kDefaults));
    return {};
  };
  if (Status st = read(); !st) return in_where(st.error());
  TP_TRY(check_fit(*spec, where));
  TP_ASSIGN_OR_RETURN(spec->tokenizer, load_tokenizer<ClipTokenizer>(folder.root / "tokenizer"));
  TP_ASSIGN_OR_RETURN(spec->tokenizer2, load_tokenizer<ClipTokenizer>(folder.root / "tokenizer_2"));
  return std::shared_ptr<const PipelineSpec>(std::move(spec));
}

}  // namespace

DType SdxlSpec::network_dtype(std::string_view component, DType configured) const {
  return component == "vae" && vae.force_upcast && configured == DType::kF16 ? DType::kF32 : configured;
}

const std::string_view kRequestOptions[2] = {"scheduler", "guidance_rescale"};

// checkpoint_parts: single-file checkpoints in the Stability layout (sdxl_checkpoint.h).
const PipelineFamily kFamily{"sdxl", kFolderClasses, kNetworks, describe, kRequestOptions, checkpoint_parts};

}  // namespace tp::sdxl
