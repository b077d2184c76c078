#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <thread>

#include "support/registry_harness.h"

namespace tp::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(RegistryTest, LazyLoadsOnFirstAcquireAndKeeps) {
  Harness h(config_of({model("a", 1 * kGiB), model("b", 2 * kGiB)}));
  EXPECT_EQ(h.device->allocated_bytes(), 0u);  // nothing at start
  auto rows = h.registry->list();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].state, ModelState::kUnloaded);
  EXPECT_FALSE(rows[0].last_use);
  {
    auto lease = h.registry->acquire("a");
    ASSERT_TRUE(lease) << lease.error().to_string();
    EXPECT_EQ(lease->name(), "a");
    EXPECT_TRUE(lease->weights().on_device());
    ModelInfo i = h.info("a");
    EXPECT_EQ(i.state, ModelState::kResident);
    EXPECT_EQ(i.tier, Tier::kDevice);
    EXPECT_EQ(i.leases, 1u);
    EXPECT_EQ(i.device_bytes, 1 * kGiB);
    EXPECT_EQ(i.load_count, 1u);
    EXPECT_TRUE(i.last_use);
  }
  EXPECT_EQ(h.state("a"), ModelState::kResident);  // lazy keeps
  EXPECT_EQ(h.info("a").leases, 0u);
  EXPECT_THAT(h.take_events(), ElementsAre("a:disk->device:lazy"));
  auto again = h.registry->acquire("a");
  ASSERT_TRUE(again);
  RegistryStats s = h.registry->stats();
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.loads, 1u);
  EXPECT_EQ(s.load_ms.count, 1u);
  h.expect_accounting();
}

