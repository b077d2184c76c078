// twistedpic: registry configuration, from a JSON file or built in code.
//
// A config declares the models and the memory policy. The seed server's
// IMAGE_MODELS dictionary maps onto "models" directly:
//
//   {
//     "preset": "max_gpu_availability",          // or "balanced", "max_speed"
//     "models": {
//       "sd3_large": {"model_id": "stabilityai/stable-diffusion-3.5-large", "pipeline_type": "sd3"},
//       "local":     {"path": "/models/sd35m", "pipeline_type": "sd3", "dtype": "fp16", "device": "cuda:1",
//                     "priority": 5, "pinned": true, "policy": {"idle_timeout_s": 300}},
//       "flux_dev":  {"model_id": "black-forest-labs/FLUX.1-dev",   // pipeline_type from model_index.json
//                     "components": {"transformer": "/models/flux1-dev.safetensors"},
//                     "component_devices": {"text_encoder_2": "cuda:1"}}
//     },
//     "policy": {"unload_after": "host", "idle_timeout_s": -1, "eager": false,
//                "lru": {"max_models": 2, "max_bytes": "24GiB"},
//                "pressure": {"min_free_bytes": "2GiB", "min_free_fraction": 0.1}, "clean_caches": true},
//     "host_budget_bytes": "32GiB", "device_budget_bytes": 0,   // 0: no budget, on every device
//     "devices": {"cuda:1": {"budget_bytes": "20GiB"}},          // per device, over device_budget_bytes
//     "admission_timeout_ms": 300000, "monitor_interval_ms": 250
//   }
//
// Sizes are integers (bytes) or strings with a unit ("512MiB", "2GB").
// Errors name the file, the field (as a dotted path) and the problem.
//
// Threading: value types; parse functions are pure and safe from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "twistedpic/dtype.h"
#include "twistedpic/expected.h"
#include "twistedpic/residency.h"

