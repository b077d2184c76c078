// The fuzz build's torch-free stand-in for src/torch/runtime.cpp.
//
// capi_fuzz compiles the C ABI shims (capi/src/*.cpp) straight into the fuzzer
// instead of linking twistedpic_c, which needs LibTorch (slow to build with
// clang here, and not instrumented). The shims call two functions of the torch
// library; this file defines them over the torch-free core:
//   - default_registry_options(): real weights (a TensorWeightBackend) on a CPU
//     device with a small budget, instead of the CUDA device or half the RAM;
//   - empty_torch_cuda_cache(): a no-op (there is no caching allocator here).
// Used only by the fuzzers; never part of a library.
#include "device/device.h"
#include "twistedpic/runtime.h"
#include "weights/tensor_weights.h"

namespace tp {
inline namespace v0 {

Expected<RegistryOptions> default_registry_options(int /*cuda_device*/) {
  auto device = std::make_shared<CpuDevice>(256ull << 20);
  TransferOptions transfer;
  transfer.chunk_bytes = 1ull << 20;
  transfer.readers = 2;
  RegistryOptions options;
  options.backend = std::make_shared<TensorWeightBackend>(device, transfer);
  options.monitor = std::shared_ptr<DeviceMonitor>(device, &device->monitor());
  options.clean_caches = empty_torch_cuda_cache;
  return options;
}

void empty_torch_cuda_cache() {}

}  // namespace v0
}  // namespace tp