TEST(RegistryTest, UnknownModelIsNotFoundAndNamesIt) {
  Harness h(config_of({model("a", kGiB)}));
  auto lease = h.registry->acquire("nope");
  ASSERT_FALSE(lease);
  EXPECT_EQ(lease.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(lease.error().message, HasSubstr("model 'nope' is not configured (configured: a)"));
  EXPECT_EQ(h.registry->unload("nope", Tier::kHost).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(h.registry->preload("nope").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(h.registry->plan("nope").error().code, ErrorCode::kNotFound);
}

TEST(RegistryTest, UnloadAfterToHostThenReloadFromHost) {
  PolicyConfig p;
  p.unload_after = Tier::kHost;
  Harness h(config_of({model("a", 3 * kGiB)}, p));
  { auto lease = h.registry->acquire("a").value(); }
  ModelInfo i = h.info("a");
  EXPECT_EQ(i.state, ModelState::kOffloaded);
  EXPECT_EQ(i.tier, Tier::kHost);
  EXPECT_EQ(i.device_bytes, 0u);
  EXPECT_EQ(i.host_bytes, 3 * kGiB);
  EXPECT_EQ(h.device->allocated_bytes(), 0u);
  { auto lease = h.registry->acquire("a").value(); }
  EXPECT_THAT(h.take_events(), ElementsAre("a:disk->device:lazy", "a:device->host:unload-after",
                                           "a:host->device:lazy", "a:device->host:unload-after"));
  RegistryStats s = h.registry->stats();
  EXPECT_EQ(s.loads, 1u);
  EXPECT_EQ(s.reloads, 1u);
  EXPECT_EQ(h.backend->disk_loads(), 1u);  // the reload never touched disk
  EXPECT_EQ(s.evictions(Reason::kUnloadAfter), 2u);
  EXPECT_EQ(s.bytes_to_host, 3 * kGiB);  // the second offload reused the host copy
  EXPECT_EQ(s.bytes_returned, 6 * kGiB);
}

TEST(RegistryTest, UnloadAfterToDiskDropsEverything) {
  PolicyConfig p;
  p.unload_after = Tier::kDisk;
  Harness h(config_of({model("a", kGiB)}, p));
  { auto lease = h.registry->acquire("a").value(); }
  EXPECT_EQ(h.state("a"), ModelState::kUnloaded);
  EXPECT_EQ(h.info("a").host_bytes, 0u);
  EXPECT_EQ(h.backend->host_bytes(), 0u);
  EXPECT_EQ(h.device->allocated_bytes(), 0u);
}

TEST(RegistryTest, PerModelOverrideBeatsDefault) {
  PolicyConfig p;
  p.unload_after = Tier::kHost;
  ModelConfig keep = model("keep", kGiB);
  keep.policy.unload_after = Tier::kDevice;
  Harness h(config_of({keep, model("drop", kGiB)}, p));
  { auto a = h.registry->acquire("keep").value(); auto b = h.registry->acquire("drop").value(); }
  EXPECT_EQ(h.state("keep"), ModelState::kResident);
  EXPECT_EQ(h.state("drop"), ModelState::kOffloaded);
}

TEST(RegistryTest, IdleTimeoutWithInjectedClock) {
  PolicyConfig p;
  p.idle_timeout_s = 300;
  Harness h(config_of({model("a", kGiB)}, p));
  auto lease = h.registry->acquire("a").value();
  h.clock->advance(std::chrono::hours(1));
  h.registry->tick();
  EXPECT_EQ(h.state("a"), ModelState::kResident);  // leased: the timer does not run
  EXPECT_FALSE(h.info("a").expires_at);
  lease.release();
  TimePoint released = h.clock->now();
  ASSERT_TRUE(h.info("a").expires_at);
  EXPECT_EQ(*h.info("a").expires_at, released + std::chrono::seconds(300));
  h.clock->advance(std::chrono::seconds(299));
  auto next = h.registry->tick();
  EXPECT_EQ(h.state("a"), ModelState::kResident);
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, released + std::chrono::seconds(300));
  // Every use resets the timer.
  { auto again = h.registry->acquire("a").value(); }
  h.clock->advance(std::chrono::seconds(2));
  h.registry->tick();
  EXPECT_EQ(h.state("a"), ModelState::kResident);
  h.clock->advance(std::chrono::seconds(299));
  h.registry->tick();
  EXPECT_EQ(h.state("a"), ModelState::kOffloaded);  // idle_unload_to defaults to host
  EXPECT_FALSE(h.info("a").expires_at);
  EXPECT_EQ(h.registry->stats().evictions(Reason::kTtl), 1u);
}

TEST(RegistryTest, IdleTimeoutZeroUnloadsAtOnceNegativeNever) {
  ModelConfig now = model("now", kGiB);
  now.policy.idle_timeout_s = 0;
  now.policy.idle_unload_to = Tier::kDisk;
  ModelConfig never = model("never", kGiB);
  never.policy.idle_timeout_s = -1;
  Harness h(config_of({now, never}));
  { auto a = h.registry->acquire("now").value(); auto b = h.registry->acquire("never").value(); }
  EXPECT_EQ(h.state("now"), ModelState::kUnloaded);
  h.clock->advance(std::chrono::hours(24 * 365));
  h.registry->tick();
  EXPECT_EQ(h.state("never"), ModelState::kResident);
  EXPECT_FALSE(h.info("never").expires_at);
}

TEST(RegistryTest, EagerLoadsAtStartInPriorityOrderWithinBudget) {
  PolicyConfig p;
  p.eager = true;
  // 5 GiB device: high (3) and mid (2) fit; low (2) does not, and eager never evicts.
  Harness h(config_of({model("low", 2 * kGiB, 0), model("high", 3 * kGiB, 9), model("mid", 2 * kGiB, 5)}, p),
            5 * kGiB);
  EXPECT_EQ(h.state("high"), ModelState::kResident);
  EXPECT_EQ(h.state("mid"), ModelState::kResident);
  EXPECT_EQ(h.state("low"), ModelState::kUnloaded);
  EXPECT_THAT(h.take_events(), ElementsAre());  // emitted before subscribe
  EXPECT_EQ(h.registry->stats().loads, 2u);
}

TEST(RegistryTest, LruEvictsLeastRecentlyUsedUnleasedModel) {
  PolicyConfig p;
  p.lru_max_models = 2;
  Harness h(config_of({model("a", kGiB), model("b", kGiB), model("c", kGiB)}, p));
  { auto a = h.registry->acquire("a").value(); }
  h.clock->advance(std::chrono::seconds(1));
  { auto b = h.registry->acquire("b").value(); }
  h.clock->advance(std::chrono::seconds(1));
  { auto a = h.registry->acquire("a").value(); }  // a is now more recent than b
  h.clock->advance(std::chrono::seconds(1));
  h.take_events();
  { auto c = h.registry->acquire("c").value(); }
  EXPECT_EQ(h.state("b"), ModelState::kOffloaded);
  EXPECT_EQ(h.state("a"), ModelState::kResident);
  EXPECT_EQ(h.state("c"), ModelState::kResident);
  EXPECT_THAT(h.take_events(), ElementsAre("b:device->host:lru", "c:disk->device:lazy"));
  EXPECT_EQ(h.registry->stats().evictions(Reason::kLru), 1u);
}

TEST(RegistryTest, LruByteLimitSkipsLeasedAndPinned) {
  PolicyConfig p;
  p.lru_max_bytes = 4 * kGiB;
  Harness h(config_of({model("pinned", 2 * kGiB, 0, true), model("leased", kGiB), model("idle", kGiB),
                       model("new", 2 * kGiB)},
                      p));
  { auto x = h.registry->acquire("pinned").value(); }
  auto leased = h.registry->acquire("leased").value();
  { auto x = h.registry->acquire("idle").value(); }
  auto lease = h.registry->acquire("new");
  ASSERT_TRUE(lease) << lease.error().to_string();
  EXPECT_EQ(h.state("idle"), ModelState::kOffloaded);  // the only legal victim
  EXPECT_EQ(h.state("pinned"), ModelState::kResident);
  EXPECT_EQ(h.state("leased"), ModelState::kResident);
}

TEST(RegistryTest, AdmissionEvictsLowerPriorityFirst) {
  Harness h(config_of({model("low", 4 * kGiB, 0), model("high", 4 * kGiB, 10), model("new", 4 * kGiB, 5)}),
            10 * kGiB);
  { auto a = h.registry->acquire("high").value(); }
  h.clock->advance(std::chrono::seconds(1));
  { auto b = h.registry->acquire("low").value(); }  // more recent, but lower priority
  h.take_events();
  ASSERT_TRUE(h.registry->acquire("new"));
  EXPECT_EQ(h.state("low"), ModelState::kOffloaded);
  EXPECT_EQ(h.state("high"), ModelState::kResident);
  EXPECT_THAT(h.take_events(), ElementsAre("low:device->host:pressure", "new:disk->device:lazy"));
}

TEST(RegistryTest, AdmissionFailureStatesNeededFreeAndEvictable) {
  ModelConfig big = model("big", 6 * kGiB);
  big.workspace_bytes = kGiB;
  RegistryConfig c = config_of({model("held", 4 * kGiB), big});
  c.admission_timeout = std::chrono::milliseconds(0);  // fail at once rather than wait for `held`
  Harness h(std::move(c), 10 * kGiB);
  auto held = h.registry->acquire("held").value();
  auto lease = h.registry->acquire("big");
  ASSERT_FALSE(lease);
  EXPECT_EQ(lease.error().code, ErrorCode::kResourceExhausted);
  const std::string& m = lease.error().message;
  EXPECT_THAT(m, HasSubstr("cannot load 'big'"));
  EXPECT_THAT(m, HasSubstr("needs 7.00 GiB (7516192768)"));
  EXPECT_THAT(m, HasSubstr("workspace 1.00 GiB"));
  EXPECT_THAT(m, HasSubstr("free 6.00 GiB (6442450944)"));
  EXPECT_THAT(m, HasSubstr("evictable 0 B"));
  EXPECT_THAT(m, HasSubstr("held by leased models 4.00 GiB"));
  // Consistent afterwards: nothing leaked, and the next request works.
  EXPECT_EQ(h.state("big"), ModelState::kUnloaded);
  EXPECT_EQ(h.registry->stats().admission_failures, 1u);
  held.release();
  ASSERT_TRUE(h.registry->acquire("big"));
  EXPECT_EQ(h.state("held"), ModelState::kOffloaded);
  h.expect_accounting();
}

TEST(RegistryTest, AdmissionWaitsForLeasesToEnd) {
  RegistryConfig c = config_of({model("held", 6 * kGiB), model("next", 6 * kGiB)});
  c.admission_timeout = std::chrono::seconds(30);
  Harness h(std::move(c), 10 * kGiB);
  auto held = h.registry->acquire("held").value();
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    held.release();
  });
  auto lease = h.registry->acquire("next");
  releaser.join();
  ASSERT_TRUE(lease) << lease.error().to_string();
  EXPECT_EQ(h.registry->stats().admission_waits, 1u);
  EXPECT_EQ(h.state("held"), ModelState::kOffloaded);
}

