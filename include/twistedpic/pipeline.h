// twistedpic: text-to-image generation with Stable Diffusion 3 / 3.5 and
// FLUX.1 [dev] / [schnell], natively in LibTorch, from a diffusers folder (or a
// Hugging Face id in the local cache).
//
// Each network of a pipeline (SD3: the CLIP-L and CLIP-G text encoders, the
// optional T5 encoder, the transformer, the VAE; Flux: CLIP-L, T5, the
// transformer, the VAE) is its own model in the registry, so
// policies move them separately: the text encoders can leave the device after
// encoding while the transformer stays, as diffusers' model offload does. A
// network that two configured pipelines share (weights of the same bytes, even
// in other folders, in the same dtype on the same device) is one registry
// model, loaded once.
//
//   TP_ASSIGN_OR_RETURN(tp::RegistryConfig config, tp::load_registry_config("models.json"));
//   TP_ASSIGN_OR_RETURN(config, tp::expand_pipeline_components(std::move(config)));
//   TP_ASSIGN_OR_RETURN(auto options, tp::default_registry_options());
//   TP_ASSIGN_OR_RETURN(auto registry, tp::ModelRegistry::create(config, options));
//   TP_ASSIGN_OR_RETURN(auto pipeline, tp::Pipeline::create(*registry, "sd35_medium"));
//   tp::GenerateRequest request;
//   request.prompts = {"a red circle on a white background"};
//   TP_ASSIGN_OR_RETURN(tp::GenerateResult result, pipeline->generate(request));
//   TP_TRY(tp::write_png(result.images[0], "out.png"));
//
// Threading: Pipeline::generate may be called from several threads at once
// (each call takes its own leases). A Pipeline must not outlive its registry.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "twistedpic/config.h"
#include "twistedpic/expected.h"
#include "twistedpic/export.h"
#include "twistedpic/image.h"
#include "twistedpic/registry.h"

