// The Flux runner: text-to-image over registry leases, step for step as
// diffusers' FluxPipeline.__call__ does it.
#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <c10/core/InferenceMode.h>

#include <charconv>
#include <cmath>

#include "pipeline/common/clip.h"
#include "pipeline/common/family_runner.h"
#include "pipeline/common/t5.h"
#include "pipeline/flux/flux_pipeline.h"
#include "pipeline/flux/flux_spec.h"
#include "pipeline/flux/flux_transformer.h"
#include "pipeline/flux/flux_workspace.h"

namespace tp::flux {
namespace {

class FluxRunner final : public nn::FamilyRunner<FluxSpec> {
 public:
  FluxRunner(ModelRegistry& registry, std::string name, std::shared_ptr<const FluxSpec> spec)
      : FamilyRunner(registry, std::move(name), std::move(spec)) {}

  std::string clip, t5, transformer, vae;  // registry models


 private:
  Status check(const GenerateRequest& request, const nn::Settings& s) const;
  Expected<GenerateResult> run(const GenerateRequest& request, const RunOverrides& overrides,
                               GenerateResult& result) override;
};

// The request option "true_cfg_scale": 1 when absent.
Expected<double> true_cfg_scale(const GenerateRequest& request) {
  auto it = request.options.find("true_cfg_scale");
  if (it == request.options.end()) return 1.0;
  const std::string& text = it->second;
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v))
    return invalid_argument("generate: option 'true_cfg_scale' must be a finite number, not '" + text + "'");
  return v;
}

Status FluxRunner::check(const GenerateRequest& request, const nn::Settings& s) const {
  const int limit = spec_->max_sequence_length();
  if (s.max_sequence_length > limit)
    return invalid_argument("generate: max_sequence_length " + std::to_string(s.max_sequence_length) +
                            " is beyond the " + std::to_string(limit) + " T5 tokens " + name_ + " takes" +
                            (spec_->transformer.guidance_embeds
                                 ? std::string(" (FluxPipeline's limit)")
                                 : std::string(" (it has no guidance embedding, as FLUX.1 [schnell], which was "
                                               "trained with 256)")));
  TP_TRY(nn::check_request(request, s));
  const int multiple = size_multiple();
  for (auto [what, v] : {std::pair{"width", s.width}, std::pair{"height", s.height}})
    if (v <= 0 || v % multiple != 0)
      return invalid_argument("generate: " + std::string(what) + " " + std::to_string(v) +
                              " is not a positive multiple of " + std::to_string(multiple) + " (the VAE's scale factor " +
                              std::to_string(spec_->vae.scale_factor()) + " times Flux's 2 x 2 latent packing)");
  return {};
}

