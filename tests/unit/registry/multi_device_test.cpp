// A registry over several devices (#23 item 6): placement by name and by
// "auto" (free memory and reload cost), per-device budgets, headroom,
// pressure, LRU limits, admission queues, cache clean-ups and stats; device
// names the registry lacks refused.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <thread>

#include "support/registry_harness.h"

namespace tp::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(MultiDeviceTest, ModelsGoToTheDeviceTheyName) {
  MultiHarness h(config_of({model_on("a", 3 * kGiB, "sim:0"), model_on("b", 4 * kGiB, "sim:1"),
                            model_on("c", 1 * kGiB, "")}),
                 {8 * kGiB, 8 * kGiB});
  ASSERT_TRUE(h.registry);
  EXPECT_EQ(h.info("a").device, "sim:0");
  EXPECT_EQ(h.info("b").device, "sim:1");
  EXPECT_EQ(h.info("c").device, "sim:0") << "no device: the registry's first";
  for (const char* m : {"a", "b", "c"}) ASSERT_TRUE(h.registry->preload(m)) << m;
  EXPECT_EQ(h.devices[0]->allocated_bytes(), 4 * kGiB);
  EXPECT_EQ(h.devices[1]->allocated_bytes(), 4 * kGiB);
  EXPECT_EQ(h.backends[0]->loads(), 2u);
  EXPECT_EQ(h.backends[1]->loads(), 1u);
  EXPECT_THAT(h.take_events(), ElementsAre("a@sim:0:disk->device:explicit", "b@sim:1:disk->device:explicit",
                                           "c@sim:0:disk->device:explicit"));
  auto plan = h.registry->plan("b");
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->device, "sim:1");
  h.expect_accounting();
  const RegistryStats st = h.registry->stats();
  ASSERT_EQ(st.devices.size(), 2u);
  EXPECT_EQ(st.devices[0].resident_models, 2u);
  EXPECT_EQ(st.devices[1].resident_models, 1u);
  EXPECT_EQ(st.devices[0].peak_bytes, 4 * kGiB);
  EXPECT_EQ(st.devices[1].peak_bytes, 4 * kGiB);
  EXPECT_EQ(st.peak_device_bytes, 8 * kGiB);
}

TEST(MultiDeviceTest, ADeviceTheRegistryLacksIsRefusedNamingItsDevices) {
  MultiHarness h(config_of({model("a", kGiB)}), {kGiB});  // only for its devices
  auto bad = MultiHarness::create(config_of({model_on("a", kGiB, "sim:0"), model_on("big", kGiB, "cuda:3")}), h,
                                  {8 * kGiB, 8 * kGiB});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(bad.error().message,
              HasSubstr("models.big.device: model 'big': no device 'cuda:3' in this registry (its devices: sim:0, sim:1"));

  // "cuda:0" means the only device of a one-device registry, whatever its
  // name (configs written for one GPU), but not on a registry of several.
  auto one = MultiHarness::create(config_of({model_on("a", kGiB, "cuda:0")}), h, {8 * kGiB});
  ASSERT_TRUE(one) << one.error().to_string();
  EXPECT_EQ((*one)->info("a")->device, "sim:0");
  auto two = MultiHarness::create(config_of({model_on("a", kGiB, "cuda:0")}), h, {8 * kGiB, 8 * kGiB});
  ASSERT_FALSE(two);
  EXPECT_THAT(two.error().message, HasSubstr("no device 'cuda:0'"));

  RegistryConfig budgets = config_of({model("a", kGiB)});
  budgets.devices["sim:9"].budget_bytes = kGiB;
  auto unknown_budget = MultiHarness::create(budgets, h, {8 * kGiB, 8 * kGiB});
  ASSERT_FALSE(unknown_budget);
  EXPECT_THAT(unknown_budget.error().message, HasSubstr("devices.sim:9: no device 'sim:9'"));
}

