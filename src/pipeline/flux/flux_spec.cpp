#include "pipeline/flux/flux_spec.h"

#include <numeric>

#include "pipeline/common/config_reader.h"
#include "pipeline/common/folder_reader.h"
#include "weights/safetensors.h"

namespace tp::flux {
namespace {

using nn::load_tokenizer;
using nn::parse_component;

constexpr std::string_view kFolderClasses[] = {"FluxPipeline"};

// Flux's networks, in load order, with the classes implemented for them.
constexpr NetworkSpec kNetworks[] = {
    {"text_encoder", "CLIPTextModel", true, true, false},
    {"text_encoder_2", "T5EncoderModel", true, true, false},
    {"transformer", "FluxTransformer2DModel", true, false, true},
    {"vae", "AutoencoderKL", true, false, false},
};

// The tensor that tells a guidance-distilled transformer (FLUX.1 [dev]) apart,
// under diffusers' name and in the Black Forest Labs layout (flux_checkpoint.h).
constexpr const char* kGuidanceWeight = "time_text_embed.guidance_embedder.linear_1.weight";
constexpr const char* kGuidanceNames[] = {kGuidanceWeight, "guidance_in.in_layer.weight",
                                          "model.diffusion_model.guidance_in.in_layer.weight"};

// Whether the component's weights hold one of `names`, from the safetensors
// headers (or the shards' index) alone.
template <size_t N>
Expected<bool> weights_hold(const DiffusersComponent& c, const char* const (&names)[N]) {
  if (!c.weights_index.empty()) {
    TP_ASSIGN_OR_RETURN(ShardedIndex index, read_safetensors_index(c.weights_index));
    for (const char* name : names)
      if (index.weight_map.count(name)) return true;
    return false;
  }
  for (const auto& file : c.weight_files) {
    TP_ASSIGN_OR_RETURN(SafetensorsHeader header, read_safetensors_header(file));
    for (const char* name : names)
      if (header.find(name)) return true;
  }
  return false;
}

// The networks must fit together, and the transformer's config must say what its weights hold.
Status check_fit(const FluxSpec& s, const DiffusersFolder& folder, const std::string& where) {
  const TransformerConfig& t = s.transformer;
  const std::string root = s.root.string();
  if (s.clip.hidden_size != t.pooled_projection_dim)
    return invalid_argument(where + ": CLIP's pooled output (hidden_size " + std::to_string(s.clip.hidden_size) +
                            ") differs from the transformer's pooled_projection_dim (" +
                            std::to_string(t.pooled_projection_dim) + ") in " + root);
  if (s.t5.d_model != t.joint_attention_dim)
    return invalid_argument(where + ": T5's d_model (" + std::to_string(s.t5.d_model) +
                            ") differs from the transformer's joint_attention_dim (" +
                            std::to_string(t.joint_attention_dim) + ") in " + root);
  if (s.vae.latent_channels * 4 != t.in_channels || t.out_channels != t.in_channels)
    return invalid_argument(where + ": the transformer's in/out channels (" + std::to_string(t.in_channels) + ", " +
                            std::to_string(t.out_channels) + ") are not 4 x the VAE's latent_channels (" +
                            std::to_string(s.vae.latent_channels) + ", packed 2 x 2) in " + root);
  const DiffusersComponent* transformer = folder.find("transformer");
  auto has_guidance = weights_hold(*transformer, kGuidanceNames);
  if (!has_guidance) return make_error(has_guidance.error().code, where + ": " + has_guidance.error().message);
  const std::string config = (transformer->folder / transformer->config_file).string();
  if (t.guidance_embeds && !*has_guidance)
    return invalid_argument(where + ": " + config +
                            " sets 'guidance_embeds' (a guidance-distilled model, as FLUX.1 [dev]), but the "
                            "transformer's weights have no guidance embedding ('" + kGuidanceWeight + "')");
  if (!t.guidance_embeds && *has_guidance)
    return invalid_argument(where + ": the transformer's weights hold a guidance embedding ('" +
                            std::string(kGuidanceWeight) + "'), but " + config +
                            " does not set 'guidance_embeds' (as FLUX.1 [dev] does)");
  return {};
}

Expected<std::shared_ptr<const PipelineSpec>> describe(const DiffusersFolder& folder, const std::string& where) {
  auto spec = std::make_shared<FluxSpec>();
  spec->family = "flux";
  spec->root = folder.root;
  auto in_where = [&](const Error& e) { return make_error(e.code, where + ": " + e.message); };
  auto read = [&]() -> Status {
    TP_ASSIGN_OR_RETURN(spec->clip, parse_component<nn::ClipConfig>(folder, "text_encoder", nn::parse_clip_config));
    spec->clip.with_projection = false;  // CLIPTextModel
    TP_ASSIGN_OR_RETURN(spec->t5, parse_component<nn::T5Config>(folder, "text_encoder_2", nn::parse_t5_config));
    TP_ASSIGN_OR_RETURN(spec->transformer,
                        parse_component<TransformerConfig>(folder, "transformer", parse_transformer_config));
    TP_ASSIGN_OR_RETURN(spec->vae, parse_component<nn::VaeConfig>(folder, "vae", nn::parse_vae_config));
    TP_ASSIGN_OR_RETURN(nn::SchedulerConfig sched, nn::scheduler_config(folder));
    TP_ASSIGN_OR_RETURN(std::shared_ptr<const nn::Scheduler> scheduler, nn::make_scheduler(sched.json, sched.origin));
    spec->scheduler = std::dynamic_pointer_cast<const nn::FlowMatchEulerScheduler>(scheduler);
    if (!spec->scheduler)
      return unimplemented(sched.origin + ": Flux runs a FlowMatchEulerDiscreteScheduler, not a '" +
                           std::string(scheduler->class_name()) + "'");
    TP_ASSIGN_OR_RETURN(spec->defaults, read_generation_defaults(folder.root, kDefaults));
    spec->defaults.max_sequence_length = spec->max_sequence_length();  // FluxPipeline's 512; 256 for schnell
    return {};
  };
  if (Status st = read(); !st) return in_where(st.error());
  TP_TRY(check_fit(*spec, folder, where));
  TP_ASSIGN_OR_RETURN(spec->tokenizer, load_tokenizer<ClipTokenizer>(folder.root / "tokenizer"));
  TP_ASSIGN_OR_RETURN(spec->tokenizer2, load_tokenizer<T5Tokenizer>(folder.root / "tokenizer_2"));
  return std::shared_ptr<const PipelineSpec>(std::move(spec));
}

}  // namespace

const std::string_view kRequestOptions[1] = {"true_cfg_scale"};

Expected<TransformerConfig> parse_transformer_config(const nlohmann::json& config, std::string_view origin) {
  TP_ASSIGN_OR_RETURN(nn::ConfigReader r, nn::ConfigReader::over(config, origin));
  TransformerConfig c;
  TP_ASSIGN_OR_RETURN(c.patch_size, r.positive("patch_size", 1));
  TP_ASSIGN_OR_RETURN(c.in_channels, r.positive("in_channels", 64));
  TP_ASSIGN_OR_RETURN(c.out_channels, r.positive("out_channels", c.in_channels));
  TP_ASSIGN_OR_RETURN(c.layers, r.positive("num_layers", 19));
  TP_ASSIGN_OR_RETURN(c.single_layers, r.positive("num_single_layers", 38));
  TP_ASSIGN_OR_RETURN(c.head_dim, r.positive("attention_head_dim", 128));
  TP_ASSIGN_OR_RETURN(c.heads, r.positive("num_attention_heads", 24));
  TP_ASSIGN_OR_RETURN(c.joint_attention_dim, r.positive("joint_attention_dim", 4096));
  TP_ASSIGN_OR_RETURN(c.pooled_projection_dim, r.positive("pooled_projection_dim", 768));
  TP_ASSIGN_OR_RETURN(c.guidance_embeds, r.boolean("guidance_embeds", false));
  TP_ASSIGN_OR_RETURN(std::vector<int64_t> axes, r.ints("axes_dims_rope"));
  if (c.patch_size != 1)
    return unimplemented(r.where("patch_size") + " is " + std::to_string(c.patch_size) +
                         "; Flux packs 2 x 2 latents into tokens itself and runs patch_size 1 only");
  if (c.in_channels % 4 != 0)
    return invalid_argument(r.where("in_channels") + " is not a multiple of 4 (2 x 2 packed latents)");
  if (!axes.empty()) {
    if (axes.size() != 3)
      return invalid_argument(r.where("axes_dims_rope") + " must have 3 entries (the text, row and column axes)");
    std::copy(axes.begin(), axes.end(), c.axes_dims_rope.begin());
  }
  for (int64_t a : c.axes_dims_rope)
    if (a == 0 || a % 2 != 0) return invalid_argument(r.where("axes_dims_rope") + " must hold positive even sizes");
  const int64_t rope = std::accumulate(c.axes_dims_rope.begin(), c.axes_dims_rope.end(), int64_t{0});
  if (rope != c.head_dim)
    return invalid_argument(r.where("axes_dims_rope") + " adds up to " + std::to_string(rope) +
                            ", not to attention_head_dim (" + std::to_string(c.head_dim) + ")");
  return c;
}

const PipelineFamily kFamily{"flux", kFolderClasses, kNetworks, describe, kRequestOptions};

}  // namespace tp::flux