TEST(RegistryTest, AdmissionTimesOutWhenLeasesStay) {
  RegistryConfig c = config_of({model("held", 6 * kGiB), model("next", 6 * kGiB)});
  c.admission_timeout = std::chrono::milliseconds(30);
  Harness h(std::move(c), 10 * kGiB);
  auto held = h.registry->acquire("held").value();
  auto lease = h.registry->acquire("next");
  ASSERT_FALSE(lease);
  EXPECT_EQ(lease.error().code, ErrorCode::kResourceExhausted);
  EXPECT_EQ(h.registry->stats().admission_waits, 1u);
}

// The admission deadline is on the registry's clock: with a ManualClock an
// acquire that must wait for a lease times out once the clock passes
// admission_timeout, not before (the hour-long timeout is never reached in
// real time here).
TEST(RegistryTest, AdmissionDeadlineFollowsTheInjectedClock) {
  RegistryConfig c = config_of({model("held", 6 * kGiB), model("next", 6 * kGiB)});
  c.admission_timeout = std::chrono::hours(1);
  Harness h(std::move(c), 10 * kGiB);
  std::future<Expected<ModelLease>> waiting;  // destroyed after `held`: a failed check does not hang
  auto held = h.registry->acquire("held").value();
  waiting = std::async(std::launch::async, [&] { return h.registry->acquire("next"); });
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (h.registry->stats().admission_waits == 0 && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(h.registry->stats().admission_waits, 1u);

  h.clock->advance(std::chrono::minutes(59));
  EXPECT_EQ(waiting.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout)
      << "timed out before the clock reached the deadline";
  h.clock->advance(std::chrono::minutes(2));
  ASSERT_EQ(waiting.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "still waiting after the clock passed the deadline";
  auto lease = waiting.get();
  ASSERT_FALSE(lease);
  EXPECT_EQ(lease.error().code, ErrorCode::kResourceExhausted);
  EXPECT_EQ(h.registry->stats().admission_failures, 1u);
  EXPECT_EQ(h.state("held"), ModelState::kResident);
  EXPECT_EQ(h.state("next"), ModelState::kUnloaded);
  h.expect_accounting();
}

TEST(RegistryTest, LeasesBlockEvictionAndUnload) {
  RegistryConfig c = config_of({model("a", 6 * kGiB), model("b", 6 * kGiB)});
  c.admission_timeout = std::chrono::milliseconds(0);  // b fails at once rather than wait for a's lease
  Harness h(std::move(c), 10 * kGiB);
  auto a = h.registry->acquire("a").value();
  auto u = h.registry->unload("a", Tier::kDisk);
  ASSERT_FALSE(u);
  EXPECT_EQ(u.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(u.error().message, HasSubstr("1 live lease"));
  EXPECT_FALSE(h.registry->acquire("b"));
  EXPECT_EQ(h.state("a"), ModelState::kResident);
  EXPECT_TRUE(a.weights().on_device());
}

TEST(RegistryTest, PinnedIsNeverEvictedByPolicyButExplicitUnloadWorks) {
  Harness h(config_of({model("pin", 6 * kGiB, 0, true), model("b", 6 * kGiB)}), 10 * kGiB);
  { auto a = h.registry->acquire("pin").value(); }
  auto b = h.registry->acquire("b");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, ErrorCode::kResourceExhausted);
  EXPECT_EQ(h.state("pin"), ModelState::kResident);
  auto report = h.registry->unload("pin", Tier::kHost);
  ASSERT_TRUE(report);
  EXPECT_EQ(report->bytes, 6 * kGiB);
  EXPECT_EQ(report->bytes_returned, static_cast<int64_t>(6 * kGiB));
  EXPECT_TRUE(h.registry->acquire("b"));
}

TEST(RegistryTest, PressureEvictsOnlyAsMuchAsNeededCheapestFirst) {
  PolicyConfig p;
  p.min_free_bytes = 2 * kGiB;
  RegistryConfig c = config_of({model("big", 4 * kGiB), model("small", 1 * kGiB), model("mid", 2 * kGiB)}, p);
  Harness h(std::move(c), 12 * kGiB);
  for (const char* n : {"big", "small", "mid"}) {
    auto l = h.registry->acquire(n).value();
  }
  h.take_events();
  h.registry->tick();
  EXPECT_THAT(h.take_events(), ElementsAre());  // 5 GiB free >= 2 GiB headroom
  h.device->set_external_bytes(4 * kGiB);  // another program grows: 1 GiB free, need 1 more
  h.registry->tick();
  EXPECT_THAT(h.take_events(), ElementsAre("small:device->host:pressure"));
  EXPECT_EQ(h.state("big"), ModelState::kResident);
  EXPECT_EQ(h.state("mid"), ModelState::kResident);
  h.device->set_external_bytes(6 * kGiB);  // 0 free: need 2 GiB, and mid covers it more cheaply than big
  h.registry->tick();
  EXPECT_THAT(h.take_events(), ElementsAre("mid:device->host:pressure"));
  EXPECT_EQ(h.registry->stats().evictions(Reason::kPressure), 2u);
}

TEST(RegistryTest, PressureRespectsHeadroomAtAdmission) {
  PolicyConfig p;
  p.min_free_bytes = 3 * kGiB;
  Harness h(config_of({model("a", 8 * kGiB)}, p), 10 * kGiB);
  auto lease = h.registry->acquire("a");
  ASSERT_FALSE(lease);
  EXPECT_THAT(lease.error().message, HasSubstr("after a headroom of 3.00 GiB"));
}

TEST(RegistryTest, HostBudgetFallsBackToDiskAndDropsOldCopies) {
  PolicyConfig p;
  p.unload_after = Tier::kHost;
  RegistryConfig c = config_of({model("a", 3 * kGiB), model("b", 3 * kGiB), model("c", 5 * kGiB)}, p);
  c.host_budget_bytes = 4 * kGiB;
  Harness h(std::move(c));
  { auto a = h.registry->acquire("a").value(); }
  EXPECT_EQ(h.state("a"), ModelState::kOffloaded);
  h.clock->advance(std::chrono::seconds(1));
  { auto b = h.registry->acquire("b").value(); }  // a's copy makes room for b's
  EXPECT_EQ(h.state("b"), ModelState::kOffloaded);
  EXPECT_EQ(h.state("a"), ModelState::kUnloaded);
  { auto c = h.registry->acquire("c").value(); }  // larger than the whole budget: disk
  EXPECT_EQ(h.state("c"), ModelState::kUnloaded);
  EXPECT_EQ(h.state("b"), ModelState::kOffloaded);  // b's copy was not dropped in vain
  EXPECT_LE(h.backend->host_bytes(), 4 * kGiB);
  EXPECT_EQ(h.registry->stats().host_bytes, h.backend->host_bytes());
}

TEST(RegistryTest, PinnedHostAllocationFailureFallsBackToDisk) {
  PolicyConfig p;
  p.unload_after = Tier::kHost;
  Harness h(config_of({model("a", kGiB)}, p));
  h.backend->fail_next_host_allocations(1);
  { auto a = h.registry->acquire("a").value(); }
  EXPECT_EQ(h.state("a"), ModelState::kUnloaded);
  EXPECT_EQ(h.device->allocated_bytes(), 0u);
  EXPECT_TRUE(h.registry->acquire("a"));  // and the next request works
}

TEST(RegistryTest, FailedLoadIsReportedAndRetried) {
  Harness h(config_of({model("a", kGiB)}));
  h.backend->fail_next_load("a");
  auto lease = h.registry->acquire("a");
  ASSERT_FALSE(lease);
  EXPECT_EQ(lease.error().code, ErrorCode::kDataLoss);
  ModelInfo i = h.info("a");
  EXPECT_EQ(i.state, ModelState::kFailed);
  EXPECT_THAT(i.last_error, HasSubstr("simulated read error"));
  EXPECT_EQ(h.device->allocated_bytes(), 0u);
  EXPECT_THAT(h.take_events(), ElementsAre("a:disk->device:lazy:failed"));
  ASSERT_TRUE(h.registry->acquire("a"));
  EXPECT_EQ(h.state("a"), ModelState::kResident);
  EXPECT_TRUE(h.info("a").last_error.empty());
  EXPECT_EQ(h.registry->stats().load_failures, 1u);
}

TEST(RegistryTest, DeviceAllocationFailureLeavesNothing) {
  Harness h(config_of({model("a", kGiB)}));
  h.device->fail_next_allocations(1);
  auto lease = h.registry->acquire("a");
  ASSERT_FALSE(lease);
  EXPECT_EQ(lease.error().code, ErrorCode::kResourceExhausted);
  EXPECT_EQ(h.device->allocated_bytes(), 0u);
  EXPECT_TRUE(h.registry->acquire("a"));
}

TEST(RegistryTest, CancelledLoadRestoresState) {
  std::atomic<bool> cancel{true};
  Harness h(config_of({model("a", kGiB)}));
  AcquireOptions o;
  o.cancel = &cancel;
  auto lease = h.registry->acquire("a", o);
  ASSERT_FALSE(lease);
  EXPECT_EQ(lease.error().code, ErrorCode::kCancelled);
  EXPECT_EQ(h.state("a"), ModelState::kUnloaded);
  cancel = false;
  EXPECT_TRUE(h.registry->acquire("a", o));
}

TEST(RegistryTest, SingleFlightUnder16Threads) {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::atomic<int> in_load{0};
  SimulatedBackend::Hooks hooks;
  hooks.on_load = [&](const std::string&, Tier) {
    in_load.fetch_add(1);
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return open; });
  };
  Harness h(config_of({model("a", kGiB)}), 10 * kGiB, hooks);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 16; ++i)
    threads.emplace_back([&] {
      auto lease = h.registry->acquire("a");
      if (lease && lease->weights().on_device()) ok.fetch_add(1);
    });
  while (in_load.load() == 0) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the others pile up
  EXPECT_EQ(h.state("a"), ModelState::kLoading);
  {
    std::lock_guard<std::mutex> lock(mu);
    open = true;
  }
  cv.notify_all();
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 16);
  EXPECT_EQ(in_load.load(), 1);
  EXPECT_EQ(h.backend->loads(), 1u);
  EXPECT_EQ(h.registry->stats().loads, 1u);
  EXPECT_EQ(h.registry->stats().misses + h.registry->stats().hits, 16u);
}

