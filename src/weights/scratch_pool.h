// Private (weights): the device scratch pool. A converting load on a GPU
// stages each chunk in device scratch before the dtype kernel writes it into
// the arena: 2 buffers per reading thread (128 MiB with the default 16 MiB
// chunks and 4 readers). Allocating and freeing them per load costs a
// cudaMalloc and a device-stalling cudaFree each time, so each device's
// TensorWeightBackend keeps one ScratchPool: loads borrow buffers and give
// them back, and the buffers stay allocated between loads until trim() hands
// them back to the driver (the registry's cache clean-up calls it, so that
// max_gpu_availability keeps no idle scratch).
//
// Figures for admission: held_bytes() is every byte the pool has on the
// device now (idle buffers and those lent to loads in flight);
// missing_bytes(n) is what borrowing n buffers would allocate now, beyond the
// idle ones (TensorWeights::load_scratch_bytes). Both are snapshots: two
// loads admitted at once may each count the same idle buffers.
//
// Threading: every method is safe from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "device/device.h"

namespace tp {
inline namespace v0 {

class TP_EXPORT ScratchPool {
 public:
  // Buffers of `buffer_bytes` on `device`; at most `max_idle` stay allocated
  // between loads (a buffer given back beyond that is freed at once).
  ScratchPool(std::shared_ptr<Device> device, uint64_t buffer_bytes, size_t max_idle);
  ~ScratchPool();  // frees the idle buffers; every lent one must be back
  ScratchPool(const ScratchPool&) = delete;
  ScratchPool& operator=(const ScratchPool&) = delete;

  uint64_t buffer_bytes() const { return buffer_bytes_; }
  // An idle buffer, or a new one (kResourceExhausted when the device has no room).
  Expected<void*> acquire();
  // Gives back a buffer from acquire(); nullptr is a no-op.
  // REQUIRES: the device work that uses it is done (the lane is synchronized).
  void release(void* buffer);
  // Frees every idle buffer; returns the bytes handed back to the driver.
  // Buffers lent now stay with their loads and come back idle.
  uint64_t trim();

  uint64_t held_bytes() const;              // idle + lent
  uint64_t idle_bytes() const;
  uint64_t missing_bytes(size_t buffers) const;  // buffers * size beyond the idle ones
  uint64_t allocations() const;             // device allocations made so far
  uint64_t frees() const;                   // and freed (trim, overflow, destruction)

 private:
  std::shared_ptr<Device> device_;
  const uint64_t buffer_bytes_;
  const size_t max_idle_;
  mutable std::mutex mu_;
  std::vector<void*> idle_;  // guarded by mu_
  size_t lent_ = 0;          // guarded by mu_
  uint64_t allocations_ = 0; // guarded by mu_
  uint64_t frees_ = 0;       // guarded by mu_
};

}  // namespace v0
}  // namespace tp
