#include "pipeline/common/generation.h"

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <cmath>

#include "pipeline/common/vae.h"
#include "twistedpic/log.h"

namespace tp::nn {

double seconds_since(WallClock::time_point t) { return std::chrono::duration<double>(WallClock::now() - t).count(); }

Settings settings_of(const GenerateRequest& r, int default_width, int default_height, const GenerationDefaults& d) {
  return {r.width ? r.width : default_width, r.height ? r.height : default_height, r.steps ? r.steps : d.steps,
          r.guidance_scale.value_or(d.guidance_scale),
          r.max_sequence_length ? r.max_sequence_length : d.max_sequence_length};
}

Status check_request(const GenerateRequest& r, const Settings& s) {
  if (r.prompts.empty()) return invalid_argument("generate: no prompts");
  if (!r.negative_prompts.empty() && r.negative_prompts.size() != 1 && r.negative_prompts.size() != r.prompts.size())
    return invalid_argument("generate: " + std::to_string(r.negative_prompts.size()) + " negative prompts for " +
                            std::to_string(r.prompts.size()) + " prompts (give none, one, or one per prompt)");
  const std::string max_images = std::to_string(kMaxImagesPerCall);
  if (r.images_per_prompt < 1 || r.images_per_prompt > kMaxImagesPerCall)
    return invalid_argument("generate: images_per_prompt must be in 1.." + max_images + ", not " +
                            std::to_string(r.images_per_prompt));
  if (r.prompts.size() * static_cast<size_t>(r.images_per_prompt) > static_cast<size_t>(kMaxImagesPerCall))
    return invalid_argument("generate: more than " + max_images + " images in one call");
  if (s.steps < 1 || s.steps > kMaxSteps)
    return invalid_argument("generate: steps must be in 1.." + std::to_string(kMaxSteps) + ", not " +
                            std::to_string(s.steps));
  if (!std::isfinite(s.guidance_scale)) return invalid_argument("generate: guidance_scale is not a finite number");
  if (s.max_sequence_length < 1 || s.max_sequence_length > kMaxSequenceLength)
    return invalid_argument("generate: max_sequence_length must be in 1.." + std::to_string(kMaxSequenceLength) +
                            ", not " + std::to_string(s.max_sequence_length));
  return {};
}

std::vector<std::string> texts_to_encode(const GenerateRequest& r, bool guided) {
  std::vector<std::string> texts;
  if (guided)
    for (size_t i = 0; i < r.prompts.size(); ++i)
      texts.push_back(r.negative_prompts.empty()       ? std::string()
                      : r.negative_prompts.size() == 1 ? r.negative_prompts[0]
                                                       : r.negative_prompts[i]);
  texts.insert(texts.end(), r.prompts.begin(), r.prompts.end());
  return texts;
}

RunContext::RunContext(ModelRegistry& registry, const std::string& pipeline, const GenerateRequest& request,
                       GenerateResult& result, const RunOverrides* overrides)
    : registry_(registry),
      pipeline_(pipeline),
      request_(request),
      result_(result),
      overrides_(overrides),
      start_(WallClock::now()) {}

ActivationTarget RunContext::activation_target(const std::string& model) const {
  ActivationTarget t;
  auto info = registry_.info(model);
  const DType dtype = info ? info->dtype : DType::kF32;
  t.elem_bytes = static_cast<int64_t>(dtype_size(dtype));
  // A model not placed yet ("auto") goes to a GPU when there is one.
  const std::string device = info ? info->device : std::string();
  t.cpu = device.empty() || device == kAutoModelDevice ? !at::hasCUDA() : device.rfind("cuda", 0) != 0;
  t.threads = at::get_num_threads();
  return t;
}

Expected<ModelLease> RunContext::acquire(const std::string& model, uint64_t workspace_bytes) {
  const auto start = WallClock::now();
  if (request_.on_progress) {
    auto info = registry_.info(model);
    if (info && info->state != ModelState::kResident && !report_stage(Stage::kWaiting, result_.steps, model))
      return tp::cancelled("generate: cancelled by the progress callback while waiting for '" + model + "'");
  }
  AcquireOptions options;
  options.cancel = request_.cancel;
  options.workspace_bytes = workspace_bytes;
  auto lease = registry_.acquire(model, options);
  result_.timings.acquire_s += seconds_since(start);
  if (!lease) return lease;
  TP_LOG(kDebug, "pipeline", pipeline_ << ": leased '" << model << "' with " << workspace_bytes
                                       << " bytes of estimated activations");
  result_.workspace.push_back({model, workspace_bytes});
  if (overrides_ && overrides_->on_lease) overrides_->on_lease(model, workspace_bytes);
  return lease;
}

bool RunContext::cancelled() const { return request_.cancel && request_.cancel->load(std::memory_order_relaxed); }

bool RunContext::report_step(int step, int steps) const {
  const StepProgress p{step, steps, elapsed_s(), Stage::kDenoise};
  if (request_.on_step && !request_.on_step(p)) return false;
  return !request_.on_progress || request_.on_progress(p, {});
}

bool RunContext::report_stage(Stage stage, int steps, std::string_view model) const {
  return !request_.on_progress || request_.on_progress(StepProgress{0, steps, elapsed_s(), stage}, model);
}

void RunContext::note_truncation(const std::vector<TokenizedText>& tokens, const char* encoder, int length) {
  // With guidance the negatives come first (texts_to_encode).
  const size_t prompts = request_.prompts.size();
  const bool guided = tokens.size() > prompts;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (!tokens[i].truncated) continue;
    std::string w = std::string(guided && i < prompts ? "negative prompt " : "prompt ") +
                    std::to_string(guided ? i % prompts : i) + " was truncated to " + std::to_string(length) + " " +
                    encoder + " tokens";
    TP_LOG(kWarn, "pipeline", pipeline_ << ": " << w);
    result_.warnings.push_back(std::move(w));
  }
}

