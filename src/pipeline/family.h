// Private (pipeline): what a pipeline family (SD3, Flux, SDXL)
// provides, and the one table that registers the families (families.cpp).
//
// A family is a folder under src/pipeline/ with:
//   - its networks' component names and diffusers classes (NetworkSpec), which
//     expand_pipeline_components turns into one registry model each;
//   - describe(): the torch-free reading of its folder into a PipelineSpec
//     (configs, tokenizers, scheduler, defaults) and the checks that join them;
// and, on the torch side, a runner factory registered in runners.cpp
// (pipeline/runner.h) that generates from the spec. Torch-free: this table is
// part of twistedpic_pipeline_spec. docs/architecture.md says how to add one.
//
// Threading: the table is immutable; the functions are safe from any thread.
#pragma once

#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "pipeline/spec.h"
#include "twistedpic/config.h"
#include "weights/diffusers_folder.h"
#include "weights/safetensors.h"
#include "weights/tensor_selection.h"

namespace tp {
inline namespace v0 {

struct NetworkSpec {
  const char* component;   // the folder and model_index.json key: "transformer"
  const char* class_name;  // the diffusers / transformers class implemented for it
  bool required = true;    // an absent optional network is simply not used (SD3 without T5)
  bool text_encoder = false;  // leaves the device after encoding under ExpandOptions::text_encoders_unload_after
  bool denoiser = false;      // carries the model's workspace_bytes
};

struct PipelineFamily {
  std::string_view pipeline_type;                  // "sd3": the config's pipeline_type
  std::span<const std::string_view> folder_classes;  // model_index.json's _class_name values it runs
  std::span<const NetworkSpec> networks;           // in load order
  // Reads the spec from `folder` (already read once). Errors name `where`.
  Expected<std::shared_ptr<const PipelineSpec>> (*describe)(const DiffusersFolder& folder, const std::string& where);
  // The GenerateRequest::options keys its runner reads ("true_cfg_scale");
  // Pipeline::generate refuses any other key with kUnimplemented.
  std::span<const std::string_view> request_options = {};
  // Single-file checkpoints (ModelConfig::checkpoint): for each network (by
  // component), which tensors of the checkpoint `file`, whose header is
  // `header`, it reads and under which names (those of its folder's files),
  // from `spec` (what describe() read). Errors name the file, the part and
  // the tensor. nullptr: the family reads no single-file checkpoints.
  Expected<std::map<std::string, std::shared_ptr<const TensorSelection>>> (*checkpoint)(
      const PipelineSpec& spec, const SafetensorsHeader& header, const std::string& file) = nullptr;
};

// The family of `pipeline_type`, or nullptr.
const PipelineFamily* find_family(std::string_view pipeline_type);
// "sd3" (every registered pipeline_type, for messages).
std::string family_names();
// The family that runs model_index.json's `class_name` ("FluxPipeline"), or nullptr.
const PipelineFamily* find_family_for_class(std::string_view class_name);
// "StableDiffusion3Pipeline (sd3), FluxPipeline (flux)", for messages.
std::string folder_class_names();
// Whether some family reads the request option `key` (the C ABI's
// tp_request_set_option answers TP_UNIMPLEMENTED for any other).
bool known_request_option(std::string_view key);

}  // namespace v0
}  // namespace tp