TEST(RegistryTest, LoadingOneModelDoesNotBlockAcquiringAnother) {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::atomic<bool> slow_started{false};
  SimulatedBackend::Hooks hooks;
  hooks.on_load = [&](const std::string& name, Tier) {
    if (name != "slow") return;
    slow_started = true;
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return open; });
  };
  Harness h(config_of({model("fast", kGiB), model("slow", kGiB)}), 10 * kGiB, hooks);
  { auto f = h.registry->acquire("fast").value(); }
  std::thread loader([&] { EXPECT_TRUE(h.registry->acquire("slow")); });
  while (!slow_started) std::this_thread::yield();
  {
    auto f = h.registry->acquire("fast");  // would deadlock if the load held the registry
    EXPECT_TRUE(f);
    EXPECT_EQ(h.registry->list().size(), 2u);
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    open = true;
  }
  cv.notify_all();
  loader.join();
}

TEST(RegistryTest, PreloadUnloadAndUnloadAll) {
  Harness h(config_of({model("a", kGiB), model("b", kGiB)}));
  ASSERT_TRUE(h.registry->preload("a"));
  ASSERT_TRUE(h.registry->preload("b"));
  EXPECT_THAT(h.take_events(), ElementsAre("a:disk->device:explicit", "b:disk->device:explicit"));
  auto r = h.registry->unload("a", Tier::kHost).value();
  EXPECT_EQ(r.to, Tier::kHost);
  EXPECT_EQ(h.state("a"), ModelState::kOffloaded);
  auto r2 = h.registry->unload("a", Tier::kDisk).value();  // drops the host copy
  EXPECT_EQ(r2.from, Tier::kHost);
  EXPECT_EQ(h.state("a"), ModelState::kUnloaded);
  EXPECT_EQ(h.backend->host_bytes(), 0u);
  auto lease = h.registry->acquire("a").value();
  auto all = h.registry->unload_all(Tier::kDisk);
  ASSERT_FALSE(all);
  EXPECT_THAT(all.error().message, HasSubstr("still leased, left on the device: a"));
  EXPECT_EQ(h.state("b"), ModelState::kUnloaded);
  lease.release();
  EXPECT_TRUE(h.registry->unload_all(Tier::kDisk));
  EXPECT_EQ(h.device->allocated_bytes(), 0u);
  EXPECT_EQ(h.registry->unload("a", Tier::kDevice).error().code, ErrorCode::kInvalidArgument);
}

