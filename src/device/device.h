// Private (device): where weights live, and how bytes get there.
//
// A Device owns memory outside any caching allocator, so that freeing it
// returns it to the driver at once, and moves bytes between page-locked host
// memory and itself on a few independent lanes (CUDA streams). The transfer
// engine (weights/tensor_weights.h) drives it. Two implementations:
//   - the CUDA device (make_cuda_device): cudaMalloc'd arenas, cudaHostAlloc'd
//     pinned memory, one stream per lane, conversion kernels;
//   - the CPU device (CpuDevice): "device" memory is host memory, so CPU-only
//     machines run the same engine; it counts its allocations against a
//     budget and is its own DeviceMonitor.
// Users never see a Device: default_registry_options (runtime.h) picks one
// and hands the registry its DeviceMonitor and a weight backend over it.
//
// Threading: every method is safe from any thread. Operations on one lane
// are ordered; different lanes may run concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "twistedpic/device_monitor.h"
#include "twistedpic/dtype.h"
#include "twistedpic/expected.h"

namespace tp {
inline namespace v0 {

class Device {
 public:
  virtual ~Device() = default;
  virtual std::string name() const = 0;
  // True when device pointers are host pointers (the CPU device).
  virtual bool is_host_memory() const = 0;
  // The device's memory truth (free bytes counting other processes).
  virtual DeviceMonitor& monitor() = 0;

  // Device memory, freed straight back to the driver. kResourceExhausted when it cannot be had.
  virtual Expected<void*> allocate(uint64_t bytes) = 0;
  virtual void free(void* ptr, uint64_t bytes) = 0;
  // Page-locked host memory (plain host memory on the CPU device).
  virtual Expected<void*> allocate_pinned(uint64_t bytes) = 0;
  virtual void free_pinned(void* ptr, uint64_t bytes) = 0;

  // Number of independent lanes; lane arguments are taken modulo lanes().
  virtual int lanes() const = 0;
  // Asynchronous within a lane: the source must stay valid, and the
  // destination unread, until synchronize(lane).
  virtual Status copy_to_device(void* dst, const void* src, uint64_t bytes, int lane) = 0;
  virtual Status copy_to_host(void* dst, const void* src, uint64_t bytes, int lane) = 0;
  // Converts `count` elements between F32, F16 and BF16, device to device.
  // REQUIRES: src and dst aligned to their element sizes (a GPU faults on a
  // misaligned typed load); a misaligned pointer is kInvalidArgument, and
  // nothing runs.
  virtual Status convert(const void* src, DType from, void* dst, DType to, uint64_t count, int lane) = 0;
  // Waits for the lane's queued work. An asynchronous failure of that work
  // (a copy, a conversion) is reported here: callers check every result.
  virtual Status synchronize(int lane) = 0;

  // Use fences: work outside the lanes (torch kernels queued on the caller's
  // stream) that reads an allocation made by allocate().
  //  - record_use(ptr, stream): every piece of work queued on `stream` so far
  //    may use `ptr`; later work on it does not. `stream` is opaque to the
  //    core: a cudaStream_t on the CUDA device (nullptr: the legacy default
  //    stream); ignored where such work is synchronous (the CPU device). Safe
  //    from several threads at once; never fails (a device that cannot record
  //    a fence falls back to waiting for all its work before the free).
  //  - wait_for_uses(ptr): blocks until the work of every use recorded for
  //    `ptr` is done, and forgets them.
  // The owner of an allocation calls wait_for_uses(ptr) before free(ptr);
  // the CUDA device also waits in free() for uses still recorded.
  // Default: no-ops (work on host memory is synchronous).
  virtual void record_use(void* ptr, void* stream) {
    (void)ptr;
    (void)stream;
  }
  virtual void wait_for_uses(void* ptr) { (void)ptr; }
};

// The CPU device: host memory counted against `budget_bytes`. Its name
// ("cpu" by default; "cpu:1" and so on for tests that build a registry of
// several devices) is the device's and its monitor's.
class TP_EXPORT CpuDevice final : public Device, public DeviceMonitor {
 public:
  explicit CpuDevice(uint64_t budget_bytes, std::string name = "cpu");

  std::string name() const override { return name_; }
  bool is_host_memory() const override { return true; }
  DeviceMonitor& monitor() override { return *this; }
  Expected<DeviceMemoryInfo> query() override;

  Expected<void*> allocate(uint64_t bytes) override;
  void free(void* ptr, uint64_t bytes) override;
  Expected<void*> allocate_pinned(uint64_t bytes) override;
  void free_pinned(void* ptr, uint64_t bytes) override;

  int lanes() const override { return 1; }
  Status copy_to_device(void* dst, const void* src, uint64_t bytes, int lane) override;
  Status copy_to_host(void* dst, const void* src, uint64_t bytes, int lane) override;
  Status convert(const void* src, DType from, void* dst, DType to, uint64_t count, int lane) override;
  Status synchronize(int) override { return ok_status(); }

  uint64_t allocated_bytes() const { return allocated_.load(); }
  uint64_t pinned_bytes() const { return pinned_.load(); }

  // Fault injection, for tests only: the next `count` device (or pinned)
  // allocations fail with kResourceExhausted.
  void fail_next_allocations(int count) { fail_device_.store(count); }
  void fail_next_pinned_allocations(int count) { fail_pinned_.store(count); }

 private:
  const uint64_t budget_;
  const std::string name_;
  std::atomic<uint64_t> allocated_{0};
  std::atomic<uint64_t> pinned_{0};
  std::atomic<int> fail_device_{0};
  std::atomic<int> fail_pinned_{0};
};

// Converts `count` elements between F32, F16 and BF16 on the host (round to
// nearest even, as the CUDA kernels do). Enforces the GPU's rule, so that CPU
// tests catch a break of it: src and dst of a conversion (from != to) must be
// aligned to their element sizes, else kInvalidArgument and nothing is written.
TP_EXPORT Status convert_on_host(const void* src, DType from, void* dst, DType to, uint64_t count);

// The CUDA device `index` (implemented in the CUDA library). kUnavailable
// without a usable GPU.
TP_EXPORT Expected<std::shared_ptr<Device>> make_cuda_device(int index, int lanes = 4);

}  // namespace v0
}  // namespace tp
