// Private (pipeline): what every family's describe() reads from a diffusers
// folder: a component's parsed config.json (with its path for messages), a
// network config parsed from it, and a tokenizer. Torch-free.
//
// Threading: pure functions over an already-read folder.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <string>

#include "twistedpic/expected.h"
#include "weights/diffusers_folder.h"

namespace tp::nn {

// A component's parsed config.json, with its path for messages.
struct ComponentConfig {
  const nlohmann::json* json;
  std::string origin;
};

// Errors: kNotFound when `component` is absent or has no config.
Expected<ComponentConfig> component_config(const DiffusersFolder& folder, const char* component);

// The scheduler's config as diffusers loads it: scheduler_config.json with
// "_class_name" set to the class model_index.json names for "scheduler"
// (from_pretrained follows model_index.json when the two disagree).
struct SchedulerConfig {
  nlohmann::json json;
  std::string origin;
};
// Errors: kNotFound when the folder has no scheduler config.
Expected<SchedulerConfig> scheduler_config(const DiffusersFolder& folder);

// `parse`(config, origin) over `component`'s config.
template <class Config, class Parse>
Expected<Config> parse_component(const DiffusersFolder& folder, const char* component, Parse parse) {
  TP_ASSIGN_OR_RETURN(ComponentConfig c, component_config(folder, component));
  return parse(*c.json, c.origin);
}

// Tokenizer::load(folder), shared.
template <class Tokenizer>
Expected<std::shared_ptr<const Tokenizer>> load_tokenizer(const std::filesystem::path& folder) {
  TP_ASSIGN_OR_RETURN(Tokenizer t, Tokenizer::load(folder));
  return std::make_shared<const Tokenizer>(std::move(t));
}

}  // namespace tp::nn