TEST(RegistryTest, UnloadReportsBytesActuallyReturned) {
  Harness h(config_of({model("a", 2 * kGiB)}));
  ASSERT_TRUE(h.registry->preload("a"));
  h.device->leak_next_releases(1);  // a cache keeps the memory: nothing goes back to the driver
  auto r = h.registry->unload("a", Tier::kDisk).value();
  EXPECT_EQ(r.bytes, 2 * kGiB);
  EXPECT_EQ(r.bytes_returned, 0);
  ASSERT_TRUE(h.registry->preload("a"));
  r = h.registry->unload("a", Tier::kDisk).value();
  EXPECT_EQ(r.bytes_returned, static_cast<int64_t>(2 * kGiB));
}

TEST(RegistryTest, PlanIsADryRun) {
  Harness h(config_of({model("a", 6 * kGiB), model("b", 6 * kGiB)}), 10 * kGiB);
  ASSERT_TRUE(h.registry->preload("a"));
  h.take_events();
  LoadPlan p = h.registry->plan("b").value();
  EXPECT_FALSE(p.resident);
  EXPECT_TRUE(p.fits);
  EXPECT_EQ(p.bytes_to_move, 6 * kGiB);
  ASSERT_EQ(p.evictions.size(), 1u);
  EXPECT_EQ(p.evictions[0].model, "a");
  EXPECT_EQ(p.bytes_evicted, 6 * kGiB);
  EXPECT_EQ(h.state("a"), ModelState::kResident);  // nothing moved
  EXPECT_EQ(h.state("b"), ModelState::kUnloaded);
  EXPECT_THAT(h.take_events(), ElementsAre());
  EXPECT_TRUE(h.registry->plan("a").value().resident);
  auto lease = h.registry->acquire("a").value();
  LoadPlan blocked = h.registry->plan("b").value();
  EXPECT_FALSE(blocked.fits);
  EXPECT_THAT(blocked.explanation, HasSubstr("cannot load 'b'"));
}