at::Tensor RunContext::ids_tensor(const std::vector<TokenizedText>& texts, at::Device device) {
  const int64_t rows = static_cast<int64_t>(texts.size()), cols = static_cast<int64_t>(texts[0].ids.size());
  at::Tensor ids = at::empty({rows, cols}, at::kLong);
  for (int64_t r = 0; r < rows; ++r)
    std::copy(texts[r].ids.begin(), texts[r].ids.end(), ids.data_ptr<int64_t>() + r * cols);
  return ids.to(device);
}

std::vector<Image> to_images(const at::Tensor& decoded) {
  at::Tensor image = (decoded / 2 + 0.5).clamp(0, 1).permute({0, 2, 3, 1}).to(at::kFloat).cpu();
  at::Tensor pixels = (image * 255).round().to(at::kByte).contiguous();
  std::vector<Image> images;
  const int height = static_cast<int>(pixels.size(1)), width = static_cast<int>(pixels.size(2));
  for (int64_t i = 0; i < pixels.size(0); ++i) {
    Image img;
    img.width = width;
    img.height = height;
    const uint8_t* p = pixels[i].data_ptr<uint8_t>();
    img.rgb.assign(p, p + static_cast<size_t>(width) * height * 3);
    images.push_back(std::move(img));
  }
  return images;
}

namespace {
constexpr std::string_view kOutOfMemory = ": out of memory while generating: ";
}  // namespace

Error torch_error(const std::string& pipeline, std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const c10::OutOfMemoryError& e) {
    return Error{ErrorCode::kResourceExhausted, pipeline + std::string(kOutOfMemory) + e.what_without_backtrace()};
  } catch (const c10::Error& e) {
    return Error{ErrorCode::kInternal, pipeline + ": torch failed while generating: " + e.what_without_backtrace()};
  } catch (const std::exception& e) {
    return Error{ErrorCode::kInternal, pipeline + ": generating failed: " + e.what()};
  } catch (...) {
    return Error{ErrorCode::kInternal, pipeline + ": generating failed: an unknown exception"};
  }
}

bool is_out_of_memory(const Error& e) {
  return e.code == ErrorCode::kResourceExhausted && e.message.find(kOutOfMemory) != std::string::npos;
}

Expected<at::Tensor> initial_noise(const std::vector<int64_t>& shape, const at::Tensor& given, uint64_t seed,
                                   at::Device device, at::ScalarType dtype) {
  if (given.defined()) {
    if (given.sizes() != at::IntArrayRef(shape))
      return invalid_argument("generate: the initial latents have the wrong shape");
    return given.to(device, dtype);
  }
  at::Generator gen = seeded_cpu_generator(seed);
  return at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat)).to(device, dtype);
}

at::Generator seeded_cpu_generator(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

Expected<at::Tensor> initial_noise(const std::vector<int64_t>& shape, const at::Tensor& given, at::Generator& generator,
                                   at::Device device, at::ScalarType dtype, at::ScalarType draw_dtype) {
  if (given.defined()) {
    if (given.sizes() != at::IntArrayRef(shape))
      return invalid_argument("generate: the initial latents have the wrong shape");
    return given.to(device, dtype);
  }
  return at::randn(shape, generator, at::TensorOptions().dtype(draw_dtype).device(at::kCPU)).to(device, dtype);
}

Expected<at::Tensor> flow_match_euler(const RunContext& ctx, const Schedule& schedule, at::Tensor latents, bool cfg,
                                      double cfg_scale,
                                      const std::function<at::Tensor(const at::Tensor& input, int step)>& predict) {
  const int steps = static_cast<int>(schedule.timesteps.size());
  for (int i = 0; i < steps; ++i) {
    if (ctx.cancelled()) return cancelled("generate: cancelled at step " + std::to_string(i + 1));
    at::Tensor velocity = predict(cfg ? at::cat({latents, latents}, 0) : latents, i);
    if (cfg) {
      std::vector<at::Tensor> parts = velocity.chunk(2, 0);
      velocity = parts[0] + cfg_scale * (parts[1] - parts[0]);
    }
    const float dt = schedule.sigmas[static_cast<size_t>(i) + 1] - schedule.sigmas[static_cast<size_t>(i)];
    latents = (latents.to(at::kFloat) + velocity * static_cast<double>(dt)).to(velocity.scalar_type());
    if (!ctx.report_step(i + 1, steps))
      return cancelled("generate: cancelled by the progress callback at step " + std::to_string(i + 1));
  }
  return latents;
}

Status decode_images(RunContext& ctx, const std::string& model, const VaeConfig& config, const std::string& key,
                     const at::Tensor& latents, int steps, GenerateResult& result, uint64_t workspace_bytes) {
  const auto start = WallClock::now();
  if (!ctx.report_stage(Stage::kDecode, steps)) return cancelled("generate: cancelled by the progress callback");
  {
    TP_ASSIGN_OR_RETURN(auto net, ctx.lease<VaeDecoder>(model, config, key, workspace_bytes));
    result.images = to_images(net.second.net->decode_scaled(latents.to(net.second.device, net.second.dtype)));
  }
  result.timings.decode_s = seconds_since(start);
  result.timings.total_s = ctx.elapsed_s();
  return {};
}

}  // namespace tp::nn
