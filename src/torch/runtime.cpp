#include "twistedpic/runtime.h"

#include <ATen/Context.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <torch/version.h>

#include "twistedpic/log.h"
#include "device/device.h"
#include "weights/default_options.h"

#include "cuda/cuda_runtime.h"
#include "twistedpic/version.h"

namespace tp {
inline namespace v0 {

RuntimeInfo runtime_info() {
  RuntimeInfo info;
  info.version = TP_VERSION_STRING;
  info.torch_version = TORCH_VERSION;
  try {
    // CUDART_VERSION that libtorch_cuda was built with, e.g. 13000; throws when
    // torch has no CUDA library.
    long v = at::detail::getCUDAHooks().versionCUDART();
    info.torch_cuda_compiled = v > 0;
    if (v > 0) info.torch_cuda_version = std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
  } catch (const std::exception&) {
    info.torch_cuda_compiled = false;
  }
  auto count = cuda::device_count();
  info.cuda_available = count.has_value();
  info.cuda_device_count = count.value_or(0);
  if (!count) info.cuda_unavailable_reason = count.error().message;
  return info;
}

void empty_torch_cuda_cache() {
  if (!cuda::available()) return;
  try {
    c10::cuda::CUDACachingAllocator::emptyCache();
  } catch (const std::exception& e) {
    TP_LOG(kWarn, "torch", "emptying the CUDA caching allocator failed: " << e.what());
  }
}

Expected<RegistryOptions> default_registry_options(int cuda_device) {
  std::shared_ptr<Device> device;
  if (auto gpu = make_cuda_device(cuda_device); gpu) {
    device = std::move(*gpu);
  } else {
    TP_LOG(kInfo, "runtime", "no CUDA device (" << gpu.error().message << "): weights go to the CPU device");
    device = default_cpu_device();
  }
  RegistryOptions options = registry_options_on(std::move(device));
  options.clean_caches = empty_torch_cuda_cache;
  return options;
}

}  // namespace v0
}  // namespace tp
