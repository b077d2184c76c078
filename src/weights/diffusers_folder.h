// Private (weights): reading a diffusers model folder.
//
// A diffusers folder holds model_index.json ({"_class_name": "StableDiffusion3Pipeline",
// "vae": ["diffusers", "AutoencoderKL"], "safety_checker": [null, null], ...})
// and one subfolder per component. A model component has config.json and its
// weights: one *.safetensors file or a sharded *.safetensors.index.json.
// Other components (schedulers, tokenizers, feature extractors) have their own
// *_config.json and no weights. Each config is read once, by the strict JSON
// reader (util/json.h), and kept parsed.
//
// Errors name the folder, the component and the problem: kNotFound for a
// missing model_index.json, component folder or weights; kInvalidArgument for
// malformed JSON or entries, ambiguous weights, and pickle-only weights (which
// twistedpic never executes; see check_weights_file_format).
//
// Threading: read_diffusers_folder() is safe from any thread; the result is a
// plain value.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "twistedpic/expected.h"
#include "twistedpic/export.h"

namespace tp {
inline namespace v0 {

struct DiffusersComponent {
  std::string name;                     // the key in model_index.json: "unet", "vae", "text_encoder", ...
  std::string library;                  // "diffusers", "transformers", ...
  std::string class_name;               // "AutoencoderKL", "CLIPTextModel", ...
  std::filesystem::path folder;         // root / name
  std::string config_file;              // "config.json", "scheduler_config.json", ...; empty when there is none
  nlohmann::json config;                // its contents, a JSON object; null when there is none
  std::filesystem::path weights_index;  // the *.safetensors.index.json when sharded, else empty
  std::vector<std::filesystem::path> weight_files;  // the file, or the index's shards; empty without config.json

  bool has_weights() const { return !weight_files.empty(); }
};

struct DiffusersFolder {
  std::filesystem::path root;
  std::string class_name;                      // "_class_name"
  std::string diffusers_version;               // "_diffusers_version", empty when absent
  std::vector<DiffusersComponent> components;  // the present ones, sorted by name
  std::vector<std::string> absent_components;  // listed as null or [null, null], sorted

  // The component called `name`, or nullptr.
  TP_EXPORT const DiffusersComponent* find(std::string_view name) const;
};

// Reads `root`/model_index.json and every component it lists. Weight files are
// chosen in this order: diffusion_pytorch_model.safetensors, model.safetensors,
// their .index.json, the folder's only *.safetensors.index.json, its only
// *.safetensors; several other candidates are ambiguous. Weight headers are
// not parsed here. With require_weights false, a component with a config.json
// but no weights is read with empty weight_files (a folder that gives only the
// configs of a single-file checkpoint's networks, ModelConfig::checkpoint).
[[nodiscard]] TP_EXPORT Expected<DiffusersFolder> read_diffusers_folder(const std::filesystem::path& root,
                                                                        bool require_weights = true);

}  // namespace v0
}  // namespace tp
