// Private (weights): buffers of one size reused across loads, on a device
// (scratch) or in its pinned host memory (staging). Allocating either is slow
// (cudaHostAlloc; cudaMalloc, and a device-stalling cudaFree to give it
// back), so each device's TensorWeightBackend keeps one pool of each, shared
// by every model it opens:
//   - PinnedPool: the pinned staging buffers every load reads file chunks into;
//   - ScratchPool: the device scratch a converting load stages each chunk in
//     before the dtype kernel writes it into the arena (2 buffers per reading
//     thread: 128 MiB with the default 16 MiB chunks and 4 readers). The
//     registry's cache clean-up trims it (registry_device_on), so
//     max_gpu_availability keeps no idle scratch.
// Loads borrow buffers and give them back; at most `max_idle` stay allocated
// between loads until trim() hands them back.
//
// Figures for admission: held_bytes() is every byte the pool has now (idle
// buffers and those lent to loads in flight); missing_bytes(n) is what
// borrowing n buffers would allocate now, beyond the idle ones
// (TensorWeights::load_scratch_bytes). Both are snapshots: two loads admitted
// at once may each count the same idle buffers.
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

class TP_EXPORT BufferPool {
 public:
  enum class Memory { kDevice, kPinned };

  // Buffers of `buffer_bytes` of `memory` on `device`; at most `max_idle`
  // stay allocated between loads (a buffer given back beyond that is freed at once).
  BufferPool(std::shared_ptr<Device> device, Memory memory, uint64_t buffer_bytes, size_t max_idle);
  ~BufferPool();  // frees the idle buffers; every lent one must be back
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  uint64_t buffer_bytes() const { return buffer_bytes_; }
  // An idle buffer, or a new one (kResourceExhausted when there is no room).
  Expected<void*> acquire();
  // Gives back a buffer from acquire(); nullptr is a no-op.
  // REQUIRES: the device work that uses it is done (the lane is synchronized).
  void release(void* buffer);
  // Frees every idle buffer; returns the bytes handed back.
  // Buffers lent now stay with their loads and come back idle.
  uint64_t trim();

  uint64_t held_bytes() const;                   // idle + lent
  uint64_t idle_bytes() const;
  size_t cached() const;                         // idle buffers
  uint64_t missing_bytes(size_t buffers) const;  // buffers * size beyond the idle ones
  uint64_t allocations() const;                  // allocations made so far
  uint64_t frees() const;                        // and freed (trim, overflow, destruction)

 private:
  Expected<void*> allocate();
  void free(void* buffer);

  std::shared_ptr<Device> device_;
  const Memory memory_;
  const uint64_t buffer_bytes_;
  const size_t max_idle_;
  mutable std::mutex mu_;
  std::vector<void*> idle_;   // guarded by mu_
  size_t lent_ = 0;           // guarded by mu_
  uint64_t allocations_ = 0;  // guarded by mu_
  uint64_t frees_ = 0;        // guarded by mu_
};

// Pinned host staging buffers of `device`.
class TP_EXPORT PinnedPool final : public BufferPool {
 public:
  PinnedPool(std::shared_ptr<Device> device, uint64_t buffer_bytes, size_t max_idle)
      : BufferPool(std::move(device), Memory::kPinned, buffer_bytes, max_idle) {}
};

// Device scratch buffers of `device`.
class TP_EXPORT ScratchPool final : public BufferPool {
 public:
  ScratchPool(std::shared_ptr<Device> device, uint64_t buffer_bytes, size_t max_idle)
      : BufferPool(std::move(device), Memory::kDevice, buffer_bytes, max_idle) {}
};

}  // namespace v0
}  // namespace tp
