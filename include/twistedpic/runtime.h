// twistedpic: what the library was built with and what it can use right now.
//
// Threading: safe from any thread.
#pragma once

#include <string>

#include "twistedpic/expected.h"
#include "twistedpic/export.h"
#include "twistedpic/registry.h"

namespace tp {
inline namespace v0 {

struct RuntimeInfo {
  std::string version;             // twistedpic's version, "0.1.0"
  std::string torch_version;       // LibTorch's, "2.11.0"
  std::string torch_cuda_version;  // the CUDA version torch was built for, "13.0"; empty for CPU builds
  bool torch_cuda_compiled = false;
  bool cuda_available = false;     // a CUDA device can be used now
  int cuda_device_count = 0;
  std::string cuda_unavailable_reason;  // why not, when !cuda_available
};

TP_EXPORT RuntimeInfo runtime_info();

// Registry options on real weights: the CUDA device `cuda_device` when one is
// usable, else the CPU device with a budget of half the physical RAM; a
// TensorWeightBackend over it; its memory monitor; and, as the clean-up step,
// emptying torch's CUDA caching allocator (activations).
TP_EXPORT Expected<RegistryOptions> default_registry_options(int cuda_device = 0);

// Returns cached, unused blocks of torch's CUDA caching allocator to the
// driver. A no-op without CUDA.
TP_EXPORT void empty_torch_cuda_cache();

}  // namespace v0
}  // namespace tp
