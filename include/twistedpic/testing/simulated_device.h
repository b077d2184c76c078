// twistedpic testing: SimulatedDevice, a DeviceMonitor made of counters, for
// tests, benchmarks and demos without a GPU: a total, our allocations, and
// external usage a test can change, with injectable allocation failures and
// leaks. SimulatedBackend (twistedpic/testing/simulated_backend.h) puts
// simulated weights on it.
//
// Installed for users' own tests; not for production use.
//
// Threading: every method is safe to call from any thread.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include "twistedpic/device_monitor.h"
#include "twistedpic/expected.h"
#include "twistedpic/export.h"

namespace tp {
inline namespace v0 {

// A device of `total_bytes` named `name` (what a registry of several
// simulated devices calls it); nothing allocated, no external usage.
class TP_EXPORT SimulatedDevice final : public DeviceMonitor {
 public:
  explicit SimulatedDevice(uint64_t total_bytes, std::string name = "simulated");

  std::string name() const override { return name_; }
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
  // A caching allocator's blocks: `bytes` more reserved from the device but
  // unused (a generation's activations, kept cached after it), counted as
  // this process's. kResourceExhausted when they are not free.
  Status cache(uint64_t bytes);
  // Hands every cached byte (cache() and leaked releases) back to the device,
  // as torch's emptyCache does; returns how many.
  uint64_t empty_cache();
  uint64_t cached_bytes() const;

  uint64_t allocated_bytes() const;
  uint64_t total_bytes() const { return total_; }

 private:
  const uint64_t total_;
  const std::string name_;
  mutable std::mutex mu_;
  uint64_t allocated_ = 0;  // guarded by mu_
  uint64_t external_ = 0;   // guarded by mu_
  uint64_t leaked_ = 0;     // guarded by mu_
  int fail_allocations_ = 0;
  int leak_releases_ = 0;
};

}  // namespace v0
}  // namespace tp