TEST(RegistryTest, DestroyWithLiveLeasesIsDeferred) {
  auto h = std::make_unique<Harness>(config_of({model("a", kGiB), model("b", kGiB)}));
  auto lease = h->registry->acquire("a").value();
  auto device = h->device;
  h->registry.reset();  // the registry goes away while a lease lives
  EXPECT_TRUE(lease.weights().on_device());
  EXPECT_EQ(device->allocated_bytes(), kGiB);
  lease.release();  // the last lease frees everything
  EXPECT_EQ(device->allocated_bytes(), 0u);
}

TEST(RegistryTest, ThrowingEventCallbackIsContained) {
  Harness h(config_of({model("a", kGiB)}));
  h.registry->subscribe([](const ResidencyEvent&) { throw std::runtime_error("host bug"); });
  EXPECT_TRUE(h.registry->acquire("a"));
  EXPECT_THAT(h.take_events(), ElementsAre("a:disk->device:lazy"));  // other subscribers still ran
}

TEST(RegistryTest, UnsubscribeStopsDeliveryAndMayRunInsideACallback) {
  Harness h(config_of({model("a", kGiB), model("b", kGiB)}));
  int calls = 0;
  int id = 0;
  id = h.registry->subscribe([&](const ResidencyEvent&) {
    ++calls;
    EXPECT_TRUE(h.registry->unsubscribe(id));  // from inside its own callback: no self-wait
  });
  ASSERT_TRUE(h.registry->preload("a"));
  ASSERT_TRUE(h.registry->preload("b"));
  EXPECT_EQ(calls, 1);
  auto again = h.registry->unsubscribe(id);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kNotFound);
}

