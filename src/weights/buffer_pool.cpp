// BufferPool: device scratch or pinned staging buffers reused across loads, trimmed on demand.
#include "weights/buffer_pool.h"

#include <utility>

namespace tp {
inline namespace v0 {

BufferPool::BufferPool(std::shared_ptr<Device> device, Memory memory, uint64_t buffer_bytes, size_t max_idle)
    : device_(std::move(device)), memory_(memory), buffer_bytes_(buffer_bytes), max_idle_(max_idle) {}

BufferPool::~BufferPool() {
  TP_ASSERT(lent_ == 0);
  for (void* b : idle_) free(b);
}

Expected<void*> BufferPool::allocate() {
  return memory_ == Memory::kPinned ? device_->allocate_pinned(buffer_bytes_) : device_->allocate(buffer_bytes_);
}

void BufferPool::free(void* buffer) {
  if (memory_ == Memory::kPinned)
    device_->free_pinned(buffer, buffer_bytes_);
  else
    device_->free(buffer, buffer_bytes_);
}

Expected<void*> BufferPool::acquire() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      void* b = idle_.back();
      idle_.pop_back();
      ++lent_;
      return b;
    }
  }
  // Allocated outside the lock: a cudaMalloc or cudaHostAlloc may take a while.
  TP_ASSIGN_OR_RETURN(void* b, allocate());
  std::lock_guard<std::mutex> lock(mu_);
  ++allocations_;
  ++lent_;
  return b;
}

void BufferPool::release(void* buffer) {
  if (!buffer) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    TP_ASSERT(lent_ > 0);
    --lent_;
    if (idle_.size() < max_idle_) {
      idle_.push_back(buffer);
      return;
    }
    ++frees_;
  }
  free(buffer);
}

uint64_t BufferPool::trim() {
  std::vector<void*> freed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    freed.swap(idle_);
    frees_ += freed.size();
  }
  for (void* b : freed) free(b);
  return freed.size() * buffer_bytes_;
}

uint64_t BufferPool::held_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return (idle_.size() + lent_) * buffer_bytes_;
}

uint64_t BufferPool::idle_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return idle_.size() * buffer_bytes_;
}

size_t BufferPool::cached() const {
  std::lock_guard<std::mutex> lock(mu_);
  return idle_.size();
}

uint64_t BufferPool::missing_bytes(size_t buffers) const {
  std::lock_guard<std::mutex> lock(mu_);
  return buffers > idle_.size() ? (buffers - idle_.size()) * buffer_bytes_ : 0;
}

uint64_t BufferPool::allocations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return allocations_;
}

uint64_t BufferPool::frees() const {
  std::lock_guard<std::mutex> lock(mu_);
  return frees_;
}

}  // namespace v0
}  // namespace tp
