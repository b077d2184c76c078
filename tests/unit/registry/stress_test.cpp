// A bounded stress test: threads doing random acquire, release, preload,
// unload, list and tick across policies, checking the invariants. Runs under
// TSAN in `make test` (the core's TSAN build).
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "support/registry_harness.h"

namespace tp::testing {
namespace {

struct StressCase {
  const char* name;
  PolicyConfig policy;
};

class RegistryStressTest : public ::testing::TestWithParam<StressCase> {};

TEST_P(RegistryStressTest, RandomOperationsKeepInvariants) {
  std::vector<ModelConfig> models;
  for (int i = 0; i < 8; ++i) models.push_back(model("m" + std::to_string(i), (1 + i % 3) * kGiB, i % 4, i == 7));
  RegistryConfig config = config_of(models, GetParam().policy);
  config.admission_timeout = std::chrono::milliseconds(2);
  config.host_budget_bytes = 6 * kGiB;
  Harness h(std::move(config), 8 * kGiB);

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> ops{0}, leases_ok{0}, violations{0};
  // While a thread holds a lease, the model must stay on the device.
  auto worker = [&](unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<ModelLease> held;
    for (int i = 0; i < 400 && !stop; ++i) {
      std::string name = "m" + std::to_string(rng() % 8);
      switch (rng() % 8) {
        case 0:
        case 1:
        case 2: {
          auto lease = h.registry->acquire(name);
          if (lease) {
            ++leases_ok;
            if (!lease->weights().on_device()) ++violations;
            if (held.size() < 2) held.push_back(std::move(*lease));
          } else if (lease.error().code != ErrorCode::kResourceExhausted) {
            ADD_FAILURE() << lease.error().to_string();
          }
          break;
        }
        case 3:
          if (!held.empty()) held.erase(held.begin() + static_cast<std::ptrdiff_t>(rng() % held.size()));
          break;
        case 4: {
          auto r = h.registry->unload(name, rng() % 2 ? Tier::kHost : Tier::kDisk);
          if (!r && r.error().code != ErrorCode::kFailedPrecondition) ADD_FAILURE() << r.error().to_string();
          break;
        }
        case 5:
          for (const auto& m : h.registry->list())
            if (m.leases > 0 && m.state != ModelState::kResident) ++violations;
          break;
        case 6:
          h.clock->advance(std::chrono::seconds(rng() % 5));
          h.registry->tick();
          break;
        case 7:
          h.device->set_external_bytes((rng() % 3) * kGiB);
          break;
      }
      for (const auto& l : held)
        if (!l.weights().on_device()) ++violations;
      ++ops;
    }
  };
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 6; ++t) threads.emplace_back(worker, 1234 + t);
  for (auto& t : threads) t.join();

  EXPECT_EQ(violations.load(), 0u);
  EXPECT_GT(leases_ok.load(), 0u);
  EXPECT_EQ(ops.load(), 6u * 400u);
  h.device->set_external_bytes(0);
  // Quiescent: accounted bytes equal the sum over residents and the device's view.
  h.expect_accounting();
  for (const auto& m : h.registry->list()) {
    EXPECT_EQ(m.leases, 0u) << m.name;
    EXPECT_NE(m.state, ModelState::kLoading);
    EXPECT_NE(m.state, ModelState::kUnloading);
    EXPECT_EQ(m.device_bytes > 0, m.state == ModelState::kResident) << m.name;
  }
  EXPECT_EQ(h.registry->stats().host_bytes, h.backend->host_bytes());
  EXPECT_TRUE(h.registry->unload_all(Tier::kDisk));
  EXPECT_EQ(h.device->allocated_bytes(), 0u);
  EXPECT_EQ(h.backend->host_bytes(), 0u);
}

PolicyConfig with(std::function<void(PolicyConfig&)> f) {
  PolicyConfig p;
  f(p);
  return p;
}

INSTANTIATE_TEST_SUITE_P(
    Policies, RegistryStressTest,
    ::testing::Values(StressCase{"lazy", {}},
                      StressCase{"unload_after_host", with([](PolicyConfig& p) { p.unload_after = Tier::kHost; })},
                      StressCase{"unload_after_disk", with([](PolicyConfig& p) { p.unload_after = Tier::kDisk; })},
                      StressCase{"lru", with([](PolicyConfig& p) { p.lru_max_models = 2; p.lru_max_bytes = 4 * kGiB; })},
                      StressCase{"idle", with([](PolicyConfig& p) { p.idle_timeout_s = 3; })},
                      StressCase{"pressure", with([](PolicyConfig& p) { p.min_free_bytes = 2 * kGiB; })}),
    [](const ::testing::TestParamInfo<StressCase>& i) { return std::string(i.param.name); });

}  // namespace
}  // namespace tp::testing