TEST(MultiDeviceTest, DeviceOptionsAreChecked) {
  auto device = std::make_shared<SimulatedDevice>(kGiB, "sim:0");
  auto backend = std::make_shared<SimulatedBackend>(device);
  auto refused = [&](RegistryOptions o, const std::string& what) {
    o.background_thread = false;
    auto r = ModelRegistry::create(config_of({model("a", kGiB)}), std::move(o));
    ASSERT_FALSE(r) << what;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(r.error().message, HasSubstr(what));
  };
  RegistryOptions twice;
  twice.devices = {{"sim:0", backend, device, {}}, {"sim:0", backend, device, {}}};
  refused(twice, "devices[1].name: 'sim:0' is given twice");
  RegistryOptions unnamed;
  unnamed.devices = {{"", backend, device, {}}};
  refused(unnamed, "devices[0].name is required");
  RegistryOptions no_monitor;
  no_monitor.devices = {{"sim:0", backend, nullptr, {}}};
  refused(no_monitor, "devices[0].monitor is required");
  RegistryOptions both;
  both.devices = {{"sim:0", backend, device, {}}};
  both.monitor = std::make_shared<SimulatedDevice>(kGiB);
  refused(both, "may only repeat devices[0]'s");
  RegistryOptions top_clean;
  top_clean.devices = {{"sim:0", backend, device, {}}};
  top_clean.clean_caches = [] {};
  refused(top_clean, "give it per device");
  RegistryOptions mirror;  // repeating devices[0] is fine
  mirror.devices = {{"sim:0", backend, device, {}}};
  mirror.backend = backend;
  mirror.monitor = device;
  mirror.background_thread = false;
  EXPECT_TRUE(ModelRegistry::create(config_of({model("a", kGiB)}), std::move(mirror)));
}

TEST(MultiDeviceTest, AutoPicksTheDeviceWithTheMostFreeMemory) {
  MultiHarness h(config_of({model_on("x", 3 * kGiB, "auto")}), {10 * kGiB, 10 * kGiB});
  EXPECT_EQ(h.info("x").device, "auto") << "not placed before a load";
  h.devices[0]->set_external_bytes(5 * kGiB);  // another program on sim:0
  auto plan = h.registry->plan("x");
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->device, "sim:1");
  ASSERT_TRUE(h.registry->acquire("x"));
  EXPECT_EQ(h.info("x").device, "sim:1");
  EXPECT_EQ(h.devices[1]->allocated_bytes(), 3 * kGiB);

  // Dropped to disk it is unplaced, and the next load looks again.
  ASSERT_TRUE(h.registry->unload("x", Tier::kDisk));
  EXPECT_EQ(h.info("x").device, "auto");
  h.devices[0]->set_external_bytes(0);
  h.devices[1]->set_external_bytes(6 * kGiB);
  ASSERT_TRUE(h.registry->acquire("x"));
  EXPECT_EQ(h.info("x").device, "sim:0");
  EXPECT_EQ(h.backends[0]->loads(), 1u) << "opened again by sim:0's backend";
  h.expect_accounting();
}

// Where it fits only by evicting, "auto" takes the device whose victims are
// cheapest to bring back (a host copy over a disk read), even with less free
// memory; a model with a host copy reloads to the device it was placed on.
TEST(MultiDeviceTest, AutoWeighsReloadCostAndReloadsWhereItsHostCopyIs) {
  RegistryConfig c = config_of({model_on("cheap", 4 * kGiB, "sim:0"), model_on("dear", 4 * kGiB, "sim:1"),
                                model_on("z", 4 * kGiB, "auto")});
  c.host_budget_bytes = 5 * kGiB;  // room for one host copy only
  MultiHarness h(std::move(c), {6 * kGiB, 7 * kGiB});
  // cheap: resident with a host copy (evicting it is free); dear: resident
  // without one, and the host tier cannot take another (evicting it means a
  // read from disk later).
  ASSERT_TRUE(h.registry->preload("cheap"));
  ASSERT_TRUE(h.registry->unload("cheap", Tier::kHost));
  ASSERT_TRUE(h.registry->preload("cheap"));
  ASSERT_EQ(h.info("cheap").host_bytes, 4 * kGiB);
  ASSERT_TRUE(h.registry->preload("dear"));
  h.take_events();

  auto plan = h.registry->plan("z");
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->device, "sim:0") << plan->explanation;
  ASSERT_TRUE(h.registry->acquire("z"));
  EXPECT_EQ(h.info("z").device, "sim:0");
  EXPECT_EQ(h.state("dear"), ModelState::kResident);
  EXPECT_THAT(h.take_events(), ElementsAre("cheap@sim:0:device->host:pressure", "z@sim:0:disk->device:lazy"));

  // z to the host tier (cheap's copy goes to make room), then sim:1 empties:
  // z still comes back to sim:0, where its pinned copy belongs.
  ASSERT_TRUE(h.registry->unload("z", Tier::kHost));
  ASSERT_TRUE(h.registry->unload("dear", Tier::kDisk));
  EXPECT_EQ(h.info("z").device, "sim:0");
  ASSERT_TRUE(h.registry->acquire("z"));
  EXPECT_EQ(h.info("z").device, "sim:0");
  EXPECT_EQ(h.registry->stats().reloads, 2u);
  h.expect_accounting();
}

