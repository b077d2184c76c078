// The SDXL runner: text-to-image over registry leases, step for step as
// diffusers' StableDiffusionXLPipeline.__call__ does it.
#include "pipeline/sdxl/sdxl_pipeline.h"

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <c10/core/InferenceMode.h>

#include <charconv>
#include <cmath>

#include "pipeline/common/clip.h"
#include "pipeline/common/discrete_sampler.h"
#include "pipeline/common/discrete_schedulers.h"
#include "pipeline/common/family_runner.h"
#include "pipeline/sdxl/sdxl_spec.h"
#include "pipeline/sdxl/sdxl_unet.h"
#include "pipeline/sdxl/sdxl_workspace.h"

namespace tp::sdxl {
namespace {

// The prompt's conditioning, as encode_prompt gives it: the two penultimate
// hidden states side by side, and CLIP-G's projected pooled output.
struct Conditioning {
  at::Tensor context, pooled;
};

// The request option "guidance_rescale": 0 when absent; in [0, 1].
Expected<double> guidance_rescale(const GenerateRequest& request) {
  auto it = request.options.find("guidance_rescale");
  if (it == request.options.end()) return 0.0;
  const std::string& text = it->second;
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || !(v >= 0 && v <= 1))
    return invalid_argument("generate: option 'guidance_rescale' must be a number in [0, 1], not '" + text + "'");
  return v;
}

// diffusers' rescale_noise_cfg: the guided prediction rescaled to the text
// prediction's standard deviation, blended by `rescale`.
at::Tensor rescale_noise_cfg(const at::Tensor& cfg, const at::Tensor& text, double rescale) {
  std::vector<int64_t> dims;
  for (int64_t d = 1; d < cfg.dim(); ++d) dims.push_back(d);
  const at::Tensor std_text = text.std(dims, /*unbiased=*/true, /*keepdim=*/true);
  const at::Tensor std_cfg = cfg.std(dims, /*unbiased=*/true, /*keepdim=*/true);
  const at::Tensor rescaled = cfg * (std_text / std_cfg);
  return rescale * rescaled + (1 - rescale) * cfg;
}

class SdxlRunner final : public nn::FamilyRunner<SdxlSpec> {
 public:
  SdxlRunner(ModelRegistry& registry, std::string name, std::shared_ptr<const SdxlSpec> spec)
      : FamilyRunner(registry, std::move(name), std::move(spec)) {}

  std::string clip, clip2, unet, vae;  // registry models


