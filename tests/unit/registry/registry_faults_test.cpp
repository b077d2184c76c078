// Registry faults that need no real weights: the simulated device and weights
// of the test's own, driven into races the registry must survive. (Faults with
// real safetensors files are in tests/unit/reliability/fault_injection_test.cpp.)
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <string>

#include "twistedpic/registry.h"
#include "twistedpic/testing/simulated_device.h"

namespace tp {
namespace {

// Weights whose offload to the host tier waits until `expected` offloads are in
// flight at once (or a timeout), to make concurrent evictions overlap.
class OverlappingOffloads {
 public:
  explicit OverlappingOffloads(int expected) : expected_(expected) {}
  void enter() {
    std::unique_lock<std::mutex> lock(mu_);
    ++inside_;
    max_inside_ = std::max(max_inside_, inside_);
    cv_.notify_all();
    cv_.wait_for(lock, std::chrono::seconds(2), [&] { return max_inside_ >= expected_; });
  }
  void leave() {
    std::lock_guard<std::mutex> lock(mu_);
    --inside_;
  }
  int max_inside() {
    std::lock_guard<std::mutex> lock(mu_);
    return max_inside_;
  }

 private:
  const int expected_;
  std::mutex mu_;
  std::condition_variable cv_;
  int inside_ = 0, max_inside_ = 0;
};

class CountingWeights final : public ModelWeights {
 public:
  CountingWeights(uint64_t bytes, OverlappingOffloads& gate) : bytes_(bytes), gate_(gate) {}
  uint64_t device_bytes() const override { return bytes_; }
  uint64_t host_bytes() const override { return host_ ? bytes_ : 0; }
  bool on_device() const override { return device_; }
  Status load_to_device(const TransferContext&) override {
    device_ = true;
    return ok_status();
  }
  Status offload_to_host(const TransferContext&) override {
    gate_.enter();
    host_ = true;
    device_ = false;
    gate_.leave();
    return ok_status();
  }
  void drop_device() override { device_ = false; }
  void drop_host() override { host_ = false; }

 private:
  const uint64_t bytes_;
  OverlappingOffloads& gate_;
  bool device_ = false, host_ = false;
};

class CountingBackend final : public WeightBackend {
 public:
  explicit CountingBackend(OverlappingOffloads& gate) : gate_(gate) {}
  Expected<std::unique_ptr<ModelWeights>> open(const ModelConfig& c) override {
    return std::unique_ptr<ModelWeights>(std::make_unique<CountingWeights>(c.size_bytes, gate_));
  }

 private:
  OverlappingOffloads& gate_;
};

// Two evictions to the host tier at once must not overcommit the host budget:
// copies being made with the lock released count against it too.
TEST(RegistryFaultTest, ConcurrentOffloadsRespectTheHostBudget) {
  constexpr uint64_t kGiB = 1ull << 30;
  OverlappingOffloads gate(2);
  auto device = std::make_shared<SimulatedDevice>(16 * kGiB);
  RegistryConfig c;
  for (const char* n : {"a", "b"}) {
    ModelConfig m;
    m.name = n;
    m.source = std::string("/models/") + n;
    m.size_bytes = 4 * kGiB;
    c.models.push_back(m);
  }
  c.host_budget_bytes = 6 * kGiB;
  RegistryOptions o;
  o.backend = std::make_shared<CountingBackend>(gate);
  o.monitor = device;
  o.background_thread = false;
  auto registry = ModelRegistry::create(c, o).value();
  ASSERT_TRUE(registry->preload("a"));
  ASSERT_TRUE(registry->preload("b"));
  auto ua = std::async(std::launch::async, [&] { return registry->unload("a", Tier::kHost); });
  auto ub = std::async(std::launch::async, [&] { return registry->unload("b", Tier::kHost); });
  auto ra = ua.get(), rb = ub.get();
  ASSERT_TRUE(ra);
  ASSERT_TRUE(rb);
  // The first copy in flight (held open by the gate) leaves no room for the
  // second: it goes to disk instead of overcommitting the budget.
  EXPECT_EQ(gate.max_inside(), 1);
  EXPECT_EQ((ra->to == Tier::kHost) + (rb->to == Tier::kHost), 1);
  EXPECT_LE(registry->stats().host_bytes, 6 * kGiB);
}

}  // namespace
}  // namespace tp
