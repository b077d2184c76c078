#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "twistedpic/memory_policy.h"

namespace tp {
namespace {

constexpr uint64_t kGiB = 1ull << 30;

struct Fixture {
  std::vector<ModelConfig> configs;
  RegistryView view;

  void add(const std::string& name, uint64_t bytes, int priority, int last_use_s, uint32_t leases = 0,
           bool pinned = false, uint64_t host_bytes = 0) {
    ModelConfig c;
    c.name = name;
    c.priority = priority;
    c.pinned = pinned;
    configs.push_back(c);
    ModelView v;
    v.state = ModelState::kResident;
    v.tier = Tier::kDevice;
    v.device_bytes = v.weight_bytes = bytes;
    v.host_bytes = host_bytes;
    v.leases = leases;
    v.last_use = TimePoint(std::chrono::seconds(last_use_s));
    view.models.push_back(v);
  }
  void finish() {
    for (size_t i = 0; i < configs.size(); ++i) {
      view.models[i].config = &configs[i];
      view.models[i].name = configs[i].name;
    }
  }
};

std::vector<std::string> names(const std::vector<Eviction>& evs) {
  std::vector<std::string> out;
  for (const auto& e : evs) out.push_back(e.model + "@" + std::string(tier_name(e.to)));
  return out;
}

TEST(RankVictimsTest, LowerPriorityThenCheapestThenOldest) {
  Fixture f;
  f.configs.reserve(8);
  f.add("vip", 1 * kGiB, 5, 0);
  f.add("big", 8 * kGiB, 0, 0);
  f.add("small_new", 1 * kGiB, 0, 20);
  f.add("small_old", 1 * kGiB, 0, 10);
  f.add("leased", 1 * kGiB, 0, 0, 1);
  f.add("pinned", 1 * kGiB, 0, 0, 0, true);
  f.finish();
  f.view.host_budget_bytes = 100 * kGiB;
  EXPECT_THAT(names(rank_victims(f.view, 1, Reason::kPressure)), ::testing::ElementsAre("small_old@host"));
  EXPECT_THAT(names(rank_victims(f.view, 2 * kGiB, Reason::kPressure)),
              ::testing::ElementsAre("small_old@host", "small_new@host"));
  // 9 GiB: the two small ones are taken, then big; then the small ones are not needed.
  EXPECT_THAT(names(rank_victims(f.view, 8 * kGiB + 1, Reason::kPressure)),
              ::testing::ElementsAre("small_old@host", "big@host"));
  // More than all unpinned, unleased models hold: everything evictable, in order.
  EXPECT_THAT(names(rank_victims(f.view, 100 * kGiB, Reason::kPressure)),
              ::testing::ElementsAre("small_old@host", "small_new@host", "big@host", "vip@host"));
}

TEST(RankVictimsTest, HostBudgetDecidesTierAndCost) {
  Fixture f;
  f.configs.reserve(4);
  f.add("a", 3 * kGiB, 0, 0);
  f.add("b", 3 * kGiB, 0, 5, 0, false, 3 * kGiB);  // already has a host copy: cheapest
  f.finish();
  f.view.host_budget_bytes = 2 * kGiB;
  EXPECT_THAT(names(rank_victims(f.view, 1, Reason::kLru)), ::testing::ElementsAre("b@host"));
  EXPECT_THAT(names(rank_victims(f.view, 4 * kGiB, Reason::kLru)), ::testing::ElementsAre("b@host", "a@disk"));
}

TEST(BuiltinPoliciesTest, ChainFollowsTheConfig) {
  RegistryConfig c;
  EXPECT_EQ(make_builtin_policies(c).size(), 3u);  // eager, unload-after, idle-timeout
  c.policy.lru_max_models = 2;
  auto chain = make_builtin_policies(c);
  ASSERT_EQ(chain.size(), 4u);
  EXPECT_EQ(chain.back()->name(), "lru");
}

}  // namespace
}  // namespace tp
