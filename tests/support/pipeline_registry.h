// Test support (torch layer): a registry over the pipelines of a config, as
// a host builds one: parse, expand_pipeline_components, create.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "twistedpic/pipeline.h"
#include "twistedpic/runtime.h"

namespace tp::testing {

// {"models": {"<name>": {"path": "<folder>", "pipeline_type": "<type>", "dtype": "fp32"<extra>}}}:
// one pipeline in fp32; `extra` adds fields (", \"device\": \"cpu\"").
inline std::string one_pipeline_json(std::string_view name, std::string_view folder, std::string_view type,
                                     std::string_view extra = "") {
  return R"({"models": {")" + std::string(name) + R"(": {"path": ")" + std::string(folder) +
         R"(", "pipeline_type": ")" + std::string(type) + R"(", "dtype": "fp32")" + std::string(extra) + "}}}";
}

// The registry of config `json`, its pipelines expanded, on `options`
// (default: default_registry_options()).
inline Expected<std::unique_ptr<ModelRegistry>> pipeline_registry(std::string_view json,
                                                                  std::optional<RegistryOptions> options = {}) {
  TP_ASSIGN_OR_RETURN(RegistryConfig config, parse_registry_config(json));
  TP_ASSIGN_OR_RETURN(RegistryConfig expanded, expand_pipeline_components(std::move(config)));
  if (!options) {
    TP_ASSIGN_OR_RETURN(RegistryOptions defaults, default_registry_options());
    options = std::move(defaults);
  }
  return ModelRegistry::create(std::move(expanded), std::move(*options));
}

}  // namespace tp::testing
