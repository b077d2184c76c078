#include "pipeline/common/folder_reader.h"

namespace tp::nn {

Expected<ComponentConfig> component_config(const DiffusersFolder& folder, const char* component) {
  const DiffusersComponent* c = folder.find(component);
  if (!c || c->config_file.empty())
    return not_found(folder.root.string() + ": component '" + component + "' has no config");
  return ComponentConfig{&c->config, (c->folder / c->config_file).string()};
}

}  // namespace tp::nn