Expected<GenerateResult> FluxRunner::run(const GenerateRequest& request, const RunOverrides& overrides,
                                         GenerateResult& result) {
  const nn::Settings s = settings(request);
  TP_TRY(check(request, s));
  TP_ASSIGN_OR_RETURN(const double true_cfg, true_cfg_scale(request));
  nn::RunContext ctx(registry_, name_, request, result, &overrides);
  const FluxSpec& spec = *spec_;
  const TransformerConfig& tcfg = spec.transformer;

  result.width = s.width;
  result.height = s.height;
  result.steps = s.steps;
  result.guidance_scale = s.guidance_scale;
  result.seed = request.seed;
  // True CFG runs the transformer on the negative prompts too (diffusers: true_cfg_scale > 1 and a negative prompt).
  const bool cfg = true_cfg > 1.0 && !request.negative_prompts.empty();
  const int64_t batch = static_cast<int64_t>(request.prompts.size()) * request.images_per_prompt;
  const std::vector<std::string> texts = nn::texts_to_encode(request, cfg);
  const int length = s.max_sequence_length;
  c10::InferenceMode inference;
  nn::RequestShape shape;
  shape.width = s.width, shape.height = s.height, shape.max_sequence_length = length;
  shape.prompts = static_cast<int64_t>(request.prompts.size()), shape.images_per_prompt = request.images_per_prompt;
  shape.cfg = shape.encode_negatives = cfg;
  const FluxWorkspace workspace = estimate_workspace(spec, shape, [&](std::string_view component) {
    return ctx.activation_target(component == "text_encoder"     ? clip
                                 : component == "text_encoder_2" ? t5
                                 : component == "transformer"    ? transformer
                                                                 : vae);
  });

  // ---- Text encoders, one lease at a time, so each may leave the device after.
  const auto encode_start = nn::WallClock::now();
  if (!ctx.report_stage(Stage::kEncode, s.steps)) return cancelled("generate: cancelled by the progress callback");
  at::Tensor embeds, pooled;
  {
    TP_ASSIGN_OR_RETURN(auto enc, ctx.lease<nn::ClipTextEncoder>(clip, spec.clip, key_ + "/text_encoder",
                                                                   workspace.text_encoder));
    // CLIP's pooled output only.
    pooled = enc.second.net->forward(ctx.token_ids(*spec.tokenizer, texts, kClipLength, "CLIP", true, enc.second.device))
                 .pooled;
  }
  if (ctx.cancelled()) return cancelled("generate: cancelled while encoding the prompt");
  {
    TP_ASSIGN_OR_RETURN(auto enc, ctx.lease<nn::T5Encoder>(t5, spec.t5, key_ + "/text_encoder_2",
                                                             workspace.text_encoder_2));
    embeds = enc.second.net->forward(ctx.token_ids(*spec.tokenizer2, texts, length, "T5", true, enc.second.device));
  }
  if (request.images_per_prompt > 1) {
    embeds = embeds.repeat_interleave(request.images_per_prompt, 0);
    pooled = pooled.repeat_interleave(request.images_per_prompt, 0);
  }
  result.timings.encode_s = nn::seconds_since(encode_start);
  if (ctx.cancelled()) return cancelled("generate: cancelled after encoding the prompt");

  // ---- Denoising, over 2 x 2 packed latents.
  const auto denoise_start = nn::WallClock::now();
  const int64_t vsf = spec.vae.scale_factor();
  const int64_t rows = s.height / (vsf * 2), cols = s.width / (vsf * 2);
  at::Tensor latents;
  {
    TP_ASSIGN_OR_RETURN(auto net, ctx.lease<FluxTransformer>(transformer, tcfg, key_ + "/transformer",
                                                                  workspace.transformer));
    const at::Device device = net.second.device;
    const at::ScalarType dtype = net.second.dtype;
    embeds = embeds.to(device, dtype);
    pooled = pooled.to(device, dtype);
    // The noise is drawn before packing, (B, C, 2*rows, 2*cols), so that seeds match diffusers'.
    const std::vector<int64_t> shape{batch, tcfg.in_channels / 4, rows * 2, cols * 2};
    TP_ASSIGN_OR_RETURN(latents, nn::initial_noise(shape, overrides.initial_latents, request.seed, device, dtype));
    latents = pack_latents(latents);
    const Rotary rotary = net.second.net->rotary(at::cat({text_ids(length), image_ids(rows, cols)}, 0), device);
    const int64_t runs = cfg ? 2 * batch : batch;
    const auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
    at::Tensor guidance;
    if (tcfg.guidance_embeds) guidance = at::full({runs}, s.guidance_scale, f32);
    const nn::Schedule schedule =
        spec.scheduler->schedule_linear_sigmas(s.steps, spec.scheduler->mu(static_cast<int>(rows * cols)));
    auto predict = [&](const at::Tensor& input, int i) {
      // FluxPipeline passes t / 1000 in the latents' dtype; the transformer multiplies it back.
      at::Tensor t = at::full({runs}, schedule.timesteps[static_cast<size_t>(i)], f32).to(dtype) / 1000;
      return net.second.net->forward(input, t, guidance, embeds, pooled, rotary);
    };
    TP_ASSIGN_OR_RETURN(latents, nn::flow_match_euler(ctx, schedule, latents, cfg, true_cfg, predict));
  }
  if (overrides.final_latents) *overrides.final_latents = latents;
  result.timings.denoise_s = nn::seconds_since(denoise_start);

  TP_TRY(nn::decode_images(ctx, vae, spec.vae, key_ + "/vae", unpack_latents(latents, rows, cols), s.steps, result,
                                 workspace.vae));
  return std::move(result);
}

}  // namespace

Expected<std::unique_ptr<PipelineRunner>> make_runner(ModelRegistry& registry, const PipelineConfig& p) {
  TP_ASSIGN_OR_RETURN(auto spec, nn::spec_of<FluxSpec>(p, "a Flux"));
  auto runner = std::make_unique<FluxRunner>(registry, p.name, spec);
  TP_TRY(nn::assign_networks(p, {{"text_encoder", &runner->clip},
                                 {"text_encoder_2", &runner->t5},
                                 {"transformer", &runner->transformer},
                                 {"vae", &runner->vae}}));
  return std::unique_ptr<PipelineRunner>(std::move(runner));
}

}  // namespace tp::flux