 private:
  Status check(const GenerateRequest& request, const nn::Settings& s) const;
  Expected<std::shared_ptr<const nn::Scheduler>> scheduler_for(const GenerateRequest& request) const;
  Expected<Conditioning> encode(nn::RunContext& ctx, const std::vector<std::string>& texts,
                                const SdxlWorkspace& workspace);
  Expected<GenerateResult> run(const GenerateRequest& request, const RunOverrides& overrides,
                               GenerateResult& result) override;
};

Status SdxlRunner::check(const GenerateRequest& request, const nn::Settings& s) const {
  if (request.max_sequence_length != 0 && request.max_sequence_length != kClipLength)
    return invalid_argument("generate: max_sequence_length " + std::to_string(request.max_sequence_length) +
                            " does not apply to " + name_ + ": SDXL's CLIP encoders take " +
                            std::to_string(kClipLength) + " tokens");
  TP_TRY(nn::check_request(request, s));
  const int multiple = size_multiple();
  for (auto [what, v] : {std::pair{"width", s.width}, std::pair{"height", s.height}})
    if (v <= 0 || v % multiple != 0)
      return invalid_argument("generate: " + std::string(what) + " " + std::to_string(v) +
                              " is not a positive multiple of " + std::to_string(multiple) +
                              " (the VAE's scale factor)");
  return {};
}

// The folder's scheduler, or the one the request's "scheduler" option names,
// made from the folder's scheduler_config.json.
Expected<std::shared_ptr<const nn::Scheduler>> SdxlRunner::scheduler_for(const GenerateRequest& request) const {
  auto it = request.options.find("scheduler");
  if (it == request.options.end()) return spec_->scheduler;
  auto made = nn::make_scheduler_named(it->second, spec_->scheduler_config, spec_->scheduler_origin);
  if (!made) return make_error(made.error().code, "generate: option 'scheduler': " + made.error().message);
  return made;
}

// encode_prompt for `texts`: each CLIP on its own lease, so that each may leave the device after.
Expected<Conditioning> SdxlRunner::encode(nn::RunContext& ctx, const std::vector<std::string>& texts,
                                          const SdxlWorkspace& workspace) {
  const SdxlSpec& spec = *spec_;
  at::Tensor hidden_l;
  {
    TP_ASSIGN_OR_RETURN(auto enc, ctx.lease<nn::ClipTextEncoder>(clip, spec.clip, key_ + "/text_encoder",
                                                                   workspace.text_encoder));
    hidden_l = enc.second.net
                   ->forward(ctx.token_ids(*spec.tokenizer, texts, kClipLength, "CLIP-L", true, enc.second.device))
                   .penultimate;
  }
  if (ctx.cancelled()) return cancelled("generate: cancelled while encoding the prompt");
  TP_ASSIGN_OR_RETURN(auto enc, ctx.lease<nn::ClipTextEncoder>(clip2, spec.clip2, key_ + "/text_encoder_2",
                                                                 workspace.text_encoder_2));
  nn::ClipOutput g =
      enc.second.net->forward(ctx.token_ids(*spec.tokenizer2, texts, kClipLength, "CLIP-G", true, enc.second.device));
  // diffusers moves the embeddings to text_encoder_2's dtype.
  const at::Tensor context = at::cat({hidden_l.to(g.penultimate.device(), g.penultimate.scalar_type()), g.penultimate}, -1);
  return Conditioning{context, g.pooled};
}

Expected<GenerateResult> SdxlRunner::run(const GenerateRequest& request, const RunOverrides& overrides,
                                         GenerateResult& result) {
  const nn::Settings s = settings(request);
  TP_TRY(check(request, s));
  TP_ASSIGN_OR_RETURN(const double rescale, guidance_rescale(request));
  TP_ASSIGN_OR_RETURN(std::shared_ptr<const nn::Scheduler> scheduler, scheduler_for(request));
  nn::RunContext ctx(registry_, name_, request, result, &overrides);
  const SdxlSpec& spec = *spec_;

  result.width = s.width;
  result.height = s.height;
  result.steps = s.steps;
  result.guidance_scale = s.guidance_scale;
  result.seed = request.seed;
  // do_classifier_free_guidance: guidance_scale > 1.
  const bool cfg = s.guidance_scale > 1.0;
  // Without a negative prompt, force_zeros_for_empty_prompt makes the unconditional embeddings zeros.
  const bool zero_negative = cfg && request.negative_prompts.empty() && spec.force_zeros_for_empty_prompt;
  const int64_t batch = static_cast<int64_t>(request.prompts.size()) * request.images_per_prompt;
  c10::InferenceMode inference;
  nn::RequestShape shape;
  shape.width = s.width, shape.height = s.height, shape.max_sequence_length = kClipLength;
  shape.prompts = static_cast<int64_t>(request.prompts.size()), shape.images_per_prompt = request.images_per_prompt;
  shape.cfg = cfg;
  shape.encode_negatives = cfg && !zero_negative;
  const SdxlWorkspace workspace = estimate_workspace(spec, shape, [&](std::string_view component) {
    return ctx.activation_target(component == "text_encoder"     ? clip
                                 : component == "text_encoder_2" ? clip2
                                 : component == "unet"           ? unet
                                                                 : vae);
  });

  // ---- Text encoders.
  const auto encode_start = nn::WallClock::now();
  if (!ctx.report_stage(Stage::kEncode, s.steps)) return cancelled("generate: cancelled by the progress callback");
  TP_ASSIGN_OR_RETURN(Conditioning c, encode(ctx, nn::texts_to_encode(request, cfg && !zero_negative), workspace));
  if (zero_negative) {
    c.context = at::cat({at::zeros_like(c.context), c.context}, 0);
    c.pooled = at::cat({at::zeros_like(c.pooled), c.pooled}, 0);
  }
  if (request.images_per_prompt > 1) {
    // Each half (negative, positive) repeats its rows in place, as diffusers' repeat + view does.
    c.context = c.context.repeat_interleave(request.images_per_prompt, 0);
    c.pooled = c.pooled.repeat_interleave(request.images_per_prompt, 0);
  }
  result.timings.encode_s = nn::seconds_since(encode_start);
  if (ctx.cancelled()) return cancelled("generate: cancelled after encoding the prompt");

  // ---- Denoising.
  const auto denoise_start = nn::WallClock::now();
  const int64_t vsf = spec.vae.scale_factor();
  at::Tensor latents;
  {
    TP_ASSIGN_OR_RETURN(auto net, ctx.lease<UNet>(unet, spec.unet, key_ + "/unet", workspace.unet));
    const at::Device device = net.second.device;
    const at::ScalarType dtype = net.second.dtype;
    const int64_t runs = cfg ? 2 * batch : batch;
    const at::Tensor context = c.context.to(device, dtype);
    const at::Tensor pooled = c.pooled.to(device, dtype);
    // add_time_ids: original size, crop top-left (0, 0), target size; the same for both halves.
    const at::Tensor time_ids =
        at::tensor(std::vector<float>{static_cast<float>(s.height), static_cast<float>(s.width), 0.f, 0.f,
                                      static_cast<float>(s.height), static_cast<float>(s.width)})
            .to(device, dtype)
            .view({1, 6})
            .expand({runs, 6});
    TP_ASSIGN_OR_RETURN(nn::DiscreteSampler sampler, nn::DiscreteSampler::make(*scheduler, s.steps));
    // One CPU generator for the initial noise and Euler ancestral's per-step noise, drawn in the latents' dtype.
    at::Generator generator = nn::seeded_cpu_generator(request.seed);
    const std::vector<int64_t> shape{batch, spec.unet.in_channels, s.height / vsf, s.width / vsf};
    TP_ASSIGN_OR_RETURN(latents,
                        nn::initial_noise(shape, overrides.initial_latents, generator, device, dtype, dtype));
    latents = latents * sampler.init_noise_sigma();
    const std::vector<float>& timesteps = sampler.schedule().timesteps;
    const int steps = sampler.steps();  // diffusers' "trailing" spacing may add one
    const auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
    for (int i = 0; i < steps; ++i) {
      if (ctx.cancelled()) return cancelled("generate: cancelled at step " + std::to_string(i + 1));
      const at::Tensor input = sampler.scale_model_input(cfg ? at::cat({latents, latents}, 0) : latents, i);
      const at::Tensor t = at::full({runs}, timesteps[static_cast<size_t>(i)], f32);
      at::Tensor noise = net.second.net->forward(input, t, context, pooled, time_ids);
      if (cfg) {
        std::vector<at::Tensor> parts = noise.chunk(2, 0);
        noise = parts[0] + s.guidance_scale * (parts[1] - parts[0]);
        if (rescale > 0) noise = rescale_noise_cfg(noise, parts[1], rescale);
      }
      latents = sampler.step(noise, i, latents, generator);
      if (!ctx.report_step(i + 1, steps))
        return cancelled("generate: cancelled by the progress callback at step " + std::to_string(i + 1));
    }
  }
  if (overrides.final_latents) *overrides.final_latents = latents;
  result.timings.denoise_s = nn::seconds_since(denoise_start);

  TP_TRY(nn::decode_images(ctx, vae, spec.vae, key_ + "/vae", latents, s.steps, result, workspace.vae));
  return std::move(result);
}

}  // namespace

Expected<std::unique_ptr<PipelineRunner>> make_runner(ModelRegistry& registry, const PipelineConfig& p) {
  TP_ASSIGN_OR_RETURN(auto spec, nn::spec_of<SdxlSpec>(p, "an SDXL"));
  auto runner = std::make_unique<SdxlRunner>(registry, p.name, spec);
  TP_TRY(nn::assign_networks(p, {{"text_encoder", &runner->clip},
                                 {"text_encoder_2", &runner->clip2},
                                 {"unet", &runner->unet},
                                 {"vae", &runner->vae}}));
  return std::unique_ptr<PipelineRunner>(std::move(runner));
}

}  // namespace tp::sdxl
