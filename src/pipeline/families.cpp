// The registered pipeline families: the one place a new family is added.
#include "pipeline/family.h"
#include "pipeline/flux/flux_spec.h"
#include "pipeline/sd3/sd3_spec.h"
#include "pipeline/sdxl/sdxl_spec.h"

namespace tp {
inline namespace v0 {
namespace {

constexpr const PipelineFamily* kFamilies[] = {&sd3::kFamily, &flux::kFamily, &sdxl::kFamily};

}  // namespace

const PipelineFamily* find_family(std::string_view pipeline_type) {
  for (const PipelineFamily* f : kFamilies)
    if (f->pipeline_type == pipeline_type) return f;
  return nullptr;
}

std::string family_names() {
  std::string names;
  for (const PipelineFamily* f : kFamilies) names += (names.empty() ? "" : ", ") + std::string(f->pipeline_type);
  return names;
}

const PipelineFamily* find_family_for_class(std::string_view class_name) {
  for (const PipelineFamily* f : kFamilies)
    for (std::string_view c : f->folder_classes)
      if (c == class_name) return f;
  return nullptr;
}

std::string folder_class_names() {
  std::string names;
  for (const PipelineFamily* f : kFamilies)
    for (std::string_view c : f->folder_classes)
      names += (names.empty() ? "" : ", ") + std::string(c) + " (" + std::string(f->pipeline_type) + ")";
  return names;
}

bool known_request_option(std::string_view key) {
  for (const PipelineFamily* f : kFamilies)
    for (std::string_view k : f->request_options)
      if (k == key) return true;
  return false;
}

}  // namespace v0
}  // namespace tp
