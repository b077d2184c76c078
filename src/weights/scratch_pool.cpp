// ScratchPool: device scratch buffers reused across loads, trimmed on demand.
#include "weights/scratch_pool.h"

#include <utility>

namespace tp {
inline namespace v0 {

ScratchPool::ScratchPool(std::shared_ptr<Device> device, uint64_t buffer_bytes, size_t max_idle)
    : device_(std::move(device)), buffer_bytes_(buffer_bytes), max_idle_(max_idle) {}

ScratchPool::~ScratchPool() {
  TP_ASSERT(lent_ == 0);
  for (void* b : idle_) device_->free(b, buffer_bytes_);
}

Expected<void*> ScratchPool::acquire() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      void* b = idle_.back();
      idle_.pop_back();
      ++lent_;
      return b;
    }
  }
  // Allocated outside the lock: a cudaMalloc may take a while.
  TP_ASSIGN_OR_RETURN(void* b, device_->allocate(buffer_bytes_));
  std::lock_guard<std::mutex> lock(mu_);
  ++allocations_;
  ++lent_;
  return b;
}

void ScratchPool::release(void* buffer) {
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
  device_->free(buffer, buffer_bytes_);
}

uint64_t ScratchPool::trim() {
  std::vector<void*> freed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    freed.swap(idle_);
    frees_ += freed.size();
  }
  for (void* b : freed) device_->free(b, buffer_bytes_);
  return freed.size() * buffer_bytes_;
}

uint64_t ScratchPool::held_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return (idle_.size() + lent_) * buffer_bytes_;
}

uint64_t ScratchPool::idle_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return idle_.size() * buffer_bytes_;
}

uint64_t ScratchPool::missing_bytes(size_t buffers) const {
  std::lock_guard<std::mutex> lock(mu_);
  return buffers > idle_.size() ? (buffers - idle_.size()) * buffer_bytes_ : 0;
}

uint64_t ScratchPool::allocations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return allocations_;
}

uint64_t ScratchPool::frees() const {
  std::lock_guard<std::mutex> lock(mu_);
  return frees_;
}

}  // namespace v0
}  // namespace tp
