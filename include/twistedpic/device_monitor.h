// twistedpic: memory truth. A DeviceMonitor reports what the device really
// has free, counting other processes, so that policies react to programs
// like Ollama growing beside us, and so that the registry can measure the
// bytes an unload actually returned to the driver.
//
// Two implementations: the CUDA monitor (cudaMemGetInfo plus per-process
// usage through NVML, opened with dlopen; see make_cuda_device_monitor) and
// SimulatedDevice, for tests and CPU-only machines.
//
// Threading: every DeviceMonitor method is safe to call from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
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

// A device made of counters: a total, our allocations, and external usage a
// test can change. Allocation failures can be injected.
class TP_EXPORT SimulatedDevice final : public DeviceMonitor {
 public:
  explicit SimulatedDevice(uint64_t total_bytes);

  std::string name() const override { return "simulated"; }
  Expected<DeviceMemoryInfo> query() override;

  // Takes `bytes` of device memory; kResourceExhausted when they are not free
  // or when a failure was injected.
  Status allocate(uint64_t bytes);
  // Returns `bytes` to the device. REQUIRES: they were allocated.
  void release(uint64_t bytes);

  // Another process's usage (replaces the previous value).
  void set_external_bytes(uint64_t bytes);
  // The next `count` allocate() calls fail.
  void fail_next_allocations(int count);
  // Makes the next `count` release() calls keep their bytes, as a caching
  // allocator would: the bytes leave our books but not the device.
  void leak_next_releases(int count);

  uint64_t allocated_bytes() const;
  uint64_t total_bytes() const { return total_; }

 private:
  const uint64_t total_;
  mutable std::mutex mu_;
  uint64_t allocated_ = 0;  // guarded by mu_
  uint64_t external_ = 0;   // guarded by mu_
  uint64_t leaked_ = 0;     // guarded by mu_
  int fail_allocations_ = 0;
  int leak_releases_ = 0;
};

// The CUDA monitor for `device` (implemented in the CUDA library). kUnavailable
// on a machine without a usable GPU.
TP_EXPORT Expected<std::unique_ptr<DeviceMonitor>> make_cuda_device_monitor(int device);

}  // namespace v0
}  // namespace tp
