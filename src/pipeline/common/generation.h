// Private (pipeline, torch): what every family's generate() does around its
// networks: checking the request, the texts to encode, leases with their
// waiting time and cancellation, progress, tokenization, and turning decoded
// pixels into images. Families keep only what is theirs (pipeline/<family>/).
//
// Threading: a RunContext belongs to one generate() call.
#pragma once

#include <ATen/Tensor.h>
#include <ATen/core/Generator.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "pipeline/common/activation_estimate.h"
#include "pipeline/common/bound_network.h"
#include "pipeline/common/network_configs.h"
#include "pipeline/common/scheduler.h"
#include "pipeline/runner.h"
#include "pipeline/spec.h"
#include "text/tokenizer.h"
#include "twistedpic/pipeline.h"

namespace tp::nn {

using WallClock = std::chrono::steady_clock;
double seconds_since(WallClock::time_point t);

// The sampling settings of a request, the model's defaults filling what it leaves unset.
struct Settings {
  int width = 0, height = 0, steps = 0;
  double guidance_scale = 0;
  int max_sequence_length = 0;
};

// The request's settings, the model's defaults filling what it leaves at 0 (or unset).
Settings settings_of(const GenerateRequest& request, int default_width, int default_height,
                     const GenerationDefaults& defaults);

// The checks every family makes: prompts, negative prompts, images per prompt,
// steps, guidance and max_sequence_length. Sizes are the family's to check.
Status check_request(const GenerateRequest& request, const Settings& settings);

// The texts to encode: the negative prompts first when guiding (as diffusers
// batches them), then the prompts.
std::vector<std::string> texts_to_encode(const GenerateRequest& request, bool guided);

class RunContext {
 public:
  RunContext(ModelRegistry& registry, const std::string& pipeline, const GenerateRequest& request,
             GenerateResult& result, const RunOverrides* overrides = nullptr);

  // Leases `model` (its wait counted in timings.acquire_s, cancellable) and
  // its network `Net`, bound once per load. `workspace_bytes`: the request's
  // estimated activations on it (activation_estimate.h), which admission
  // keeps free beside the weights; recorded in result().workspace.
  template <class Net, class Config>
  Expected<std::pair<ModelLease, BoundNetwork<Net>>> lease(const std::string& model, const Config& config,
                                                           const std::string& key, uint64_t workspace_bytes = 0) {
    TP_ASSIGN_OR_RETURN(ModelLease l, acquire(model, workspace_bytes));
    TP_ASSIGN_OR_RETURN(BoundNetwork<Net> net, bind_lease<Net>(l, config, key));
    return std::pair<ModelLease, BoundNetwork<Net>>(std::move(l), std::move(net));
  }
  Expected<ModelLease> acquire(const std::string& model, uint64_t workspace_bytes = 0);

  // Where `model`'s activations will live, for the estimate: its dtype and
  // device as the registry lists them (the CPU when it names no CUDA device
  // and none is usable), with torch's intra-op threads.
  ActivationTarget activation_target(const std::string& model) const;

  bool cancelled() const;
  // Reports denoising step `step` of `steps` to on_step and on_progress;
  // false when a callback asks to stop.
  bool report_step(int step, int steps) const;
  // Reports the start of `stage` to on_progress; false when it asks to stop.
  bool report_stage(Stage stage, int steps, std::string_view model = {}) const;
  double elapsed_s() const { return seconds_since(start_); }

  // Tokenizes `texts` to `length` ids, each truncation noted as a warning
  // naming `encoder` (when `warn`); returns the (B, length) ids on `device`.
  template <class Tokenizer>
  at::Tensor token_ids(const Tokenizer& tokenizer, const std::vector<std::string>& texts, int length,
                       const char* encoder, bool warn, at::Device device) {
    std::vector<TokenizedText> tokens;
    for (const auto& t : texts) tokens.push_back(tokenizer.encode(t, length));
    if (warn) note_truncation(tokens, encoder, length);
    return ids_tensor(tokens, device);
  }

