// The registered pipeline families: the one place a new family is added.
#include "pipeline/family.h"
#include "pipeline/sd3/sd3_spec.h"

namespace tp {
inline namespace v0 {
namespace {

constexpr const PipelineFamily* kFamilies[] = {&sd3::kFamily};

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

}  // namespace v0
}  // namespace tp
