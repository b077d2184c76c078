// Host code that throws: memory policies (every hook), the weight backend, its
// weights and the device monitor. Whatever throws, no exception leaves the
// registry, no model is left in kLoading or kUnloading, the device bytes
// match the books, and the next request works once the host code behaves.
// (tests/unit/reliability/fault_injection_test.cpp has the same for a policy
// over real weights; event callbacks and clean_caches are covered there and
// in registry_test.cpp.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "support/registry_harness.h"

namespace tp::testing {
namespace {

using ::testing::HasSubstr;

enum class Hook { kNone, kPreload, kOnIdle, kExpiresAt, kEnforceLimits, kSelectVictims, kOnAccess };

// A policy with no opinion that throws from the armed hook (and from name()
// when name_throws is set).
class ThrowingPolicy final : public MemoryPolicy {
 public:
  std::atomic<Hook> armed{Hook::kNone};
  std::atomic<bool> name_throws{false};
  std::atomic<int> thrown{0};

  std::string_view name() const override {
    if (name_throws) throw std::logic_error("name bug");
    return "thrower";
  }
  std::vector<std::string> preload(const RegistryView&) override {
    maybe_throw(Hook::kPreload);
    return {};
  }
  std::optional<Eviction> on_idle(const RegistryView&, const ModelView&) override {
    maybe_throw(Hook::kOnIdle);
    return std::nullopt;
  }
  std::optional<TimePoint> expires_at(const ModelView&) override {
    maybe_throw(Hook::kExpiresAt);
    return std::nullopt;
  }
  std::vector<Eviction> enforce_limits(const RegistryView&, const ModelView*) override {
    maybe_throw(Hook::kEnforceLimits);
    return {};
  }
  std::vector<Eviction> select_victims(const RegistryView&, uint64_t, Reason) override {
    maybe_throw(Hook::kSelectVictims);
    return {};
  }
  void on_access(const ModelView&) override {
    if (armed == Hook::kOnAccess) {
      ++thrown;
      throw 7;  // not even a std::exception
    }
  }

 private:
  void maybe_throw(Hook h) {
    if (armed != h) return;
    ++thrown;
    throw std::runtime_error("hook bug");
  }
};

// No model in transition, and the device's bytes are the registry's.
void expect_settled(Harness& h) {
  for (const ModelInfo& m : h.registry->list()) {
    EXPECT_NE(m.state, ModelState::kLoading) << m.name;
    EXPECT_NE(m.state, ModelState::kUnloading) << m.name;
  }
  h.expect_accounting();
}

// a and b (6 GiB each) do not fit together on the 10 GiB device: admitting
// one evicts the other through select_victims.
struct PolicyHarness {
  std::shared_ptr<ThrowingPolicy> policy = std::make_shared<ThrowingPolicy>();
  Harness h;
  explicit PolicyHarness(PolicyConfig p = {})
      : h(config_of({model("a", 6 * kGiB), model("b", 6 * kGiB)}, p), 10 * kGiB, {}, {policy}) {}
};

TEST(RegistryHostExceptionTest, ThrowingSelectVictimsFailsTheAcquireAndRollsBack) {
  PolicyHarness p;
  Harness& h = p.h;
  ASSERT_TRUE(h.registry->acquire("a"));  // released: a stays resident
  p.policy->armed = Hook::kSelectVictims;
  auto b = h.registry->acquire("b");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, ErrorCode::kInternal) << b.error().message;
  EXPECT_THAT(b.error().message, HasSubstr("policy 'thrower' threw: hook bug"));
  EXPECT_EQ(h.state("b"), ModelState::kUnloaded);  // back where it was, not kFailed
  EXPECT_TRUE(h.info("b").last_error.empty());
  EXPECT_EQ(h.state("a"), ModelState::kResident);  // nothing was evicted
  EXPECT_EQ(h.device->allocated_bytes(), 6 * kGiB);
  expect_settled(h);

  auto plan = h.registry->plan("b");  // the dry run reports it too
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().code, ErrorCode::kInternal);
  EXPECT_EQ(h.registry->preload("b").error().code, ErrorCode::kInternal);
  expect_settled(h);

  p.policy->armed = Hook::kNone;
  auto again = h.registry->acquire("b");
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_NE(h.state("a"), ModelState::kResident);  // evicted this time
  expect_settled(h);
}