  const GenerateRequest& request() const { return request_; }
  GenerateResult& result() { return result_; }

 private:
  void note_truncation(const std::vector<TokenizedText>& tokens, const char* encoder, int length);
  static at::Tensor ids_tensor(const std::vector<TokenizedText>& tokens, at::Device device);

  ModelRegistry& registry_;
  const std::string& pipeline_;
  const GenerateRequest& request_;
  GenerateResult& result_;
  const RunOverrides* const overrides_;
  const WallClock::time_point start_;
};

// Decoded images (B, 3, H, W) in [-1, 1] -> RGB8 images.
std::vector<Image> to_images(const at::Tensor& decoded);

// Runs `body`, turning a torch exception into an error naming `pipeline`:
// out of memory is kResourceExhausted (is_out_of_memory() tells it apart
// from an admission refusal), anything else kInternal.
template <class F>
Expected<GenerateResult> guard_torch(const std::string& pipeline, F&& body);
Error torch_error(const std::string& pipeline, std::exception_ptr e);
// Whether `e` is torch_error's out of memory (an allocation that failed while
// generating), not a registry refusal.
bool is_out_of_memory(const Error& e);

template <class F>
Expected<GenerateResult> guard_torch(const std::string& pipeline, F&& body) {
  try {
    return body();
  } catch (...) {
    return tl::unexpected(torch_error(pipeline, std::current_exception()));
  }
}

// The initial noise: `given` when defined (it must have `shape`), else drawn
// in fp32 on the CPU from `seed`, as torch.Generator().manual_seed(seed) does,
// so that an image does not depend on the device; then on `device` in `dtype`.
Expected<at::Tensor> initial_noise(const std::vector<int64_t>& shape, const at::Tensor& given, uint64_t seed,
                                   at::Device device, at::ScalarType dtype);

// A CPU generator in the state of torch.Generator("cpu").manual_seed(seed).
at::Generator seeded_cpu_generator(uint64_t seed);

// The initial noise drawn from `generator` (a CPU generator; see
// seeded_cpu_generator), so that a sampler can go on drawing from the same
// stream, as diffusers' pipelines do with one generator (Euler ancestral):
// `given` when defined (nothing is drawn), else randn(shape) in `draw_dtype`
// on the CPU, then on `device` in `dtype`. diffusers' randn_tensor draws in the
// latents' dtype: pass draw_dtype = dtype to match it bit for bit.
Expected<at::Tensor> initial_noise(const std::vector<int64_t>& shape, const at::Tensor& given, at::Generator& generator,
                                   at::Device device, at::ScalarType dtype, at::ScalarType draw_dtype = at::kFloat);

// The flow-matching Euler loop of SD3 and Flux. At step i, `predict(input, i)`
// gives the velocity for `input`: the latents, twice over when `cfg` (the
// negative half first, as texts_to_encode orders them), whose halves are then
// mixed by `cfg_scale`. The Euler step runs in fp32, as diffusers' scheduler
// does. Cancellation is checked before each step; progress is reported after.
Expected<at::Tensor> flow_match_euler(const RunContext& ctx, const Schedule& schedule, at::Tensor latents, bool cfg,
                                      double cfg_scale,
                                      const std::function<at::Tensor(const at::Tensor& input, int step)>& predict);

// The last stage of every family: reports kDecode, leases the VAE `model`
// (bound as `key`), decodes `latents` (scaled, as the denoiser leaves them, in
// the VAE's layout), and fills result.images and the decode and total timings.
// `workspace_bytes`: the decode's estimated activations (vae_decode_activation_bytes).
Status decode_images(RunContext& ctx, const std::string& model, const VaeConfig& config, const std::string& key,
                     const at::Tensor& latents, int steps, GenerateResult& result, uint64_t workspace_bytes = 0);

}  // namespace tp::nn
