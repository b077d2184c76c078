// Test support (torch): c10's CPU allocator hook, as the tests use it. A
// HookedCpuAllocator replaces the CPU allocator (c10::SetAllocator at a
// priority above the default's) and forwards to the real one; it counts the
// bytes live and the most ever live since reset_peak(), and can fail the
// n-th allocation from a chosen moment with c10::OutOfMemoryError (as a CUDA
// allocation that finds no memory does). Kernels' scratch goes through
// raw_allocate / raw_deallocate, so every block, DataPtr or raw, is freed
// through one deleter that finds its size by address.
//
// Threading: allocate and free from any thread. One instance per process
// (instance()), never destroyed: blocks it counted may be freed after it is
// uninstalled.
#pragma once

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace tp::testing {

class HookedCpuAllocator final : public c10::Allocator {
 public:
  static constexpr uint8_t kPriority = 200;  // above the default CPU allocator's

  static HookedCpuAllocator& instance() {
    static auto* a = new HookedCpuAllocator();
    return *a;
  }

  void install() { c10::SetAllocator(c10::DeviceType::CPU, this, kPriority); }
  // Blocks made while installed still free through deleter(), which forwards.
  void uninstall() { c10::SetAllocator(c10::DeviceType::CPU, real_, kPriority); }

  // Failure injection: from now, the n-th allocation throws (0: never).
  void fail_at(int n) { countdown_ = n; }
  // Disarms and forgets the failures counted so far.
  void reset_failures() {
    countdown_ = 0;
    failures_ = 0;
  }
  int failures() const { return failures_; }

  // Counting: bytes live now, and the most live since reset_peak().
  uint64_t live() const {
    std::lock_guard<std::mutex> lock(mu_);
    return live_;
  }
  uint64_t peak() const {
    std::lock_guard<std::mutex> lock(mu_);
    return peak_;
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    peak_ = live_;
  }
  // Debugging an estimate: while on, each new peak records the sizes of the
  // blocks live then (sizes_at_peak()).
  void snapshot_at_peak(bool on) {
    std::lock_guard<std::mutex> lock(mu_);
    snapshot_ = on;
  }
  std::vector<uint64_t> sizes_at_peak() const {
    std::lock_guard<std::mutex> lock(mu_);
    return at_peak_;
  }

  c10::DataPtr allocate(size_t bytes) override {
    if (countdown_.load() > 0 && --countdown_ == 0) {
      ++failures_;
      TORCH_CHECK_WITH(OutOfMemoryError, false, "injected: out of memory allocating ", bytes, " bytes");
    }
    c10::DataPtr real = real_->allocate(bytes);
    void* p = real.get();
    if (p == nullptr) return real;
    // The default CPU allocator's context is the data pointer itself, freed by its raw deleter.
    TORCH_INTERNAL_ASSERT(real.get_context() == p);
    real.release_context();
    {
      std::lock_guard<std::mutex> lock(mu_);
      sizes_[p] = bytes;
      live_ += bytes;
      if (live_ > peak_) {
        peak_ = live_;
        if (snapshot_) {
          at_peak_.clear();
          for (const auto& block : sizes_) at_peak_.push_back(block.second);
        }
      }
    }
    return {p, p, &deleter, c10::Device(c10::DeviceType::CPU)};
  }
  void copy_data(void* dest, const void* src, std::size_t count) const override { real_->copy_data(dest, src, count); }
  c10::DeleterFnPtr raw_deleter() const override { return &deleter; }

 private:
  HookedCpuAllocator() : real_(c10::GetAllocator(c10::DeviceType::CPU)) {}

  static void deleter(void* p) {
    HookedCpuAllocator* self = &instance();
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      auto it = self->sizes_.find(p);
      if (it != self->sizes_.end()) {
        self->live_ -= it->second;
        self->sizes_.erase(it);
      }
    }
    self->real_->raw_deleter()(p);
  }

  c10::Allocator* const real_;
  std::atomic<int> countdown_{0}, failures_{0};
  mutable std::mutex mu_;
  std::unordered_map<void*, uint64_t> sizes_;
  uint64_t live_ = 0, peak_ = 0;
  bool snapshot_ = false;
  std::vector<uint64_t> at_peak_;
};

}  // namespace tp::testing
