// Pipeline: SD3 / 3.5 text-to-image over registry leases, step for step as
// diffusers' StableDiffusion3Pipeline.__call__ does it.
#include "pipeline/sd3_pipeline.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <chrono>
#include <cmath>
#include <optional>

#include "pipeline/scheduler.h"
#include "torch/tensors.h"
#include "weights/diffusers_folder.h"
#include "twistedpic/log.h"
#include "text/tokenizer.h"
#include "util/file.h"

namespace tp {
inline namespace v0 {

struct PipelineAccess {
  static Pipeline::Impl& impl(Pipeline& p) { return *p.impl_; }
};

namespace {

using WallClock = std::chrono::steady_clock;
double seconds_since(WallClock::time_point t) {
  return std::chrono::duration<double>(WallClock::now() - t).count();
}

constexpr int kClipLength = 77;
constexpr uint64_t kMaxDefaultsBytes = 64 << 10;

at::Tensor ids_tensor(const std::vector<TokenizedText>& texts, at::Device device) {
  const int64_t rows = static_cast<int64_t>(texts.size()), cols = static_cast<int64_t>(texts[0].ids.size());
  at::Tensor ids = at::empty({rows, cols}, at::kLong);
  for (int64_t r = 0; r < rows; ++r)
    std::copy(texts[r].ids.begin(), texts[r].ids.end(), ids.data_ptr<int64_t>() + r * cols);
  return ids.to(device);
}

at::Device device_of(const sd3::TensorMap& tensors) {
  return tensors.empty() ? at::Device(at::kCPU) : tensors.begin()->second.device();
}

at::ScalarType dtype_of(const sd3::TensorMap& tensors) {
  return tensors.empty() ? at::kFloat : tensors.begin()->second.scalar_type();
}

// Reads and parses one component's config.json.
// A network's binding error, naming the registry model.
template <class Net>
Expected<Net> named(Expected<Net> net, const std::string& model) {
  if (!net) return make_error(net.error().code, "model '" + model + "': " + net.error().message);
  return net;
}

template <class Config, class Parse>
Expected<Config> component_config(const DiffusersFolder& folder, const char* component, Parse parse) {
  const DiffusersComponent* c = folder.find(component);
  if (!c || c->config_json.empty())
    return not_found(folder.root.string() + ": component '" + component + "' has no config");
  return parse(c->config_json, (c->folder / c->config_file).string());
}

}  // namespace

struct Pipeline::Impl {
  Impl(ModelRegistry& r, std::string n) : registry(r), name(std::move(n)) {}
  ModelRegistry& registry;
  std::string name;
  std::string te1, te2, te3, transformer, vae;  // registry models; te3 empty without T5
  sd3::ClipConfig clip1, clip2;
  std::optional<sd3::T5Config> t5;
  sd3::TransformerConfig tcfg;
  sd3::VaeConfig vcfg;
  sd3::FlowMatchConfig sched;
  sd3::GenerationDefaults defaults;
  std::optional<ClipTokenizer> tok1, tok2;
  std::optional<T5Tokenizer> tok3;

  int size_multiple() const { return static_cast<int>(vcfg.scale_factor() * tcfg.patch_size); }
  int default_side() const { return static_cast<int>(tcfg.sample_size * vcfg.scale_factor()); }

  Expected<ModelLease> acquire(const std::string& model, const GenerateRequest& request, GenerateTimings& t) {
    auto start = WallClock::now();
    AcquireOptions options;
    options.cancel = request.cancel;
    auto lease = registry.acquire(model, options);
    t.acquire_s += seconds_since(start);
    return lease;
  }

  // The request's sampling settings, the model's defaults filling what it leaves unset.
  struct Settings {
    int width, height, steps;
    double guidance_scale;
  };
  Settings settings(const GenerateRequest& r) const {
    return {r.width ? r.width : default_side(), r.height ? r.height : default_side(),
            r.steps ? r.steps : defaults.steps, r.guidance_scale.value_or(defaults.guidance_scale)};
  }
  Status check(const GenerateRequest& r, const Settings& s) const;
  Expected<GenerateResult> run(const GenerateRequest& request, const sd3::RunOverrides& overrides);
};

Status Pipeline::Impl::check(const GenerateRequest& r, const Settings& s) const {
  if (r.prompts.empty()) return invalid_argument("generate: no prompts");
  if (!r.negative_prompts.empty() && r.negative_prompts.size() != 1 && r.negative_prompts.size() != r.prompts.size())
    return invalid_argument("generate: " + std::to_string(r.negative_prompts.size()) + " negative prompts for " +
                            std::to_string(r.prompts.size()) + " prompts (give none, one, or one per prompt)");
  if (r.images_per_prompt < 1 || r.images_per_prompt > 64)
    return invalid_argument("generate: images_per_prompt must be in 1..64, not " + std::to_string(r.images_per_prompt));
  if (r.prompts.size() * static_cast<size_t>(r.images_per_prompt) > 64)
    return invalid_argument("generate: more than 64 images in one call");
  if (s.steps < 1 || s.steps > 1000) return invalid_argument("generate: steps must be in 1..1000, not " + std::to_string(s.steps));
  if (!std::isfinite(s.guidance_scale)) return invalid_argument("generate: guidance_scale is not a finite number");
  if (r.max_sequence_length < 1 || r.max_sequence_length > 512)
    return invalid_argument("generate: max_sequence_length must be in 1..512, not " +
                            std::to_string(r.max_sequence_length));
  const int multiple = size_multiple();
  const int64_t limit = tcfg.pos_embed_max_size * multiple;
  for (auto [what, v] : {std::pair{"width", s.width}, std::pair{"height", s.height}}) {
    if (v <= 0 || v % multiple != 0)
      return invalid_argument("generate: " + std::string(what) + " " + std::to_string(v) + " is not a positive multiple of " +
                              std::to_string(multiple) + " (the VAE's scale factor times the patch size)");
    if (v > limit)
      return invalid_argument("generate: " + std::string(what) + " " + std::to_string(v) + " is beyond " + name +
                              "'s limit of " + std::to_string(limit) + " (pos_embed_max_size " +
                              std::to_string(tcfg.pos_embed_max_size) + " patches)");
  }
  return {};
}

Expected<GenerateResult> Pipeline::Impl::run(const GenerateRequest& request, const sd3::RunOverrides& overrides) {
  const auto start = WallClock::now();
  const Settings s = settings(request);
  TP_TRY(check(request, s));
  auto cancelled_now = [&] { return request.cancel && request.cancel->load(std::memory_order_relaxed); };

  GenerateResult result;
  result.steps = s.steps;
  result.guidance_scale = s.guidance_scale;
  const bool cfg = s.guidance_scale > 1.0;
  const int64_t prompts = static_cast<int64_t>(request.prompts.size());
  const int64_t batch = prompts * request.images_per_prompt;

  // The texts to encode: the negatives first when guiding, as diffusers batches them.
  std::vector<std::string> texts;
  if (cfg)
    for (int64_t i = 0; i < prompts; ++i)
      texts.push_back(request.negative_prompts.empty()       ? std::string()
                      : request.negative_prompts.size() == 1 ? request.negative_prompts[0]
                                                             : request.negative_prompts[i]);
  texts.insert(texts.end(), request.prompts.begin(), request.prompts.end());
  auto note_truncation = [&](const std::vector<TokenizedText>& toks, const char* encoder, int max) {
    for (size_t i = 0; i < toks.size(); ++i) {
      if (!toks[i].truncated) continue;
      std::string w = std::string(cfg && i < static_cast<size_t>(prompts) ? "negative prompt " : "prompt ") +
                      std::to_string(cfg ? i % prompts : i) + " was truncated to " + std::to_string(max) + " " +
                      encoder + " tokens";
      TP_LOG(kWarn, "pipeline", name << ": " << w);
      result.warnings.push_back(std::move(w));
    }
  };

  try {
    c10::InferenceMode inference;
    // ---- Text encoders, one lease at a time, so each may leave the device after.
    const auto encode_start = WallClock::now();
    at::Tensor embeds, pooled;
    {
      std::vector<at::Tensor> hidden, pools;
      at::ScalarType dtype = at::kFloat;
      at::Device device(at::kCPU);
      for (int e = 0; e < 2; ++e) {
        const ClipTokenizer& tok = e == 0 ? *tok1 : *tok2;
        std::vector<TokenizedText> toks;
        for (const auto& t : texts) toks.push_back(tok.encode(t, kClipLength));
        if (e == 0) note_truncation(toks, "CLIP", kClipLength);
        TP_ASSIGN_OR_RETURN(ModelLease lease, acquire(e == 0 ? te1 : te2, request, result.timings));
        TP_ASSIGN_OR_RETURN(sd3::TensorMap w, sd3::lease_tensors(lease));
        TP_ASSIGN_OR_RETURN(sd3::ClipTextEncoder enc,
                            named(sd3::ClipTextEncoder::bind(e == 0 ? clip1 : clip2, w, ""), e == 0 ? te1 : te2));
        if (e == 0) dtype = dtype_of(w), device = device_of(w);
        sd3::ClipOutput out = enc.forward(ids_tensor(toks, device_of(w)));
        hidden.push_back(out.penultimate.to(device, dtype));
        pools.push_back(out.pooled.to(device, dtype));
        if (cancelled_now()) return cancelled("generate: cancelled while encoding the prompt");
      }
      at::Tensor clip = at::cat(hidden, -1);
      at::Tensor t5_embeds;
      if (this->t5) {
        std::vector<TokenizedText> toks;
        for (const auto& t : texts) toks.push_back(tok3->encode(t, request.max_sequence_length));
        note_truncation(toks, "T5", request.max_sequence_length);
        TP_ASSIGN_OR_RETURN(ModelLease lease, acquire(te3, request, result.timings));
        TP_ASSIGN_OR_RETURN(sd3::TensorMap w, sd3::lease_tensors(lease));
        TP_ASSIGN_OR_RETURN(sd3::T5Encoder enc, named(sd3::T5Encoder::bind(*this->t5, w, ""), te3));
        t5_embeds = enc.forward(ids_tensor(toks, device_of(w))).to(device, dtype);
      } else {
        t5_embeds = at::zeros({clip.size(0), request.max_sequence_length, tcfg.joint_attention_dim},
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
    result.timings.encode_s = seconds_since(encode_start);
    if (cancelled_now()) return cancelled("generate: cancelled after encoding the prompt");

    // ---- Denoising.
    const auto denoise_start = WallClock::now();
    const int64_t vsf = vcfg.scale_factor();
    at::Tensor latents;
    {
      TP_ASSIGN_OR_RETURN(ModelLease lease, acquire(transformer, request, result.timings));
      TP_ASSIGN_OR_RETURN(sd3::TensorMap w, sd3::lease_tensors(lease));
      TP_ASSIGN_OR_RETURN(sd3::SD3Transformer net, named(sd3::SD3Transformer::bind(tcfg, w, ""), transformer));
      const at::Device device = device_of(w);
      const at::ScalarType dtype = embeds.scalar_type();
      embeds = embeds.to(device);
      pooled = pooled.to(device);
      const std::vector<int64_t> shape{batch, tcfg.in_channels, s.height / vsf, s.width / vsf};
      if (overrides.initial_latents.defined()) {
        if (overrides.initial_latents.sizes() != at::IntArrayRef(shape))
          return invalid_argument("generate: the initial latents have the wrong shape");
        latents = overrides.initial_latents.to(device, dtype);
      } else {
        at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(request.seed);
        latents = at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat)).to(device, dtype);
      }
      const int seq = static_cast<int>((s.height / vsf / tcfg.patch_size) * (s.width / vsf / tcfg.patch_size));
      const sd3::FlowMatchSchedule schedule = sd3::flow_match_schedule(sched, s.steps, seq);
      for (int i = 0; i < s.steps; ++i) {
        if (cancelled_now()) return cancelled("generate: cancelled at step " + std::to_string(i + 1));
        at::Tensor input = cfg ? at::cat({latents, latents}, 0) : latents;
        at::Tensor t = at::full({input.size(0)}, schedule.timesteps[i], at::TensorOptions().dtype(at::kFloat).device(device));
        at::Tensor noise = net.forward(input, t, embeds, pooled);
        if (cfg) {
          std::vector<at::Tensor> parts = noise.chunk(2, 0);
          noise = parts[0] + s.guidance_scale * (parts[1] - parts[0]);
        }
        // Euler step, in fp32 as diffusers' scheduler does.
        const float dt = schedule.sigmas[i + 1] - schedule.sigmas[i];
        latents = (latents.to(at::kFloat) + noise * static_cast<double>(dt)).to(noise.scalar_type());
        if (request.on_step &&
            !request.on_step(StepProgress{i + 1, s.steps, seconds_since(start)}))
          return cancelled("generate: cancelled by the progress callback at step " + std::to_string(i + 1));
      }
    }
    if (overrides.final_latents) *overrides.final_latents = latents;
    result.timings.denoise_s = seconds_since(denoise_start);

    // ---- Decoding.
    const auto decode_start = WallClock::now();
    at::Tensor pixels;
    {
      TP_ASSIGN_OR_RETURN(ModelLease lease, acquire(vae, request, result.timings));
      TP_ASSIGN_OR_RETURN(sd3::TensorMap w, sd3::lease_tensors(lease));
      TP_ASSIGN_OR_RETURN(sd3::VaeDecoder net, named(sd3::VaeDecoder::bind(vcfg, w, ""), vae));
      at::Tensor image = net.decode_scaled(latents.to(device_of(w), dtype_of(w)));
      image = (image / 2 + 0.5).clamp(0, 1).permute({0, 2, 3, 1}).to(at::kFloat).cpu();
      pixels = (image * 255).round().to(at::kByte).contiguous();
    }
    for (int64_t i = 0; i < batch; ++i) {
      Image img;
      img.width = s.width;
      img.height = s.height;
      const uint8_t* p = pixels[i].data_ptr<uint8_t>();
      img.rgb.assign(p, p + static_cast<size_t>(s.width) * s.height * 3);
      result.images.push_back(std::move(img));
    }
    result.timings.decode_s = seconds_since(decode_start);
  } catch (const c10::OutOfMemoryError& e) {
    return resource_exhausted(name + ": out of memory while generating: " + e.what_without_backtrace());
  } catch (const c10::Error& e) {
    return internal_error(name + ": torch failed while generating: " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return internal_error(name + ": generating failed: " + e.what());
  }
  result.timings.total_s = seconds_since(start);
  return result;
}

Pipeline::Pipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pipeline::~Pipeline() = default;

const std::string& Pipeline::name() const { return impl_->name; }
int Pipeline::default_width() const { return impl_->default_side(); }
int Pipeline::default_height() const { return impl_->default_side(); }
int Pipeline::size_multiple() const { return impl_->size_multiple(); }

Expected<GenerateResult> Pipeline::generate(const GenerateRequest& request) { return impl_->run(request, {}); }

Expected<std::unique_ptr<Pipeline>> Pipeline::create(ModelRegistry& registry, std::string_view model) {
  const RegistryConfig& config = registry.config();
  const PipelineConfig* p = config.find_pipeline(model);
  const std::string where = "pipeline '" + std::string(model) + "'";
  if (!p) {
    if (const ModelConfig* m = config.find(model)) {
      if (m->pipeline_type == "sd3")
        return failed_precondition(where + ": its networks are not registry models; create the registry from "
                                   "expand_pipeline_components(config)");
      return unimplemented(where + ": pipeline type '" + m->pipeline_type + "' is not supported (supported: sd3)");
    }
    return not_found(where + ": no such model in the registry");
  }
  auto impl = std::make_unique<Impl>(registry, p->name);
  for (auto [component, slot] : {std::pair{"text_encoder", &impl->te1}, std::pair{"text_encoder_2", &impl->te2},
                                 std::pair{"text_encoder_3", &impl->te3}, std::pair{"transformer", &impl->transformer},
                                 std::pair{"vae", &impl->vae}})
    if (const std::string* m = p->model_for(component)) *slot = *m;
  if (impl->te1.empty() || impl->te2.empty() || impl->transformer.empty() || impl->vae.empty())
    return not_found(where + ": a required network is missing from the registry config");

  auto folder = read_diffusers_folder(p->root);
  if (!folder) return make_error(folder.error().code, where + ": " + folder.error().message);
  TP_ASSIGN_OR_RETURN(impl->clip1, component_config<sd3::ClipConfig>(*folder, "text_encoder", sd3::parse_clip_config));
  TP_ASSIGN_OR_RETURN(impl->clip2, component_config<sd3::ClipConfig>(*folder, "text_encoder_2", sd3::parse_clip_config));
  if (!impl->te3.empty()) {
    TP_ASSIGN_OR_RETURN(impl->t5, component_config<sd3::T5Config>(*folder, "text_encoder_3", sd3::parse_t5_config));
  }
  TP_ASSIGN_OR_RETURN(impl->tcfg, component_config<sd3::TransformerConfig>(*folder, "transformer",
                                                                            sd3::parse_transformer_config));
  TP_ASSIGN_OR_RETURN(impl->vcfg, component_config<sd3::VaeConfig>(*folder, "vae", sd3::parse_vae_config));
  TP_ASSIGN_OR_RETURN(impl->sched, component_config<sd3::FlowMatchConfig>(*folder, "scheduler",
                                                                           sd3::parse_flow_match_config));

  // The networks must fit together.
  const auto& t = impl->tcfg;
  const std::string folder_name = p->root.string();
  if (impl->clip1.projection_dim + impl->clip2.projection_dim != t.pooled_projection_dim)
    return invalid_argument(where + ": the text encoders' projections (" + std::to_string(impl->clip1.projection_dim) +
                            " + " + std::to_string(impl->clip2.projection_dim) +
                            ") do not add up to the transformer's pooled_projection_dim (" +
                            std::to_string(t.pooled_projection_dim) + ") in " + folder_name);
  if (impl->clip1.hidden_size + impl->clip2.hidden_size > t.joint_attention_dim)
    return invalid_argument(where + ": the CLIP hidden sizes exceed the transformer's joint_attention_dim in " + folder_name);
  if (impl->t5 && impl->t5->d_model != t.joint_attention_dim)
    return invalid_argument(where + ": T5's d_model (" + std::to_string(impl->t5->d_model) +
                            ") differs from the transformer's joint_attention_dim (" +
                            std::to_string(t.joint_attention_dim) + ") in " + folder_name);
  if (impl->vcfg.latent_channels != t.in_channels || t.out_channels != t.in_channels)
    return invalid_argument(where + ": the VAE's latent_channels (" + std::to_string(impl->vcfg.latent_channels) +
                            ") differ from the transformer's in/out channels in " + folder_name);

  // The model's sampling defaults, when it names them (no file: diffusers').
  const std::filesystem::path defaults_file = p->root / "generation_defaults.json";
  if (auto text = detail::read_text_file(defaults_file, kMaxDefaultsBytes)) {
    auto defaults = sd3::parse_generation_defaults(*text, defaults_file.string());
    if (!defaults) return make_error(defaults.error().code, where + ": " + defaults.error().message);
    impl->defaults = *defaults;
  } else if (text.error().code != ErrorCode::kNotFound) {
    return tl::unexpected(text.error());
  }

  // Tokenizers.
  TP_ASSIGN_OR_RETURN(ClipTokenizer tok1, ClipTokenizer::load(p->root / "tokenizer"));
  TP_ASSIGN_OR_RETURN(ClipTokenizer tok2, ClipTokenizer::load(p->root / "tokenizer_2"));
  impl->tok1.emplace(std::move(tok1));
  impl->tok2.emplace(std::move(tok2));
  if (impl->t5) {
    TP_ASSIGN_OR_RETURN(T5Tokenizer tok3, T5Tokenizer::load(p->root / "tokenizer_3"));
    impl->tok3.emplace(std::move(tok3));
  }
  return std::unique_ptr<Pipeline>(new Pipeline(std::move(impl)));
}

}  // namespace v0

namespace sd3 {

Expected<TensorMap> lease_tensors(const ModelLease& lease) {
  auto* weights = dynamic_cast<const TensorWeights*>(&lease.weights());
  if (!weights)
    return failed_precondition("model '" + lease.name() + "' is not backed by real tensors (a simulated backend?)");
  return torch_bridge::tensor_views(*weights);
}

Expected<GenerateResult> generate(Pipeline& pipeline, const GenerateRequest& request, const RunOverrides& overrides) {
  return PipelineAccess::impl(pipeline).run(request, overrides);
}

}  // namespace sd3
}  // namespace tp
