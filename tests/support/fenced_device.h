// Test doubles for the GPU's ordering rules on CPU (the weights and torch
// tests).
//
// FencedDevice is the CPU device with the asynchrony of a GPU, as far as the
// use fences of device.h are concerned: its users' "kernels" are queued on
// FakeStreams and run only when something waits for them (a fence, or a
// drain). free() checks the order the CUDA device needs: no queued kernel may
// still read the allocation being freed (counted in
// frees_with_pending_reads()). It also counts the fences recorded and waited
// for, and can make a lane's copies fail asynchronously: the copy succeeds,
// and the lane's next synchronize() reports the failure (as cudaMemcpyAsync
// and cudaStreamSynchronize do).
//
// Threading: every method is safe from any thread.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "device/device.h"

namespace tp::testing_util {

// A stream of asynchronous kernels. Each kernel names the address it reads.
class FakeStream {
 public:
  // Queues `kernel`, which reads `reads`; it runs when waited for.
  void launch(const void* reads, std::function<void()> kernel) {
    std::lock_guard<std::mutex> lock(mu_);
    kernels_.push_back({reads, std::move(kernel)});
  }
  // Kernels queued so far (a fence's position).
  size_t queued() const {
    std::lock_guard<std::mutex> lock(mu_);
    return kernels_.size();
  }
  // Runs the kernels queued before position `n` that have not run yet.
  void run_until(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    while (done_ < n && done_ < kernels_.size()) {
      auto kernel = kernels_[done_++].second;
      lock.unlock();
      kernel();
      lock.lock();
    }
  }
  void drain() { run_until(queued()); }
  // True when a kernel not yet run reads an address in [begin, begin + bytes).
  bool pending_read_in(const void* begin, uint64_t bytes) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto* b = static_cast<const char*>(begin);
    for (size_t i = done_; i < kernels_.size(); ++i) {
      auto* r = static_cast<const char*>(kernels_[i].first);
      if (r >= b && r <= b + bytes) return true;  // an empty view may point one past the end
    }
    return false;
  }

 private:
  mutable std::mutex mu_;
  std::deque<std::pair<const void*, std::function<void()>>> kernels_;  // guarded by mu_
  size_t done_ = 0;                                                    // guarded by mu_
};

class FencedDevice final : public Device {
 public:
  // `host_memory`: take the engine's direct path (the CPU device) or its
  // staging path (a GPU's). `name`: what name() says ("cuda:0" makes the torch
  // layer treat the memory as a GPU's; it must then never touch it).
  explicit FencedDevice(uint64_t budget, bool host_memory = true, std::string name = "fenced-cpu")
      : cpu_(budget), host_memory_(host_memory), name_(std::move(name)) {}

  // A stream the device knows of (free() checks its pending kernels). Lives as long as the device.
  FakeStream& make_stream() {
    std::lock_guard<std::mutex> lock(mu_);
    return streams_.emplace_back();
  }

  std::string name() const override { return name_; }
  bool is_host_memory() const override { return host_memory_; }
  DeviceMonitor& monitor() override { return cpu_; }
  Expected<void*> allocate(uint64_t b) override { return cpu_.allocate(b); }
  void free(void* p, uint64_t b) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const FakeStream& s : streams_)
        if (s.pending_read_in(p, b)) ++frees_with_pending_reads_;
      if (auto it = fences_.find(p); it != fences_.end() && !it->second.empty()) ++frees_with_pending_reads_;
      fences_.erase(p);
      ++frees_;
    }
    cpu_.free(p, b);
  }
  Expected<void*> allocate_pinned(uint64_t b) override { return cpu_.allocate_pinned(b); }
  void free_pinned(void* p, uint64_t b) override { cpu_.free_pinned(p, b); }
  int lanes() const override { return 2; }
  Status copy_to_device(void* d, const void* s, uint64_t n, int lane) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (fail_copies_ > 0) {
        --fail_copies_;
        lane_failures_[lane % lanes()] = true;  // reported at the lane's next synchronize
      }
    }
    return cpu_.copy_to_device(d, s, n, lane);
  }
  Status copy_to_host(void* d, const void* s, uint64_t n, int lane) override { return cpu_.copy_to_host(d, s, n, lane); }
  Status convert(const void* s, DType f, void* d, DType t, uint64_t c, int lane) override {
    return cpu_.convert(s, f, d, t, c, lane);
  }
  Status synchronize(int lane) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (std::exchange(lane_failures_[lane % lanes()], false))
      return make_error(ErrorCode::kDataLoss, "fenced device: an asynchronous copy on lane " + std::to_string(lane) + " failed");
    return ok_status();
  }
  void record_use(void* ptr, void* stream) override {
    auto* s = static_cast<FakeStream*>(stream);
    std::lock_guard<std::mutex> lock(mu_);
    fences_[ptr].push_back({s, s ? s->queued() : 0});
    ++uses_recorded_;
  }
  void wait_for_uses(void* ptr) override {
    std::vector<std::pair<FakeStream*, size_t>> fences;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (auto it = fences_.find(ptr); it != fences_.end()) fences = std::move(it->second);
      fences_.erase(ptr);
    }
    for (auto& [s, n] : fences)
      if (s) s->run_until(n);
    std::lock_guard<std::mutex> lock(mu_);
    waits_ += static_cast<int>(fences.size());
  }

  // The next `n` copies to the device fail asynchronously.
  void fail_next_copies(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_copies_ = n;
  }
  int frees_with_pending_reads() const { return locked(frees_with_pending_reads_); }
  int frees() const { return locked(frees_); }
  int uses_recorded() const { return locked(uses_recorded_); }
  int uses_waited() const { return locked(waits_); }
  uint64_t allocated_bytes() const { return cpu_.allocated_bytes(); }
  uint64_t pinned_bytes() const { return cpu_.pinned_bytes(); }

 private:
  int locked(const int& v) const {
    std::lock_guard<std::mutex> lock(mu_);
    return v;
  }

  CpuDevice cpu_;
  const bool host_memory_;
  const std::string name_;
  mutable std::mutex mu_;
  std::deque<FakeStream> streams_;                                         // guarded by mu_
  std::map<void*, std::vector<std::pair<FakeStream*, size_t>>> fences_;    // guarded by mu_
  std::map<int, bool> lane_failures_;                                      // guarded by mu_
  int fail_copies_ = 0, frees_with_pending_reads_ = 0, frees_ = 0, uses_recorded_ = 0, waits_ = 0;  // guarded by mu_
};

}  // namespace tp::testing_util
