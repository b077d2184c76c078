#include "pipeline/sd3/sd3_spec.h"

#include <array>

#include "pipeline/common/config_reader.h"
#include "pipeline/common/folder_reader.h"

namespace tp::sd3 {
namespace {

constexpr std::string_view kFolderClasses[] = {"StableDiffusion3Pipeline"};

// SD3's networks, in load order, with the classes implemented for them.
constexpr NetworkSpec kNetworks[] = {
    {"text_encoder", "CLIPTextModelWithProjection", true, true, false},
    {"text_encoder_2", "CLIPTextModelWithProjection", true, true, false},
    {"text_encoder_3", "T5EncoderModel", false, true, false},
    {"transformer", "SD3Transformer2DModel", true, false, true},
    {"vae", "AutoencoderKL", true, false, false},
};

using nn::load_tokenizer;
using nn::parse_component;

// The networks must fit together.
Status check_fit(const Sd3Spec& s, const std::string& where) {
  const TransformerConfig& t = s.transformer;
  const std::string folder = s.root.string();
  if (s.clip1.projection_dim + s.clip2.projection_dim != t.pooled_projection_dim)
    return invalid_argument(where + ": the text encoders' projections (" + std::to_string(s.clip1.projection_dim) +
                            " + " + std::to_string(s.clip2.projection_dim) +
                            ") do not add up to the transformer's pooled_projection_dim (" +
                            std::to_string(t.pooled_projection_dim) + ") in " + folder);
  // The CLIP hidden states, side by side, are padded to T5's width (the
  // transformer's joint_attention_dim), or cut to it when wider, as diffusers'
  // torch.nn.functional.pad with a negative pad does (its SD3 fast-test
  // folder: 32 + 32 against 32). So any CLIP widths fit.
  if (s.t5 && s.t5->d_model != t.joint_attention_dim)
    return invalid_argument(where + ": T5's d_model (" + std::to_string(s.t5->d_model) +
                            ") differs from the transformer's joint_attention_dim (" +
                            std::to_string(t.joint_attention_dim) + ") in " + folder);
  if (s.vae.latent_channels != t.in_channels || t.out_channels != t.in_channels)
    return invalid_argument(where + ": the VAE's latent_channels (" + std::to_string(s.vae.latent_channels) +
                            ") differ from the transformer's in/out channels in " + folder);
  return {};
}

Expected<std::shared_ptr<const PipelineSpec>> describe(const DiffusersFolder& folder, const std::string& where) {
  auto spec = std::make_shared<Sd3Spec>();
  spec->family = "sd3";
  spec->root = folder.root;
  auto in_where = [&](const Error& e) { return make_error(e.code, where + ": " + e.message); };
  auto read = [&]() -> Status {
    TP_ASSIGN_OR_RETURN(spec->clip1, parse_component<nn::ClipConfig>(folder, "text_encoder", nn::parse_clip_config));
    TP_ASSIGN_OR_RETURN(spec->clip2, parse_component<nn::ClipConfig>(folder, "text_encoder_2", nn::parse_clip_config));
    if (const DiffusersComponent* t5 = folder.find("text_encoder_3"); t5 && t5->has_weights()) {
      TP_ASSIGN_OR_RETURN(spec->t5, parse_component<nn::T5Config>(folder, "text_encoder_3", nn::parse_t5_config));
    }
    TP_ASSIGN_OR_RETURN(spec->transformer,
                        parse_component<TransformerConfig>(folder, "transformer", parse_transformer_config));
    TP_ASSIGN_OR_RETURN(spec->vae, parse_component<nn::VaeConfig>(folder, "vae", nn::parse_vae_config));
    TP_ASSIGN_OR_RETURN(nn::SchedulerConfig sched, nn::scheduler_config(folder));
    TP_ASSIGN_OR_RETURN(spec->scheduler, nn::make_scheduler(sched.json, sched.origin));
    if (spec->scheduler->class_name() != "FlowMatchEulerDiscreteScheduler")
      return unimplemented(sched.origin + ": SD3 runs a FlowMatchEulerDiscreteScheduler, not a '" +
                           std::string(spec->scheduler->class_name()) + "'");
    TP_ASSIGN_OR_RETURN(spec->defaults, read_generation_defaults(folder.root));
    return {};
  };
  if (Status st = read(); !st) return in_where(st.error());
  TP_TRY(check_fit(*spec, where));
  TP_ASSIGN_OR_RETURN(spec->tokenizer1, load_tokenizer<ClipTokenizer>(folder.root / "tokenizer"));
  TP_ASSIGN_OR_RETURN(spec->tokenizer2, load_tokenizer<ClipTokenizer>(folder.root / "tokenizer_2"));
  if (spec->t5) {
    TP_ASSIGN_OR_RETURN(spec->tokenizer3, load_tokenizer<T5Tokenizer>(folder.root / "tokenizer_3"));
  }
  return std::shared_ptr<const PipelineSpec>(std::move(spec));
}

}  // namespace

Expected<TransformerConfig> parse_transformer_config(const nlohmann::json& config, std::string_view origin) {
  TP_ASSIGN_OR_RETURN(nn::ConfigReader r, nn::ConfigReader::over(config, origin));
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
  TP_TRY(r.one_of("qk_norm", c.qk_norm, {"", "rms_norm"}));
  if (c.caption_projection_dim != c.inner_dim())
    return invalid_argument(r.where("caption_projection_dim") + " must equal num_attention_heads * attention_head_dim (" +
                            std::to_string(c.inner_dim()) + ") for joint attention");
  for (int64_t i : c.dual_attention_layers)
    if (i >= c.layers) return invalid_argument(r.where("dual_attention_layers") + " names layer " + std::to_string(i) +
                                               " of " + std::to_string(c.layers));
  return c;
}

const PipelineFamily kFamily{"sd3", kFolderClasses, kNetworks, describe};

}  // namespace tp::sd3
