#include "pipeline/common/folder_reader.h"

namespace tp::nn {

Expected<ComponentConfig> component_config(const DiffusersFolder& folder, const char* component) {
  const DiffusersComponent* c = folder.find(component);
  if (!c || c->config_file.empty())
    return not_found(folder.root.string() + ": component '" + component + "' has no config");
  return ComponentConfig{&c->config, (c->folder / c->config_file).string()};
}

Expected<SchedulerConfig> scheduler_config(const DiffusersFolder& folder) {
  TP_ASSIGN_OR_RETURN(ComponentConfig c, component_config(folder, "scheduler"));
  SchedulerConfig s{*c.json, c.origin};
  const std::string& listed = folder.find("scheduler")->class_name;
  if (!listed.empty() && s.json.is_object()) s.json["_class_name"] = listed;
  return s;
}

}  // namespace tp::nn