TEST(RegistryHostExceptionTest, ThrowingNameIsStillReported) {
  PolicyHarness p;
  Harness& h = p.h;
  ASSERT_TRUE(h.registry->acquire("a"));
  p.policy->armed = Hook::kSelectVictims;
  p.policy->name_throws = true;
  auto b = h.registry->acquire("b");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, ErrorCode::kInternal);
  EXPECT_THAT(b.error().message, HasSubstr("threw: hook bug"));
  p.policy->armed = Hook::kNone;
  p.policy->name_throws = false;
  EXPECT_TRUE(h.registry->acquire("b"));
  expect_settled(h);
}

TEST(RegistryHostExceptionTest, ThrowingEnforceLimitsFailsTheAcquireAndIsIgnoredByTick) {
  PolicyHarness p;
  Harness& h = p.h;
  p.policy->armed = Hook::kEnforceLimits;
  auto a = h.registry->acquire("a");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, ErrorCode::kInternal);
  EXPECT_THAT(a.error().message, HasSubstr("policy 'thrower' threw: hook bug"));
  EXPECT_EQ(h.state("a"), ModelState::kUnloaded);
  h.registry->tick();  // logged, not thrown
  expect_settled(h);
  p.policy->armed = Hook::kNone;
  EXPECT_TRUE(h.registry->acquire("a"));
  expect_settled(h);
}

TEST(RegistryHostExceptionTest, ThrowingOnIdleIsIgnoredAndTheNextPolicyDecides) {
  PolicyConfig config;
  config.unload_after = Tier::kHost;  // the built-in unload-after policy follows the host's
  PolicyHarness p(config);
  Harness& h = p.h;
  p.policy->armed = Hook::kOnIdle;
  {
    auto a = h.registry->acquire("a");
    ASSERT_TRUE(a) << a.error().to_string();
  }  // release (noexcept): the thrower is skipped, unload-after moves a to the host
  EXPECT_GT(p.policy->thrown.load(), 0);
  EXPECT_EQ(h.state("a"), ModelState::kOffloaded);
  expect_settled(h);
  EXPECT_TRUE(h.registry->acquire("a"));
}

TEST(RegistryHostExceptionTest, ThrowingExpiresAtIsIgnored) {
  PolicyHarness p;
  Harness& h = p.h;
  ASSERT_TRUE(h.registry->acquire("a"));
  p.policy->armed = Hook::kExpiresAt;
  EXPECT_EQ(h.registry->list().size(), 2u);
  EXPECT_FALSE(h.info("a").expires_at);
  h.registry->tick();
  EXPECT_GT(p.policy->thrown.load(), 0);
  EXPECT_EQ(h.state("a"), ModelState::kResident);
  expect_settled(h);
}

TEST(RegistryHostExceptionTest, ThrowingOnAccessKeepsTheLease) {
  PolicyHarness p;
  Harness& h = p.h;
  p.policy->armed = Hook::kOnAccess;
  auto a = h.registry->acquire("a");  // a notification: the lease stands
  ASSERT_TRUE(a) << a.error().to_string();
  EXPECT_EQ(p.policy->thrown.load(), 1);
  EXPECT_EQ(h.info("a").leases, 1u);
  a->release();
  EXPECT_EQ(h.info("a").leases, 0u);
  expect_settled(h);
}

TEST(RegistryHostExceptionTest, ThrowingPreloadFailsCreate) {
  auto policy = std::make_shared<ThrowingPolicy>();
  policy->armed = Hook::kPreload;
  auto device = std::make_shared<SimulatedDevice>(10 * kGiB);
  RegistryOptions o;
  o.backend = std::make_shared<SimulatedBackend>(device);
  o.monitor = device;
  o.background_thread = false;
  o.policies = {policy};
  auto r = ModelRegistry::create(config_of({model("a", kGiB)}), o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInternal);
  EXPECT_THAT(r.error().message, HasSubstr("policy 'thrower' threw: hook bug"));
  EXPECT_EQ(device->allocated_bytes(), 0u);
}