TEST(MultiDeviceTest, BudgetsArePerDevice) {
  RegistryConfig c = config_of({model_on("a", 4 * kGiB, "sim:0"), model_on("b", 4 * kGiB, "sim:1")});
  c.device_budget_bytes = 6 * kGiB;
  c.devices["sim:1"].budget_bytes = 3 * kGiB;
  c.admission_timeout = std::chrono::milliseconds(0);
  MultiHarness h(std::move(c), {10 * kGiB, 10 * kGiB});
  EXPECT_TRUE(h.registry->acquire("a"));
  auto b = h.registry->acquire("b");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, ErrorCode::kResourceExhausted);
  EXPECT_THAT(b.error().message, HasSubstr("cannot load 'b': needs 4.00 GiB"));
  EXPECT_THAT(b.error().message, HasSubstr(") on sim:1, free 3.00 GiB"));
  const RegistryStats st = h.registry->stats();
  EXPECT_EQ(st.devices[0].budget_bytes, 6 * kGiB);
  EXPECT_EQ(st.devices[1].budget_bytes, 3 * kGiB);
}

TEST(MultiDeviceTest, HeadroomIsPerDeviceAndTheTopLevelSumsIt) {
  PolicyConfig p;
  p.min_free_fraction = 0.25;
  MultiHarness h(config_of({model_on("a", 5 * kGiB, "sim:0"), model_on("b", 5 * kGiB, "sim:1")}, p),
                 {8 * kGiB, 16 * kGiB});
  h.registry->tick();
  const RegistryStats st = h.registry->stats();
  EXPECT_EQ(st.devices[0].headroom_bytes, 2 * kGiB);
  EXPECT_EQ(st.devices[1].headroom_bytes, 4 * kGiB);
  EXPECT_EQ(st.headroom_bytes, 6 * kGiB);
  EXPECT_TRUE(h.registry->preload("b"));
  RegistryConfig c2 = config_of({model_on("a", 7 * kGiB, "sim:0")}, p);
  c2.admission_timeout = std::chrono::milliseconds(0);
  MultiHarness h2(std::move(c2), {8 * kGiB, 16 * kGiB});
  auto a = h2.registry->preload("a");
  ASSERT_FALSE(a) << "7 GiB fits sim:0 only without its 2 GiB headroom";
  EXPECT_THAT(a.error().message, HasSubstr("on sim:0"));
  EXPECT_THAT(a.error().message, HasSubstr("after a headroom of 2.00 GiB"));
}

// Another program crowding sim:1 evicts sim:1's models only.
TEST(MultiDeviceTest, PressureOnOneDeviceEvictsOnlyItsModels) {
  PolicyConfig p;
  p.min_free_bytes = 2 * kGiB;
  MultiHarness h(config_of({model_on("a", 4 * kGiB, "sim:0"), model_on("b", 4 * kGiB, "sim:1")}, p),
                 {8 * kGiB, 8 * kGiB});
  ASSERT_TRUE(h.registry->preload("a"));
  ASSERT_TRUE(h.registry->preload("b"));
  h.take_events();
  h.devices[1]->set_external_bytes(3 * kGiB);  // sim:1: 1 GiB free, under its 2 GiB headroom
  h.registry->tick();
  EXPECT_EQ(h.info("a").state, ModelState::kResident);
  EXPECT_NE(h.info("b").state, ModelState::kResident);
  std::lock_guard<std::mutex> lock(h.mu);
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].model, "b");
  EXPECT_EQ(h.events[0].device, "sim:1");
  EXPECT_EQ(h.events[0].reason, Reason::kPressure);
  EXPECT_EQ(h.events[0].others_bytes, 3 * kGiB);
}

TEST(MultiDeviceTest, LruLimitsArePerDevice) {
  PolicyConfig p;
  p.lru_max_models = 1;
  MultiHarness h(config_of({model_on("a", kGiB, "sim:0"), model_on("b", kGiB, "sim:0"), model_on("c", kGiB, "sim:1")},
                           p),
                 {8 * kGiB, 8 * kGiB});
  ASSERT_TRUE(h.registry->preload("a"));
  h.clock->advance(std::chrono::seconds(1));
  ASSERT_TRUE(h.registry->preload("c"));
  h.clock->advance(std::chrono::seconds(1));
  ASSERT_TRUE(h.registry->preload("b"));
  EXPECT_NE(h.info("a").state, ModelState::kResident) << "one model per device: a makes room for b";
  EXPECT_EQ(h.info("b").state, ModelState::kResident);
  EXPECT_EQ(h.info("c").state, ModelState::kResident) << "c is alone on sim:1";
  h.registry->tick();
  EXPECT_EQ(h.info("c").state, ModelState::kResident);
}

