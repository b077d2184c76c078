// twistedpic: what the library was built with and what it can use right now.
//
// Threading: safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "twistedpic/expected.h"
#include "twistedpic/export.h"
#include "twistedpic/registry.h"

namespace tp {
inline namespace v0 {

// A device default_registry_options() places models on.
struct RuntimeDevice {
  std::string name;          // "cuda:0", "cuda:1"; "cpu" without a usable GPU
  uint64_t total_bytes = 0;  // the GPU's memory; the CPU device's budget (half the RAM)
  uint64_t free_bytes = 0;   // free now, as the driver (or the CPU device's budget) says
};

struct RuntimeInfo {
  std::string version;             // twistedpic's version, "0.1.0"
  std::string torch_version;       // LibTorch's, "2.11.0"
  std::string torch_cuda_version;  // the CUDA version torch was built for, "13.0"; empty for CPU builds
  bool torch_cuda_compiled = false;
  bool cuda_available = false;     // a CUDA device can be used now
  int cuda_device_count = 0;
  std::string cuda_unavailable_reason;  // why not, when !cuda_available
  // The devices default_registry_options() uses, in order: every visible
  // CUDA device, or the CPU device alone where none is usable.
  std::vector<RuntimeDevice> devices;
};

TP_EXPORT RuntimeInfo runtime_info();

// Registry options on real weights over every usable CUDA device: one
// RegistryOptions::devices entry per GPU ("cuda:0", "cuda:1", ...), each with
// its TensorWeightBackend (pinned staging and device scratch pools), its
// memory monitor, and as its clean-up step emptying torch's CUDA caching
// allocator (activations) and trimming the backend's scratch pool. Without a
// usable GPU: the CPU device alone, with a budget of half the physical RAM.
// The single-device fields backend and monitor repeat the first device
// (clean_caches is left empty: it is per device).
TP_EXPORT Expected<RegistryOptions> default_registry_options();
// The same on one device: the CUDA device `cuda_device` when it is usable,
// else the CPU device.
TP_EXPORT Expected<RegistryOptions> default_registry_options(int cuda_device);

// Returns cached, unused blocks of torch's CUDA caching allocator to the
// driver (on every device: torch empties them all at once). A no-op without
// CUDA.
TP_EXPORT void empty_torch_cuda_cache();

}  // namespace v0
}  // namespace tp