// Before the fix, an exception on the background thread called std::terminate.
TEST(RegistryHostExceptionTest, ThrowingPolicyOnTheBackgroundThreadIsContained) {
  auto policy = std::make_shared<ThrowingPolicy>();
  policy->armed = Hook::kEnforceLimits;
  auto device = std::make_shared<SimulatedDevice>(10 * kGiB);
  RegistryConfig c = config_of({model("a", kGiB)});
  c.monitor_interval = std::chrono::milliseconds(1);
  RegistryOptions o;
  o.backend = std::make_shared<SimulatedBackend>(device);
  o.monitor = device;
  o.background_thread = true;
  o.policies = {policy};
  auto r = ModelRegistry::create(c, o);
  ASSERT_TRUE(r) << r.error().to_string();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (policy->thrown.load() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_GE(policy->thrown.load(), 3);  // the loop keeps running
  policy->armed = Hook::kNone;
  EXPECT_TRUE((*r)->acquire("a"));
}

// ---- the weight backend, its weights, the device monitor ---------------------

// SimulatedBackend whose open() throws while armed.
class ThrowingBackend final : public WeightBackend {
 public:
  explicit ThrowingBackend(std::shared_ptr<SimulatedDevice> device, SimulatedBackend::Hooks hooks)
      : inner_(std::move(device), std::move(hooks)) {}
  std::atomic<bool> open_throws{false};
  Expected<std::unique_ptr<ModelWeights>> open(const ModelConfig& c) override {
    if (open_throws) throw std::runtime_error("open bug");
    return inner_.open(c);
  }

 private:
  SimulatedBackend inner_;
};

TEST(RegistryHostExceptionTest, ThrowingBackendOpenOrLoadIsAFailedLoad) {
  auto device = std::make_shared<SimulatedDevice>(10 * kGiB);
  std::atomic<bool> load_throws{false};
  SimulatedBackend::Hooks hooks;
  hooks.on_load = [&](const std::string&, Tier) {
    if (load_throws) throw std::runtime_error("load bug");
  };
  auto backend = std::make_shared<ThrowingBackend>(device, hooks);
  RegistryConfig c = config_of({model("a", kGiB)});
  c.host_budget_bytes = 64 * kGiB;
  RegistryOptions o;
  o.backend = backend;
  o.monitor = device;
  o.background_thread = false;
  auto registry = ModelRegistry::create(c, o).value();

  backend->open_throws = true;
  auto plan = registry->plan("a");
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().code, ErrorCode::kInternal);
  auto a = registry->acquire("a");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, ErrorCode::kInternal);
  EXPECT_THAT(a.error().message, HasSubstr("the weight backend opening 'a' threw: open bug"));
  EXPECT_EQ(registry->info("a")->state, ModelState::kFailed);
  backend->open_throws = false;

  load_throws = true;
  a = registry->acquire("a");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, ErrorCode::kInternal);
  EXPECT_THAT(a.error().message, HasSubstr("the weights of 'a' threw: load bug"));
  EXPECT_EQ(registry->info("a")->state, ModelState::kFailed);
  EXPECT_EQ(registry->stats().load_failures, 2u);
  EXPECT_EQ(device->allocated_bytes(), 0u);
  load_throws = false;

  a = registry->acquire("a");
  ASSERT_TRUE(a) << a.error().to_string();
  EXPECT_EQ(device->allocated_bytes(), kGiB);
  EXPECT_EQ(registry->stats().device_bytes, kGiB);
}

// A monitor whose query() throws while armed: taken as no information.
class ThrowingMonitor final : public DeviceMonitor {
 public:
  explicit ThrowingMonitor(std::shared_ptr<SimulatedDevice> device) : device_(std::move(device)) {}
  std::atomic<bool> throws{false};
  std::string name() const override { return "throwing"; }
  Expected<DeviceMemoryInfo> query() override {
    if (throws) throw std::runtime_error("monitor bug");
    return device_->query();
  }

 private:
  std::shared_ptr<SimulatedDevice> device_;
};

TEST(RegistryHostExceptionTest, ThrowingMonitorIsNoInformation) {
  auto device = std::make_shared<SimulatedDevice>(10 * kGiB);
  auto monitor = std::make_shared<ThrowingMonitor>(device);
  RegistryConfig c = config_of({model("a", kGiB)});
  RegistryOptions o;
  o.backend = std::make_shared<SimulatedBackend>(device);
  o.monitor = monitor;
  o.background_thread = false;
  auto registry = ModelRegistry::create(c, o).value();
  monitor->throws = true;
  auto a = registry->acquire("a");  // no free memory known: refused, not thrown
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, ErrorCode::kResourceExhausted);
  registry->tick();
  EXPECT_EQ(registry->info("a")->state, ModelState::kUnloaded);
  monitor->throws = false;
  EXPECT_TRUE(registry->acquire("a"));
}

}  // namespace
}  // namespace tp::testing