TEST(RegistryTest, CreateRejectsBadOptions) {
  RegistryOptions o;
  auto r = ModelRegistry::create(config_of({model("a", kGiB)}), o);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("backend is required"));
  auto dup = config_of({model("a", kGiB), model("a", kGiB)});
  o.backend = std::make_shared<SimulatedBackend>(std::make_shared<SimulatedDevice>(kGiB));
  o.monitor = std::make_shared<SimulatedDevice>(kGiB);
  r = ModelRegistry::create(dup, o);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("models.a: duplicate model name"));
}

TEST(RegistryTest, BackgroundThreadAppliesIdleTimeoutAndPressure) {
  auto device = std::make_shared<SimulatedDevice>(10 * kGiB);
  RegistryConfig c;
  ModelConfig idle = model("idle", kGiB);
  idle.policy.idle_timeout_s = 0.02;
  c.models = {idle, model("big", 4 * kGiB)};
  c.policy.min_free_bytes = 2 * kGiB;
  c.monitor_interval = std::chrono::milliseconds(5);
  c.host_budget_bytes = 16 * kGiB;
  RegistryOptions o;
  o.backend = std::make_shared<SimulatedBackend>(device);
  o.monitor = device;
  std::atomic<int> cleaned{0};  // the clean-up step runs on the background thread too
  o.clean_caches = [&cleaned] { cleaned.fetch_add(1); };
  auto registry = ModelRegistry::create(c, o).value();
  { auto l = registry->acquire("idle").value(); }
  { auto l = registry->acquire("big").value(); }
  EXPECT_TRUE(eventually([&] { return registry->info("idle")->state == ModelState::kOffloaded; }));
  EXPECT_EQ(registry->info("big")->state, ModelState::kResident);
  device->set_external_bytes(5 * kGiB);  // another program: 1 GiB free < 2 GiB headroom
  EXPECT_TRUE(eventually([&] { return registry->info("big")->state == ModelState::kOffloaded; }));
  EXPECT_EQ(registry->stats().evictions(Reason::kPressure), 1u);
  EXPECT_EQ(registry->stats().evictions(Reason::kTtl), 1u);
  EXPECT_GE(cleaned.load(), 2);
}

