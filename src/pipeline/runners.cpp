// The registered runners, one per family (family.h lists the families'
// torch-free halves in families.cpp).
#include "pipeline/runner.h"
#include "pipeline/flux/flux_pipeline.h"
#include "pipeline/sd3/sd3_pipeline.h"
#include "pipeline/sdxl/sdxl_pipeline.h"

namespace tp {
inline namespace v0 {
namespace {

struct Runner {
  std::string_view pipeline_type;
  RunnerFactory make;
};

constexpr Runner kRunners[] = {
    {"sd3", &sd3::make_runner}, {"flux", &flux::make_runner}, {"sdxl", &sdxl::make_runner}};

}  // namespace

RunnerFactory find_runner(std::string_view pipeline_type) {
  for (const Runner& r : kRunners)
    if (r.pipeline_type == pipeline_type) return r.make;
  return nullptr;
}

}  // namespace v0
}  // namespace tp
