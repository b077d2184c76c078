// twistedpic: memory truth. A DeviceMonitor reports what the device really
// has free, counting other processes, so that policies react to programs
// like Ollama growing beside us, and so that the registry can measure the
// bytes an unload actually returned to the driver.
//
// Implementations: the CUDA monitor (cudaMemGetInfo plus per-process usage
// through NVML, opened with dlopen; see make_cuda_device_monitor), the CPU
// device's budget (used by default_registry_options without a GPU), and
// SimulatedDevice for tests (twistedpic/testing/simulated_device.h).
//
// Threading: every DeviceMonitor method is safe to call from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "twistedpic/expected.h"

namespace tp {
inline namespace v0 {

struct DeviceMemoryInfo {
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;
  // This process's usage as the driver accounts it (NVML); 0 when unknown.
  uint64_t process_bytes = 0;
  // Everyone else's: total - free - process_bytes, when process_bytes is known.
  uint64_t other_bytes = 0;
};

class DeviceMonitor {
 public:
  virtual ~DeviceMonitor() = default;
  virtual std::string name() const = 0;  // "cuda:0", "simulated"
  virtual Expected<DeviceMemoryInfo> query() = 0;
};

// The CUDA monitor for `device` (implemented in the CUDA library). kUnavailable
// on a machine without a usable GPU.
TP_EXPORT Expected<std::unique_ptr<DeviceMonitor>> make_cuda_device_monitor(int device);

}  // namespace v0
}  // namespace tp