// A load waiting for sim:0's memory does not hold up loads on sim:1.
TEST(MultiDeviceTest, AdmissionQueuesArePerDevice) {
  MultiHarness h(config_of({model_on("a", 6 * kGiB, "sim:0"), model_on("b", 6 * kGiB, "sim:0"),
                            model_on("c", 6 * kGiB, "sim:1")}),
                 {8 * kGiB, 8 * kGiB});
  auto a = h.registry->acquire("a").value();
  auto waiting = std::async(std::launch::async, [&] { return h.registry->acquire("b"); });
  ASSERT_TRUE(eventually([&] { return h.registry->stats().devices[0].admission_queue == 1; }));
  EXPECT_EQ(h.info("b").admission_position, 1u);
  EXPECT_EQ(h.registry->stats().devices[1].admission_queue, 0u);
  auto c = h.registry->acquire("c");  // does not queue behind b
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(h.info("c").device, "sim:1");
  EXPECT_EQ(waiting.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  a.release();
  auto b = waiting.get();
  ASSERT_TRUE(b) << b.error().to_string();
  EXPECT_EQ(h.registry->stats().admission_queue, 0u);
  h.expect_accounting();
}

// Each device's cache clean-up runs after models leave that device, and the
// event carries what it handed back.
TEST(MultiDeviceTest, CacheCleanUpsArePerDevice) {
  PolicyConfig p;
  p.clean_caches = true;
  MultiHarness h(config_of({model_on("a", 2 * kGiB, "sim:0"), model_on("b", 2 * kGiB, "sim:1")}, p),
                 {8 * kGiB, 8 * kGiB});
  ASSERT_TRUE(h.registry->preload("a"));
  ASSERT_TRUE(h.registry->preload("b"));
  ASSERT_TRUE(h.devices[1]->cache(kGiB));  // activations sim:1's allocator kept
  h.take_events();
  ASSERT_TRUE(h.registry->unload("b", Tier::kHost));
  EXPECT_EQ(h.cleanups[0]->load(), 0);
  EXPECT_EQ(h.cleanups[1]->load(), 1);
  EXPECT_EQ(h.devices[1]->cached_bytes(), 0u);
  {
    std::lock_guard<std::mutex> lock(h.mu);
    ASSERT_EQ(h.events.size(), 1u);
    EXPECT_EQ(h.events[0].device, "sim:1");
    EXPECT_EQ(h.events[0].cache_bytes_returned, static_cast<int64_t>(kGiB));
  }
  EXPECT_EQ(h.registry->release_caches(true), 0u);
  EXPECT_EQ(h.cleanups[0]->load(), 1);
  EXPECT_EQ(h.cleanups[1]->load(), 2);
}

// Many threads on models of two devices and "auto" ones: every acquire is
// served and the books match both devices (run under TSAN too).
TEST(MultiDeviceTest, ConcurrentAcquiresAcrossDevicesKeepTheBooks) {
  MultiHarness h(config_of({model_on("a", 3 * kGiB, "sim:0"), model_on("b", 3 * kGiB, "sim:0"),
                            model_on("c", 3 * kGiB, "sim:1"), model_on("d", 3 * kGiB, "sim:1"),
                            model_on("e", 3 * kGiB, "auto")}),
                 {7 * kGiB, 7 * kGiB});
  constexpr int kThreads = 6, kRounds = 20;
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        const std::string name(1, static_cast<char>('a' + (t + i) % 5));
        auto lease = h.registry->acquire(name);
        if (!lease) {
          ++refused;
          ADD_FAILURE() << lease.error().to_string();
          continue;
        }
        if (i % 7 == 0) h.registry->tick();
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(refused.load(), 0);
  h.expect_accounting();
  const RegistryStats st = h.registry->stats();
  EXPECT_LE(st.devices[0].peak_bytes, 7 * kGiB);
  EXPECT_LE(st.devices[1].peak_bytes, 7 * kGiB);
}

}  // namespace
}  // namespace tp::testing
