// The CUDA DeviceMonitor: free and total memory from cudaMemGetInfo, and this
// process's usage from NVML, which is opened at run time with dlopen (never
// linked) so that the library loads on machines without the driver.
#include <dlfcn.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <vector>

#include <cuda_runtime_api.h>

#include "cuda/cuda_runtime.h"
#include "twistedpic/device_monitor.h"
#include "twistedpic/log.h"

namespace tp {
inline namespace v0 {
namespace {

// The few NVML types used here, as NVML's stable C ABI defines them.
using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st*;
struct nvmlProcessInfo_t {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};
constexpr nvmlReturn_t kNvmlSuccess = 0;
constexpr nvmlReturn_t kNvmlInsufficientSize = 7;
constexpr unsigned long long kNvmlValueNotAvailable = ~0ull;

// NVML, loaded once per process; never unloaded.
struct Nvml {
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*handle_by_pci)(const char*, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*processes)(nvmlDevice_t, unsigned int*, nvmlProcessInfo_t*) = nullptr;
  const char* (*error_string)(nvmlReturn_t) = nullptr;
  std::string unavailable;  // why not, when empty functions

  static const Nvml& get() {
    static const Nvml* nvml = [] {
      auto* n = new Nvml();
      void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
      if (!lib) {
        const char* err = dlerror();
        n->unavailable = std::string("dlopen libnvidia-ml.so.1: ") + (err ? err : "unknown error");
        return n;
      }
      n->init = reinterpret_cast<decltype(n->init)>(dlsym(lib, "nvmlInit_v2"));
      n->handle_by_pci = reinterpret_cast<decltype(n->handle_by_pci)>(dlsym(lib, "nvmlDeviceGetHandleByPciBusId_v2"));
      n->processes = reinterpret_cast<decltype(n->processes)>(dlsym(lib, "nvmlDeviceGetComputeRunningProcesses_v3"));
      n->error_string = reinterpret_cast<decltype(n->error_string)>(dlsym(lib, "nvmlErrorString"));
      if (!n->init || !n->handle_by_pci || !n->processes || !n->error_string) {
        n->unavailable = "libnvidia-ml.so.1 lacks nvmlDeviceGetComputeRunningProcesses_v3 (driver too old)";
        n->init = nullptr;
        return n;
      }
      if (nvmlReturn_t r = n->init(); r != kNvmlSuccess) {
        n->unavailable = std::string("nvmlInit_v2: ") + n->error_string(r);
        n->init = nullptr;
      }
      return n;
    }();
    return *nvml;
  }
  bool ok() const { return init != nullptr; }
};

class CudaDeviceMonitor final : public DeviceMonitor {
 public:
  CudaDeviceMonitor(int device, nvmlDevice_t nvml_device) : device_(device), nvml_device_(nvml_device) {}

  std::string name() const override { return "cuda:" + std::to_string(device_); }

  Expected<DeviceMemoryInfo> query() override {
    TP_ASSIGN_OR_RETURN(cuda::MemInfo mem, cuda::mem_info(device_));
    DeviceMemoryInfo info;
    info.total_bytes = mem.total_bytes;
    info.free_bytes = mem.free_bytes;
    if (nvml_device_) info.process_bytes = process_bytes();
    uint64_t used = mem.total_bytes - mem.free_bytes;
    info.other_bytes = used > info.process_bytes ? used - info.process_bytes : 0;
    return info;
  }

 private:
  // This process's bytes as NVML accounts them; 0 when NVML cannot tell
  // (some VMs and containers hide per-process usage).
  uint64_t process_bytes() {
    const Nvml& nvml = Nvml::get();
    std::lock_guard<std::mutex> lock(mu_);
    unsigned int count = static_cast<unsigned int>(procs_.size());
    nvmlReturn_t r = nvml.processes(nvml_device_, &count, procs_.data());
    if (r == kNvmlInsufficientSize) {
      procs_.resize(count + 8);
      count = static_cast<unsigned int>(procs_.size());
      r = nvml.processes(nvml_device_, &count, procs_.data());
    }
    if (r != kNvmlSuccess) return 0;
    auto pid = static_cast<unsigned int>(getpid());
    for (unsigned int i = 0; i < count; ++i)
      if (procs_[i].pid == pid && procs_[i].usedGpuMemory != kNvmlValueNotAvailable) return procs_[i].usedGpuMemory;
    return 0;
  }

  int device_;
  nvmlDevice_t nvml_device_;
  std::mutex mu_;
  std::vector<nvmlProcessInfo_t> procs_ = std::vector<nvmlProcessInfo_t>(16);  // guarded by mu_
};

}  // namespace

Expected<std::unique_ptr<DeviceMonitor>> make_cuda_device_monitor(int device) {
  TP_TRY(cuda::mem_info(device));  // validates the device, kUnavailable without a GPU
  nvmlDevice_t handle = nullptr;
  const Nvml& nvml = Nvml::get();
  char pci[32] = {};
  if (!nvml.ok()) {
    TP_LOG(kWarn, "device", "NVML unavailable (" << nvml.unavailable << "); per-process usage is not reported");
  } else if (cudaDeviceGetPCIBusId(pci, sizeof pci, device) == cudaSuccess) {
    if (nvmlReturn_t r = nvml.handle_by_pci(pci, &handle); r != kNvmlSuccess) {
      TP_LOG(kWarn, "device", "NVML has no device at " << pci << ": " << nvml.error_string(r));
      handle = nullptr;
    }
  }
  return std::unique_ptr<DeviceMonitor>(std::make_unique<CudaDeviceMonitor>(device, handle));
}

}  // namespace v0
}  // namespace tp
