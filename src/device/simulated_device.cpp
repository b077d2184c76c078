#include "twistedpic/testing/simulated_device.h"

#include <utility>

namespace tp {
inline namespace v0 {

SimulatedDevice::SimulatedDevice(uint64_t total_bytes, std::string name)
    : total_(total_bytes), name_(std::move(name)) {}

Expected<DeviceMemoryInfo> SimulatedDevice::query() {
  std::lock_guard<std::mutex> lock(mu_);
  DeviceMemoryInfo info;
  info.total_bytes = total_;
  uint64_t used = allocated_ + leaked_ + external_;
  info.free_bytes = used >= total_ ? 0 : total_ - used;
  info.process_bytes = allocated_ + leaked_;
  info.other_bytes = external_;
  return info;
}

Status SimulatedDevice::allocate(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  if (fail_allocations_ > 0) {
    --fail_allocations_;
    return resource_exhausted("simulated device: injected allocation failure of " + std::to_string(bytes) + " bytes");
  }
  uint64_t used = allocated_ + leaked_ + external_;
  if (used > total_ || total_ - used < bytes)
    return resource_exhausted("simulated device: out of memory allocating " + std::to_string(bytes) + " bytes (" +
                              std::to_string(used > total_ ? 0 : total_ - used) + " free)");
  allocated_ += bytes;
  return ok_status();
}

void SimulatedDevice::release(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  TP_ASSERT(bytes <= allocated_);
  allocated_ -= bytes;
  if (leak_releases_ > 0) {
    --leak_releases_;
    leaked_ += bytes;
  }
}

void SimulatedDevice::set_external_bytes(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  external_ = bytes;
}

void SimulatedDevice::fail_next_allocations(int count) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_allocations_ = count;
}

void SimulatedDevice::leak_next_releases(int count) {
  std::lock_guard<std::mutex> lock(mu_);
  leak_releases_ = count;
}

Status SimulatedDevice::cache(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t used = allocated_ + leaked_ + external_;
  if (used > total_ || total_ - used < bytes)
    return resource_exhausted("simulated device: cannot cache " + std::to_string(bytes) + " bytes");
  leaked_ += bytes;
  return ok_status();
}

uint64_t SimulatedDevice::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(leaked_, 0);
}

uint64_t SimulatedDevice::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return leaked_;
}

uint64_t SimulatedDevice::allocated_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return allocated_;
}

}  // namespace v0
}  // namespace tp