namespace tp {
inline namespace v0 {

// Replaces every model of a supported pipeline_type ("sd3") in `config` by
// one registry model per network, named "<model>/<component>"
// ("sd3/transformer"), and records the mapping in config.pipelines. Each
// pipeline's folder is read here, once: the networks' configs, the tokenizers
// and the sampling defaults are checked to fit together and kept in the
// config, so Pipeline::create reads nothing from disk. Networks that several
// pipelines share become one model, named after the first pipeline that uses
// it. The networks inherit the model's dtype, device, priority, pinning,
// eagerness and policy overrides; the denoiser gets its workspace_bytes.
// Models of other pipeline types are kept as they are.
// Errors: kNotFound for a missing folder, component or tokenizer;
// kInvalidArgument for a folder that is not a runnable pipeline of its type,
// or networks that do not fit together; kUnimplemented for a network class or
// option not implemented.
struct ExpandOptions {
  // Where the text encoders go when their lease ends, overriding the model's
  // policy: Tier::kHost frees the device for the transformer after encoding,
  // as diffusers' model offload does, and brings them back at PCIe speed.
  // Default: the model's policy.
  std::optional<Tier> text_encoders_unload_after;
};
[[nodiscard]] TP_EXPORT Expected<RegistryConfig> expand_pipeline_components(RegistryConfig config,
                                                                           const ExpandOptions& options = {});

// The limits of one generate() call; GenerateRequest's comments refer to them.
inline constexpr int kMaxSteps = 1000;           // denoising steps
inline constexpr int kMaxImagesPerCall = 64;     // prompts x images_per_prompt
inline constexpr int kMaxSequenceLength = 512;   // T5 tokens

// What a generate() call is doing.
enum class Stage {
  kEncode = 0,   // running the text encoders
  kDenoise = 1,  // the denoising steps
  kDecode = 2,   // the VAE
  kWaiting = 3,  // waiting for a network to load (or for room on the device)
};

// Progress of one generate() call.
struct StepProgress {
  int step = 0;   // 1-based while denoising; 0 in the other stages
  int steps = 0;  // the denoising steps of the call
  double elapsed_s = 0;  // since the call began
  Stage stage = Stage::kDenoise;
};

struct GenerateRequest {
  // One image per prompt and images_per_prompt. At least one prompt.
  std::vector<std::string> prompts;
  // Empty (""), one for every prompt, or one per prompt.
  std::vector<std::string> negative_prompts;
  int images_per_prompt = 1;
  // Pixels; 0: the model's default (the transformer's sample size times the
  // VAE's scale factor). Multiples of the VAE scale times the patch size.
  int width = 0, height = 0;
  // Denoising steps, 1..1000. 0: the model's default, from the optional
  // generation_defaults.json in its folder ({"num_inference_steps": N,
  // "guidance_scale": G}), else 28 as in diffusers.
  int steps = 0;
  // Classifier-free guidance; 1 or less turns it off. Unset: the model's
  // default (as for steps), else 7.
  std::optional<double> guidance_scale;
  // The initial noise comes from one CPU generator seeded with `seed`, so an
  // image does not depend on the device, and equals diffusers' for
  // generator=torch.Generator().manual_seed(seed) in fp32.
  uint64_t seed = 0;
  // T5 tokens, 1..512; CLIP always takes 77. 0: the model's default, as in
  // diffusers: 256 for SD3, 512 for Flux. FLUX.1 [schnell]-style models (no
  // guidance embedding) take at most 256, and default to it.
  int max_sequence_length = 0;
  // Options only some pipeline types read, by name, as text (the C ABI's
  // tp_request_set_option). Flux: "true_cfg_scale", a number (default 1);
  // above 1 with a negative prompt, the transformer also runs on the negative
  // prompt and the two predictions are mixed, as diffusers' FluxPipeline does.
  // A key the pipeline's type does not read is kUnimplemented; a bad value is
  // kInvalidArgument.
  std::map<std::string, std::string> options;
  // Called after every denoising step; returning false cancels the call (kCancelled).
  std::function<bool(const StepProgress&)> on_step;
  // Called at every stage: when encoding starts, before waiting for a network
  // that is not on the device (kWaiting, with the network's registry name in
  // `model`), after every denoising step, and when decoding starts. Returning
  // false cancels the call. Called on the generating thread.
  std::function<bool(const StepProgress&, std::string_view model)> on_progress;
  // Set by another thread to cancel; checked between steps and networks.
  const std::atomic<bool>* cancel = nullptr;
};

struct GenerateTimings {
  double encode_s = 0, denoise_s = 0, decode_s = 0, total_s = 0;
  double acquire_s = 0;  // waiting for networks to load (part of the others)
};

// One network the call leased, with the activation bytes the pipeline
// estimated it would need beside the weights (what it asked admission to
// keep free: AcquireOptions::workspace_bytes).
struct NetworkWorkspace {
  std::string model;
  uint64_t workspace_bytes = 0;
};

struct GenerateResult {
  std::vector<Image> images;  // prompt-major: all images of prompts[0] first
  GenerateTimings timings;
  std::vector<NetworkWorkspace> workspace;  // per lease, in the order they were taken
  std::vector<std::string> warnings;  // e.g. a truncated prompt
  // The settings the call ran with, the model's defaults filled in.
  int width = 0, height = 0;
  int steps = 0;
  double guidance_scale = 0;
  uint64_t seed = 0;
};

struct RunOverrides;  // internal (the parity tests' hook)

class TP_EXPORT Pipeline {
 public:
  // The pipeline `model` of `registry` (after expand_pipeline_components),
  // built from what that read; reads no file and loads no weights.
  // Errors: kNotFound for an unknown pipeline; kFailedPrecondition for a
  // registry not made from expand_pipeline_components' result;
  // kUnimplemented for an unsupported pipeline type.
  // REQUIRES: `registry` outlives the pipeline.
  static Expected<std::unique_ptr<Pipeline>> create(ModelRegistry& registry, std::string_view model);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Errors: kInvalidArgument for bad sizes, empty prompts or mismatched
  // negative prompts; kCancelled; the registry's errors when a network
  // cannot be loaded (kResourceExhausted with its numbers); kInternal for a
  // torch failure. Nothing stays leased after a failure.
  // When an allocation fails (out of memory), the cached blocks go back to
  // the driver and the unleased models move to the pinned host tier, and the
  // call tries once more (progress restarts; a warning says so); out of
  // memory again is kResourceExhausted with the device's numbers.
  Expected<GenerateResult> generate(const GenerateRequest& request);

  const std::string& name() const;
  // The configured pipeline_type: "sd3", "flux".
  const std::string& pipeline_type() const;
  int default_width() const;
  int default_height() const;
  // Sizes must be multiples of this.
  int size_multiple() const;

 private:
  struct Impl;
  friend Expected<GenerateResult> generate_with_overrides(Pipeline&, const GenerateRequest&,
                                                          const RunOverrides&);  // internal: parity tests
  explicit Pipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace v0
}  // namespace tp
