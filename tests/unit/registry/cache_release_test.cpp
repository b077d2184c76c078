// Caches handed back: the allocator's cached blocks (modelled by
// SimulatedDevice::cache) go back to the driver after a generation as the
// policy decides, after unloads (the event says how much), and at admission
// before any model is evicted for room.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/registry_harness.h"

namespace tp::testing {
namespace {

using ::testing::ElementsAre;

// A registry whose clean-up hook empties the simulated device's cache.
struct CacheHarness {
  std::shared_ptr<SimulatedDevice> device = std::make_shared<SimulatedDevice>(10 * kGiB);
  std::shared_ptr<SimulatedBackend> backend = std::make_shared<SimulatedBackend>(device);
  std::unique_ptr<ModelRegistry> registry;
  std::vector<ResidencyEvent> events;  // delivered on the calling thread: no background thread

  explicit CacheHarness(const char* preset, std::vector<ModelConfig> models) {
    RegistryConfig c = config_of(std::move(models), policy_preset(preset).value());
    c.policy.min_free_fraction = 0;  // the headroom is another test's business
    c.host_budget_bytes = 64 * kGiB;
    RegistryOptions o;
    o.backend = backend;
    o.monitor = device;
    o.clock = std::make_shared<ManualClock>();
    o.background_thread = false;
    o.clean_caches = [d = device] { d->empty_cache(); };
    registry = ModelRegistry::create(std::move(c), std::move(o)).value();
    registry->subscribe([this](const ResidencyEvent& e) { events.push_back(e); });
  }
  uint64_t free_bytes() const { return device->query()->free_bytes; }
};

TEST(CacheReleaseTest, AfterAGenerationTheDeviceHoldsOnlyResidentWeights) {
  for (const char* preset : {"balanced", "max_speed"}) {
    SCOPED_TRACE(preset);
    CacheHarness h(preset, {model("a", 3 * kGiB)});
    {
      auto lease = h.registry->acquire("a").value();
      ASSERT_TRUE(h.device->cache(2 * kGiB));  // the generation's activations stay cached
    }
    const bool policy_cleans = std::string(preset) == "balanced";
    EXPECT_EQ(h.registry->release_caches(), policy_cleans ? 2 * kGiB : 0u);
    EXPECT_EQ(h.free_bytes(), policy_cleans ? 7 * kGiB : 5 * kGiB);  // balanced: only a's weights remain
    RegistryStats s = h.registry->stats();
    EXPECT_EQ(s.cache_releases, policy_cleans ? 1u : 0u);
    EXPECT_EQ(s.cache_bytes_returned, policy_cleans ? 2 * kGiB : 0u);
    if (!policy_cleans) {
      EXPECT_EQ(h.registry->release_caches(/*force=*/true), 2 * kGiB);
      EXPECT_EQ(h.free_bytes(), 7 * kGiB);
    }
  }
}

TEST(CacheReleaseTest, UnloadEventCarriesTheCacheBytesReturned) {
  CacheHarness h("max_gpu_availability", {model("a", 3 * kGiB)});
  {
    auto lease = h.registry->acquire("a").value();
    ASSERT_TRUE(h.device->cache(kGiB));
  }  // unload-after: a to the host, then the clean-up
  ASSERT_EQ(h.events.size(), 2u);
  const ResidencyEvent& off = h.events[1];
  EXPECT_EQ(off.reason, Reason::kUnloadAfter);
  EXPECT_EQ(off.bytes_returned, static_cast<int64_t>(3 * kGiB));
  EXPECT_EQ(off.cache_bytes_returned, static_cast<int64_t>(kGiB));
  EXPECT_EQ(h.free_bytes(), 10 * kGiB);  // nothing of ours left on the device
  RegistryStats s = h.registry->stats();
  EXPECT_EQ(s.cache_bytes_returned, kGiB);
  EXPECT_EQ(s.bytes_returned, 3 * kGiB);
}

// A load that does not fit empties the cache first; a model is evicted only
// when that is not enough. max_speed: the policy itself never cleans.
TEST(CacheReleaseTest, AdmissionEmptiesTheCacheBeforeEvicting) {
  CacheHarness h("max_speed", {model("a", 4 * kGiB), model("b", 4 * kGiB), model("c", 5 * kGiB)});
  { auto a = h.registry->acquire("a").value(); }
  ASSERT_TRUE(h.device->cache(3 * kGiB));  // 3 GiB free: b (4 GiB) does not fit
  h.events.clear();
  ASSERT_TRUE(h.registry->acquire("b"));
  EXPECT_EQ(h.registry->info("a")->state, ModelState::kResident) << "a was evicted though the cache sufficed";
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].model, "b");
  EXPECT_EQ(h.registry->stats().cache_bytes_returned, 3 * kGiB);

  // Now the cache is empty and c needs 5 GiB of 2 free: an eviction it is.
  h.events.clear();
  ASSERT_TRUE(h.registry->acquire("c"));
  std::vector<std::string> moves;
  for (const auto& e : h.events) moves.push_back(e.model + ":" + std::string(reason_name(e.reason)));
  EXPECT_THAT(moves, ElementsAre("a:pressure", "c:lazy"));
}

}  // namespace
}  // namespace tp::testing