namespace tp {
inline namespace v0 {

// Per-model policy settings. Unset fields take the registry-wide defaults.
struct ModelPolicyOverrides {
  // Where a model goes when its last lease ends: kHost or kDisk; kDevice keeps it.
  std::optional<Tier> unload_after;
  // Seconds idle before unloading; 0: at once; negative: never (as in Ollama).
  std::optional<double> idle_timeout_s;
  // Where an idle timeout sends the model: kHost or kDisk.
  std::optional<Tier> idle_unload_to;
};

// ModelConfig::pipeline_type meaning "the family that runs the folder":
// expand_pipeline_components reads model_index.json's "_class_name"
// (StableDiffusion3Pipeline: "sd3", FluxPipeline: "flux"). A JSON config
// without "pipeline_type" means it.
inline constexpr const char* kDetectPipelineType = "auto";

// ModelConfig::device's default: the registry's first device
// (RegistryOptions::devices[0]).
inline constexpr const char* kDefaultModelDevice = "";
// ModelConfig::device meaning "the registry picks at each load from disk".
inline constexpr const char* kAutoModelDevice = "auto";

struct TensorSelection;  // internal: a renamed selection of a file's tensors

struct ModelConfig {
  std::string name;
  // A diffusers folder path, or a Hugging Face model id resolved in the local cache.
  std::string source;
  // "sd3", "flux", or kDetectPipelineType ("auto", a JSON config's default).
  std::string pipeline_type = "sd3";
  // Single-file weights for some of a pipeline's networks, by component (JSON
  // "components"): {"transformer": "/models/flux1-dev.safetensors"} takes the
  // transformer's weights from that file (diffusers' layout, or for Flux the
  // original Black Forest Labs one) and everything else, the network's
  // config.json included, from `source`. Default: none.
  std::map<std::string, std::string> component_files;
  // A single-file checkpoint (JSON "checkpoint") holding every network of the
  // pipeline in its original layout (SDXL: Stability's model.diffusion_model.*,
  // conditioner.embedders.*, first_stage_model.*, as ComfyUI reads it): each
  // network reads its part from this file, renamed, and `source` (a diffusers
  // folder, whose weight files may be absent) gives the configs, tokenizers and
  // scheduler. The checkpoint wins over weights in the folder. Default: none.
  std::string checkpoint;
  // Set by expand_pipeline_components on a network read from `checkpoint`:
  // which of the file's tensors it reads, under which names. Internal.
  // Default: null (every tensor of its files, as named).
  std::shared_ptr<const TensorSelection> tensor_selection;
  DType dtype = DType::kBF16;
  // The device the weights go to, by its registry name (RegistryDevice::name:
  // "cuda:1", "cpu"). "" (kDefaultModelDevice): the registry's first device.
  // "auto" (kAutoModelDevice): at each load from disk the registry picks the
  // device where the model fits with the fewest and cheapest evictions, then
  // the one with the most usable memory; a model with a host copy reloads to
  // the device it was placed on. "cuda:0" on a registry of one device that
  // has another name (the CPU device, a simulated one) means that device, so
  // configs written for one GPU run anywhere. A name the registry lacks is
  // kInvalidArgument at ModelRegistry::create, naming the devices it has.
  std::string device = kDefaultModelDevice;
  // Per network of a pipeline, by component (JSON "component_devices"): the
  // device of that network, over `device` ({"text_encoder_2": "cuda:1"} puts
  // Flux's T5 on a second GPU and leaves the transformer on `device`). The
  // pipeline moves the text embeddings to the denoiser's device once per
  // request. A component the pipeline lacks is kInvalidArgument at
  // expand_pipeline_components. Default: none.
  std::map<std::string, std::string> component_devices;
  // Lower priorities are evicted first. Default: 0.
  int priority = 0;
  // A pinned model is never evicted by a policy (explicit unload still works).
  bool pinned = false;
  // Load at start (in priority order, within the budget). Default: the policy's `eager`.
  std::optional<bool> eager;
  // Device bytes reserved for activations on top of the weights at admission.
  uint64_t workspace_bytes = 0;
  // Weight bytes when known up front (simulated backends); 0: ask the backend.
  uint64_t size_bytes = 0;
  ModelPolicyOverrides policy;
};

struct PolicyConfig {
  bool eager = false;
  Tier unload_after = Tier::kDevice;  // kDevice: keep after the last lease
  double idle_timeout_s = -1;         // negative: never
  Tier idle_unload_to = Tier::kHost;
  // LRU limits apply per device: at most lru_max_models models and
  // lru_max_bytes bytes on each of the registry's devices.
  size_t lru_max_models = 0;          // 0: no limit
  uint64_t lru_max_bytes = 0;         // 0: no limit
  uint64_t min_free_bytes = 0;        // pressure headroom on the device, counting other processes
  // The same headroom as a fraction of the device's total memory (JSON
  // policy.pressure.min_free_fraction, 0 <= f < 1); the larger of the two
  // applies. Kept free for other processes: admission leaves it free and
  // tick() evicts our unleased models while free memory is below it.
  // Default: 0; the max_gpu_availability preset: kAvailabilityHeadroom.
  double min_free_fraction = 0;
  bool clean_caches = true;           // empty the allocator caches after unloads

  // The headroom on a device of `total_bytes`: max(min_free_bytes,
  // min_free_fraction * total_bytes).
  uint64_t headroom_bytes(uint64_t total_bytes) const {
    const auto by_fraction = static_cast<uint64_t>(min_free_fraction * static_cast<double>(total_bytes));
    return min_free_bytes > by_fraction ? min_free_bytes : by_fraction;
  }
};

// max_gpu_availability's min_free_fraction: 10% of the device stays free for
// other processes (2.4 GiB of a 24 GiB card, 8 GiB of an 80 GiB one): room for
// another program's CUDA context (~0.5 GiB) and a small model or working set,
// scaling with the card, while our models still get 90% of it.
inline constexpr double kAvailabilityHeadroom = 0.10;

// A text-to-image pipeline whose networks are registry models of their own
// (made by expand_pipeline_components, pipeline.h).
struct PipelineSpec;  // internal

struct PipelineConfig {
  std::string name;           // the configured model
  std::string pipeline_type;  // "sd3"
  std::filesystem::path root; // its diffusers folder
  // component ("transformer", "vae", "text_encoder", ...) -> the registry
  // model that holds its weights
  std::vector<std::pair<std::string, std::string>> components;
  // What expand_pipeline_components read from the folder (opaque: the
  // networks' configs, tokenizers and defaults); Pipeline::create builds from it.
  std::shared_ptr<const PipelineSpec> spec;

  // The registry model of `component`, or nullptr.
  const std::string* model_for(std::string_view component) const {
    for (const auto& [c, m] : components)
      if (c == component) return &m;
    return nullptr;
  }
};

// Settings of one device of the registry (JSON "devices": {"cuda:1": {...}}).
struct DeviceConfig {
  // Device bytes twistedpic may hold there; nullopt: device_budget_bytes.
  std::optional<uint64_t> budget_bytes;
};

// RegistryConfig::admission_timeout's default (JSON admission_timeout_ms: 300000).
inline constexpr std::chrono::milliseconds kDefaultAdmissionTimeout{5 * 60 * 1000};

struct RegistryConfig {
  std::string preset;  // the preset this config started from, if any
  std::vector<ModelConfig> models;
  std::vector<PipelineConfig> pipelines;  // empty until expand_pipeline_components
  PolicyConfig policy;
  // Pinned host memory the host tier may keep. nullopt: half of physical RAM.
  std::optional<uint64_t> host_budget_bytes;
  // Device bytes twistedpic may hold on each device; 0: as much as is free.
  uint64_t device_budget_bytes = 0;
  // Per-device settings by device name; a name the registry lacks is
  // kInvalidArgument at ModelRegistry::create. Default: none.
  std::map<std::string, DeviceConfig, std::less<>> devices;
  // How long a load waits for device memory (leases to end, loads ahead of it
  // in the FIFO admission queue) before failing with kResourceExhausted.
  // 0: fail at once, no queue. Default: kDefaultAdmissionTimeout (5 minutes:
  // several generations' worth of waiting, short enough that a lease never
  // released surfaces as an error).
  std::chrono::milliseconds admission_timeout{kDefaultAdmissionTimeout};
  // How often the background thread checks pressure and timeouts.
  std::chrono::milliseconds monitor_interval{250};

  // The model named `name`, or nullptr.
  TP_EXPORT const ModelConfig* find(std::string_view name) const;
  // The pipeline named `name`, or nullptr.
  const PipelineConfig* find_pipeline(std::string_view name) const {
    for (const auto& p : pipelines)
      if (p.name == name) return &p;
    return nullptr;
  }
};

// The seed's three documented setups:
//   "max_gpu_availability": unload to host after each generation, clean caches,
//                           keep kAvailabilityHeadroom (10%) of the device free
//                           for other processes;
//   "balanced":             keep the model loaded, clean caches;
//   "max_speed":            keep everything, no cleaning.
// kInvalidArgument for another name.
TP_EXPORT Expected<PolicyConfig> policy_preset(std::string_view name);

// Parses a config document. `origin` names it in errors (a file name, or "<string>").
// Every error is kInvalidArgument and starts with "<origin>: ". A key given
// twice in one object (two models of one name, a field twice) is an error
// naming the key, not a silent "last one wins".
TP_EXPORT Expected<RegistryConfig> parse_registry_config(std::string_view json_text, std::string_view origin = "<string>");
// Reads and parses `file`: kNotFound when it does not exist; kInvalidArgument
// when it is a directory or another non-regular file (refused without
// blocking on a FIFO), over 16 MiB, or an invalid config. Errors name `file`.
TP_EXPORT Expected<RegistryConfig> load_registry_config(const std::filesystem::path& file);

// Checks a config built in code: unique, non-empty names, sane values.
TP_EXPORT Status validate_registry_config(const RegistryConfig& config);

// "512MiB" -> 536870912; plain integers are bytes (exact up to UINT64_MAX),
// fractions round to whole bytes. kInvalidArgument otherwise, and for a size
// that does not fit in uint64_t.
TP_EXPORT Expected<uint64_t> parse_byte_size(std::string_view text);

}  // namespace v0
}  // namespace tp
