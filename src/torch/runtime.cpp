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
  for (int i = 0; i < info.cuda_device_count; ++i) {
    auto mem = cuda::mem_info(i);
    if (!mem) continue;  // not usable now: default_registry_options() skips it too
    info.devices.push_back({"cuda:" + std::to_string(i), mem->total_bytes, mem->free_bytes});
  }
  if (info.devices.empty()) {
    std::shared_ptr<Device> cpu = default_cpu_device();
    auto mem = cpu->monitor().query();
    info.devices.push_back({cpu->name(), mem ? mem->total_bytes : 0, mem ? mem->free_bytes : 0});
  }
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
  std::vector<RegistryDevice> devices;
  if (auto gpu = make_cuda_device(cuda_device); gpu) {
    devices.push_back(registry_device_on(std::move(*gpu), empty_torch_cuda_cache));
  } else {
    TP_LOG(kInfo, "runtime", "no CUDA device (" << gpu.error().message << "): weights go to the CPU device");
    devices.push_back(registry_device_on(default_cpu_device(), empty_torch_cuda_cache));
  }
  return registry_options_on(std::move(devices));
}

Expected<RegistryOptions> default_registry_options() {
  std::vector<RegistryDevice> devices;
  std::string why;
  if (auto count = cuda::device_count(); count) {
    for (int i = 0; i < *count; ++i) {
      auto gpu = make_cuda_device(i);
      if (!gpu) {
        TP_LOG(kWarn, "runtime", "CUDA device " << i << " is not usable (" << gpu.error().message << "): skipped");
        why = gpu.error().message;
        continue;
      }
      devices.push_back(registry_device_on(std::move(*gpu), empty_torch_cuda_cache));
    }
  } else {
    why = count.error().message;
  }
  if (devices.empty()) {
    TP_LOG(kInfo, "runtime", "no CUDA device (" << why << "): weights go to the CPU device");
    devices.push_back(registry_device_on(default_cpu_device(), empty_torch_cuda_cache));
  }
  return registry_options_on(std::move(devices));
}

}  // namespace v0
}  // namespace tp
