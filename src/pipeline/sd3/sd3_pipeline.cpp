// The SD3 / 3.5 runner: text-to-image over registry leases, step for step as
// diffusers' StableDiffusion3Pipeline.__call__ does it.
#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <c10/core/InferenceMode.h>

#include "pipeline/common/clip.h"
#include "pipeline/common/family_runner.h"
#include "pipeline/common/t5.h"
#include "pipeline/sd3/sd3_pipeline.h"
#include "pipeline/sd3/sd3_spec.h"
#include "pipeline/sd3/sd3_transformer.h"
#include "pipeline/sd3/sd3_workspace.h"

namespace tp::sd3 {
namespace {

constexpr int kClipLength = 77;

class Sd3Runner final : public nn::FamilyRunner<Sd3Spec> {
 public:
  Sd3Runner(ModelRegistry& registry, std::string name, std::shared_ptr<const Sd3Spec> spec)
      : FamilyRunner(registry, std::move(name), std::move(spec)) {}

  std::string te1, te2, te3, transformer, vae;  // registry models; te3 empty without T5


 private:
  Status check_size(const nn::Settings& s) const;
  Expected<GenerateResult> run(const GenerateRequest& request, const RunOverrides& overrides,
                               GenerateResult& result) override;
};

Status Sd3Runner::check_size(const nn::Settings& s) const {
  const int multiple = size_multiple();
  const int64_t limit = spec_->transformer.pos_embed_max_size * multiple;
  for (auto [what, v] : {std::pair{"width", s.width}, std::pair{"height", s.height}}) {
    if (v <= 0 || v % multiple != 0)
      return invalid_argument("generate: " + std::string(what) + " " + std::to_string(v) + " is not a positive multiple of " +
                              std::to_string(multiple) + " (the VAE's scale factor times the patch size)");
    if (v > limit)
      return invalid_argument("generate: " + std::string(what) + " " + std::to_string(v) + " is beyond " + name_ +
                              "'s limit of " + std::to_string(limit) + " (pos_embed_max_size " +
                              std::to_string(spec_->transformer.pos_embed_max_size) + " patches)");
  }
  return {};
}

Expected<GenerateResult> Sd3Runner::run(const GenerateRequest& request, const RunOverrides& overrides,
                                        GenerateResult& result) {
  const nn::Settings s = settings(request);
  TP_TRY(nn::check_request(request, s));
  TP_TRY(check_size(s));
  nn::RunContext ctx(registry_, name_, request, result, &overrides);
  const Sd3Spec& spec = *spec_;
  const TransformerConfig& tcfg = spec.transformer;

  result.width = s.width;
  result.height = s.height;
  result.steps = s.steps;
  result.guidance_scale = s.guidance_scale;
  result.seed = request.seed;
  const bool cfg = s.guidance_scale > 1.0;
  const int64_t batch = static_cast<int64_t>(request.prompts.size()) * request.images_per_prompt;
  const std::vector<std::string> texts = nn::texts_to_encode(request, cfg);
  c10::InferenceMode inference;
  nn::RequestShape shape;
  shape.width = s.width, shape.height = s.height, shape.max_sequence_length = s.max_sequence_length;
  shape.prompts = static_cast<int64_t>(request.prompts.size()), shape.images_per_prompt = request.images_per_prompt;
  shape.cfg = shape.encode_negatives = cfg;
  const Sd3Workspace workspace = estimate_workspace(spec, shape, [&](std::string_view component) {
    const std::string& model = component == "text_encoder"     ? te1
                               : component == "text_encoder_2" ? te2
                               : component == "text_encoder_3" ? te3
                               : component == "transformer"    ? transformer
                                                               : vae;
    return ctx.activation_target(model);
  });

  // ---- Text encoders, one lease at a time, so each may leave the device after.
  const auto encode_start = nn::WallClock::now();
  if (!ctx.report_stage(Stage::kEncode, s.steps)) return cancelled("generate: cancelled by the progress callback");
  at::Tensor embeds, pooled;
  {
    std::vector<at::Tensor> hidden, pools;
    at::ScalarType dtype = at::kFloat;
    at::Device device(at::kCPU);
    for (int e = 0; e < 2; ++e) {
      TP_ASSIGN_OR_RETURN(auto enc, ctx.lease<nn::ClipTextEncoder>(
                                        e == 0 ? te1 : te2, e == 0 ? spec.clip1 : spec.clip2,
                                        key_ + "/text_encoder" + (e ? "_2" : ""),
                                        e == 0 ? workspace.text_encoder : workspace.text_encoder_2));
      const ClipTokenizer& tok = e == 0 ? *spec.tokenizer1 : *spec.tokenizer2;
      if (e == 0) dtype = enc.second.dtype, device = enc.second.device;
      nn::ClipOutput out =
          enc.second.net->forward(ctx.token_ids(tok, texts, kClipLength, "CLIP", e == 0, enc.second.device));
      hidden.push_back(out.penultimate.to(device, dtype));
      pools.push_back(out.pooled.to(device, dtype));
      if (ctx.cancelled()) return cancelled("generate: cancelled while encoding the prompt");
    }
    at::Tensor clip = at::cat(hidden, -1);
    at::Tensor t5_embeds;
    if (spec.t5) {
      TP_ASSIGN_OR_RETURN(auto enc, ctx.lease<nn::T5Encoder>(te3, *spec.t5, key_ + "/text_encoder_3",
                                                                 workspace.text_encoder_3));
      const int length = s.max_sequence_length;
      t5_embeds = enc.second.net->forward(ctx.token_ids(*spec.tokenizer3, texts, length, "T5", true, enc.second.device))
                      .to(device, dtype);
    } else {
      t5_embeds = at::zeros({clip.size(0), s.max_sequence_length, tcfg.joint_attention_dim},
                            at::TensorOptions().dtype(dtype).device(device));
    }
    clip = at::constant_pad_nd(clip, {0, t5_embeds.size(-1) - clip.size(-1)});
    embeds = at::cat({clip, t5_embeds}, 1);
    pooled = at::cat(pools, -1);
    if (request.images_per_prompt > 1) {
      embeds = embeds.repeat_interleave(request.images_per_prompt, 0);
      pooled = pooled.repeat_interleave(request.images_per_prompt, 0);
    }
  }
  result.timings.encode_s = nn::seconds_since(encode_start);
  if (ctx.cancelled()) return cancelled("generate: cancelled after encoding the prompt");

  // ---- Denoising.
  const auto denoise_start = nn::WallClock::now();
  const int64_t vsf = spec.vae.scale_factor();
  at::Tensor latents;
  {
    TP_ASSIGN_OR_RETURN(auto net, ctx.lease<SD3Transformer>(transformer, tcfg, key_ + "/transformer",
                                                                 workspace.transformer));
    const at::Device device = net.second.device;
    const at::ScalarType dtype = embeds.scalar_type();
    embeds = embeds.to(device);
    pooled = pooled.to(device);
    const std::vector<int64_t> shape{batch, tcfg.in_channels, s.height / vsf, s.width / vsf};
    TP_ASSIGN_OR_RETURN(latents, nn::initial_noise(shape, overrides.initial_latents, request.seed, device, dtype));
    const int seq = static_cast<int>((s.height / vsf / tcfg.patch_size) * (s.width / vsf / tcfg.patch_size));
    const nn::Schedule schedule = spec.scheduler->schedule(s.steps, seq);
    const auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
    auto predict = [&](const at::Tensor& input, int i) {
      at::Tensor t = at::full({input.size(0)}, schedule.timesteps[static_cast<size_t>(i)], f32);
      return net.second.net->forward(input, t, embeds, pooled);
    };
    TP_ASSIGN_OR_RETURN(latents, nn::flow_match_euler(ctx, schedule, latents, cfg, s.guidance_scale, predict));
  }
  if (overrides.final_latents) *overrides.final_latents = latents;
  result.timings.denoise_s = nn::seconds_since(denoise_start);

  TP_TRY(nn::decode_images(ctx, vae, spec.vae, key_ + "/vae", latents, s.steps, result, workspace.vae));
  return std::move(result);
}

}  // namespace

Expected<std::unique_ptr<PipelineRunner>> make_runner(ModelRegistry& registry, const PipelineConfig& p) {
  TP_ASSIGN_OR_RETURN(auto spec, nn::spec_of<Sd3Spec>(p, "an SD3"));
  auto runner = std::make_unique<Sd3Runner>(registry, p.name, spec);
  TP_TRY(nn::assign_networks(p, {{"text_encoder", &runner->te1},
                                 {"text_encoder_2", &runner->te2},
                                 {"text_encoder_3", &runner->te3, spec->t5.has_value()},
                                 {"transformer", &runner->transformer},
                                 {"vae", &runner->vae}}));
  return std::unique_ptr<PipelineRunner>(std::move(runner));
}

}  // namespace tp::sd3