// A host policy that always evicts the largest resident model first.
class LargestFirst final : public MemoryPolicy {
 public:
  std::string_view name() const override { return "largest-first"; }
  std::vector<Eviction> select_victims(const RegistryView& view, uint64_t, Reason reason) override {
    const ModelView* best = nullptr;
    for (const auto& m : view.models)
      if (m.evictable() && (!best || m.device_bytes > best->device_bytes)) best = &m;
    if (!best) return {};
    return {Eviction{std::string(best->name), Tier::kDisk, reason}};
  }
  void on_access(const ModelView&) override { ++accesses; }
  int accesses = 0;
};

TEST(RegistryTest, UserPolicyChoosesVictims) {
  auto policy = std::make_shared<LargestFirst>();
  Harness h(config_of({model("small", 2 * kGiB), model("large", 5 * kGiB), model("new", 4 * kGiB)}), 10 * kGiB, {},
            {policy});
  { auto a = h.registry->acquire("small").value(); auto b = h.registry->acquire("large").value(); }
  ASSERT_TRUE(h.registry->acquire("new"));
  EXPECT_EQ(h.state("large"), ModelState::kUnloaded);  // its choice, its tier
  EXPECT_EQ(h.state("small"), ModelState::kResident);
  EXPECT_EQ(policy->accesses, 3);
}

}  // namespace
}  // namespace tp::testing
