// Admission as a pure function (src/registry/admission.h): plain views in,
// a decision out. The victim order is the registry's fallback, rank_victims,
// unless a test passes its own.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <string>
#include <vector>

#include "registry/admission.h"

namespace tp::detail {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr uint64_t kGiB = 1ull << 30;

// A snapshot of the books, built model by model.
struct Books {
  std::deque<ModelConfig> configs;  // stable addresses for ModelView::config
  RegistryView view;
  AdmissionBudget budget;

  explicit Books(uint64_t free_bytes, uint64_t total_bytes = 16 * kGiB) {
    view.device.free_bytes = free_bytes;
    view.device.total_bytes = total_bytes;
    view.host_budget_bytes = 64 * kGiB;
    view.now = TimePoint(std::chrono::hours(10));
  }

  // A model in `state`; resident models hold `bytes` on the device.
  Books& add(const std::string& name, ModelState state, uint64_t bytes, uint32_t leases = 0, int priority = 0,
             bool pinned = false, int last_use_s = 0) {
    ModelConfig& c = configs.emplace_back();
    c.name = name;
    c.priority = priority;
    c.pinned = pinned;
    ModelView m;
    m.config = &c;
    m.name = c.name;
    m.state = state;
    m.tier = state == ModelState::kResident ? Tier::kDevice : Tier::kDisk;
    m.device_bytes = state == ModelState::kResident || state == ModelState::kUnloading ? bytes : 0;
    m.weight_bytes = bytes;
    m.leases = leases;
    m.last_use = TimePoint(std::chrono::seconds(last_use_s));
    view.models.push_back(m);
    view.device_bytes += m.device_bytes;
    return *this;
  }
  Books& resident(const std::string& name, uint64_t bytes, int priority = 0, int last_use_s = 0) {
    return add(name, ModelState::kResident, bytes, 0, priority, false, last_use_s);
  }

  // The incoming model: not loaded, `weights` + `workspace` bytes.
  ModelView incoming(const std::string& name, uint64_t weights, uint64_t workspace = 0) {
    add(name, ModelState::kUnloaded, weights);
    configs.back().workspace_bytes = workspace;
    return view.models.back();
  }

  Admission admit(const ModelView& in, const std::vector<Eviction>& limits = {}) {
    auto a = decide_admission(view, in, budget, limits, [](const RegistryView& rest, uint64_t shortfall) {
      return Expected<std::vector<Eviction>>(rank_victims(rest, shortfall, Reason::kPressure));
    });
    EXPECT_TRUE(a) << a.error().to_string();
    return a.value_or(Admission{});
  }
};

std::vector<std::string> names(const Admission& a) {
  std::vector<std::string> out;
  for (const auto& ev : a.evictions) out.push_back(ev.model);
  return out;
}

TEST(AdmissionTest, FitsInFreeMemoryWithoutEvictions) {
  Books b(10 * kGiB);
  b.resident("other", 2 * kGiB);
  ModelView in = b.incoming("new", 4 * kGiB, 1 * kGiB);
  Admission a = b.admit(in);
  EXPECT_TRUE(a.fits);
  EXPECT_TRUE(a.evictions.empty());
  EXPECT_EQ(a.need, 5 * kGiB);  // weights + workspace
  EXPECT_EQ(a.avail, 10 * kGiB);
  EXPECT_EQ(a.evictable_bytes, 2 * kGiB);
  EXPECT_EQ(a.leased_bytes, 0u);
  EXPECT_FALSE(a.busy);
}

TEST(AdmissionTest, ExactFitFits) {
  Books b(5 * kGiB);
  Admission a = b.admit(b.incoming("new", 4 * kGiB, 1 * kGiB));
  EXPECT_TRUE(a.fits);
  EXPECT_EQ(a.avail, a.need);
}

TEST(AdmissionTest, HonoursTheMinFreeHeadroom) {
  Books b(6 * kGiB);
  b.budget.min_free_bytes = 2 * kGiB;
  ModelView in = b.incoming("new", 5 * kGiB);
  Admission a = b.admit(in);
  EXPECT_EQ(a.avail, 4 * kGiB);  // 6 free - 2 headroom
  EXPECT_FALSE(a.fits);

  b.budget.min_free_bytes = 1 * kGiB;
  EXPECT_TRUE(b.admit(in).fits);

  b.budget.min_free_bytes = 8 * kGiB;  // more headroom than free memory: nothing available
  EXPECT_EQ(b.admit(in).avail, 0u);
}

TEST(AdmissionTest, ReservedBytesAndTheDeviceBudgetLimitWhatIsAvailable) {
  Books b(10 * kGiB);
  b.resident("held", 3 * kGiB);
  ModelView in = b.incoming("new", 1 * kGiB);
  b.budget.reserved_bytes = 2 * kGiB;  // a load in flight
  EXPECT_EQ(b.admit(in).avail, 8 * kGiB);
  b.budget.device_budget_bytes = 6 * kGiB;  // 6 - (3 held + 2 reserved)
  EXPECT_EQ(b.admit(in).avail, 1 * kGiB);
  b.budget.device_budget_bytes = 4 * kGiB;  // the budget is already spent
  EXPECT_EQ(b.admit(in).avail, 0u);
}

// A request names its parts: weights, workspace (the acquire's, when larger
// than the config's) and the backend's load scratch; the scratch pool the
// backend holds counts against the device budget.
TEST(AdmissionTest, TheRequestsPartsAndTheScratchPoolCount) {
  Books b(10 * kGiB);
  b.resident("held", 3 * kGiB);
  ModelView in = b.incoming("new", 4 * kGiB, 1 * kGiB);
  AdmissionRequest req;
  req.weight_bytes = 4 * kGiB;
  req.workspace_bytes = 2 * kGiB;
  req.scratch_bytes = 1 * kGiB;
  b.budget.device_name = "cuda:1";
  auto victims = [](const RegistryView& rest, uint64_t shortfall) {
    return Expected<std::vector<Eviction>>(rank_victims(rest, shortfall, Reason::kPressure));
  };
  Admission a = decide_admission(b.view, in, b.budget, req, {}, victims).value();
  EXPECT_EQ(a.need, 7 * kGiB);
  EXPECT_TRUE(a.fits);
  b.budget.device_budget_bytes = 9 * kGiB;
  b.budget.scratch_bytes = 1 * kGiB;  // 9 - (3 held + 1 pool) = 5 < 7: "held" goes
  a = decide_admission(b.view, in, b.budget, req, {}, victims).value();
  EXPECT_EQ(a.avail, 5 * kGiB);
  EXPECT_THAT(names(a), ElementsAre("held"));
  b.budget.scratch_bytes = 3 * kGiB;  // 9 - (3 + 3) = 3, + 3 evicted < 7
  a = decide_admission(b.view, in, b.budget, req, {}, victims).value();
  EXPECT_FALSE(a.fits);
  EXPECT_THAT(exhausted_message(in, a), HasSubstr("cannot load 'new': needs 7.00 GiB"));
  EXPECT_THAT(exhausted_message(in, a), HasSubstr("+ load scratch 1.00 GiB"));
  EXPECT_THAT(exhausted_message(in, a), HasSubstr(") on cuda:1, free 3.00 GiB"));
}

// A resident model asking for workspace is never its own victim, and its own
// bytes count as neither evictable nor leased.
TEST(AdmissionTest, AResidentModelsWorkspaceEvictsOthersNotItself) {
  Books b(1 * kGiB);
  b.resident("self", 4 * kGiB, 0, /*last_use_s=*/1);  // the least recently used
  b.resident("other", 2 * kGiB, 0, 5);
  ModelView in = *b.view.find("self");
  AdmissionRequest req;
  req.workspace_bytes = 2 * kGiB;
  Admission a = decide_admission(b.view, in, b.budget, req, {}, [](const RegistryView& rest, uint64_t shortfall) {
                  return Expected<std::vector<Eviction>>(rank_victims(rest, shortfall, Reason::kPressure));
                }).value();
  EXPECT_EQ(a.need, 2 * kGiB);
  EXPECT_TRUE(a.fits);
  EXPECT_THAT(names(a), ElementsAre("other"));
  EXPECT_EQ(a.evictable_bytes, 2 * kGiB);
  EXPECT_THAT(exhausted_message(in, a), HasSubstr("cannot run 'self': needs 2.00 GiB"));
}

TEST(AdmissionTest, EvictsTheLowestPriorityFirst) {
  Books b(1 * kGiB);
  b.resident("important", 4 * kGiB, /*priority=*/5, /*last_use_s=*/1);
  b.resident("cheap", 4 * kGiB, /*priority=*/0, /*last_use_s=*/9);
  Admission a = b.admit(b.incoming("new", 4 * kGiB));
  EXPECT_TRUE(a.fits);
  EXPECT_THAT(names(a), ElementsAre("cheap"));
  EXPECT_EQ(a.evicted_bytes, 4 * kGiB);
  EXPECT_EQ(a.evictions[0].reason, Reason::kPressure);
}

TEST(AdmissionTest, EvictsTheLeastRecentlyUsedFirstAtEqualPriority) {
  Books b(0);
  b.resident("recent", 2 * kGiB, 0, /*last_use_s=*/30);
  b.resident("old", 2 * kGiB, 0, /*last_use_s=*/10);
  b.resident("middle", 2 * kGiB, 0, /*last_use_s=*/20);
  Admission a = b.admit(b.incoming("new", 3 * kGiB));
  EXPECT_TRUE(a.fits);
  EXPECT_THAT(names(a), ElementsAre("old", "middle"));  // only as many as needed
  EXPECT_EQ(a.evicted_bytes, 4 * kGiB);
}

TEST(AdmissionTest, NeverEvictsLeasedOrPinnedModels) {
  Books b(1 * kGiB);
  b.add("leased", ModelState::kResident, 4 * kGiB, /*leases=*/1);
  b.add("pinned", ModelState::kResident, 4 * kGiB, 0, 0, /*pinned=*/true);
  ModelView in = b.incoming("new", 4 * kGiB);
  // Even a policy that names them (and the incoming model, and the device) gets none.
  auto a = decide_admission(b.view, in, b.budget, {{"leased", Tier::kDisk, Reason::kLru}},
                            [](const RegistryView&, uint64_t) {
                              return Expected<std::vector<Eviction>>(std::vector<Eviction>{
                                  {"pinned", Tier::kHost, Reason::kPressure},
                                  {"new", Tier::kDisk, Reason::kPressure},
                                  {"nobody", Tier::kDisk, Reason::kPressure}});
                            });
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->fits);
  EXPECT_TRUE(a->evictions.empty());
  EXPECT_EQ(a->leased_bytes, 4 * kGiB);
  EXPECT_EQ(a->evictable_bytes, 0u);  // pinned is not evictable
  // The default order offers neither.
  EXPECT_TRUE(b.admit(in).evictions.empty());
}

TEST(AdmissionTest, KeepsOnlyLegalEvictionsOnceEach) {
  Books b(0);
  b.resident("a", 2 * kGiB);
  b.add("moving", ModelState::kLoading, 2 * kGiB);
  ModelView in = b.incoming("new", 2 * kGiB);
  auto a = decide_admission(b.view, in, b.budget,
                            {{"a", Tier::kDevice, Reason::kLru},  // to the device: not an eviction
                             {"moving", Tier::kHost, Reason::kLru}},
                            [](const RegistryView&, uint64_t) {
                              return Expected<std::vector<Eviction>>(
                                  std::vector<Eviction>{{"a", Tier::kHost, Reason::kPressure},
                                                        {"a", Tier::kDisk, Reason::kPressure}});
                            });
  ASSERT_TRUE(a);
  ASSERT_EQ(a->evictions.size(), 1u);
  EXPECT_EQ(a->evictions[0].model, "a");
  EXPECT_EQ(a->evictions[0].to, Tier::kHost);  // the first one named
  EXPECT_EQ(a->evicted_bytes, 2 * kGiB);
  EXPECT_TRUE(a->fits);
  EXPECT_TRUE(a->busy);  // "moving" is in flight: waiting may help
}

TEST(AdmissionTest, LimitEvictionsComeFirstAndVictimsCoverOnlyTheShortfall) {
  Books b(1 * kGiB);
  b.resident("lru", 2 * kGiB);
  b.resident("x", 3 * kGiB);
  ModelView in = b.incoming("new", 5 * kGiB, 1 * kGiB);
  uint64_t asked = 0;
  ModelState lru_state_seen = ModelState::kResident;
  auto a = decide_admission(b.view, in, b.budget, {{"lru", Tier::kHost, Reason::kLru}},
                            [&](const RegistryView& rest, uint64_t shortfall) {
                              asked = shortfall;
                              lru_state_seen = rest.find("lru")->state;
                              return Expected<std::vector<Eviction>>(rank_victims(rest, shortfall, Reason::kPressure));
                            });
  ASSERT_TRUE(a);
  EXPECT_EQ(asked, 6 * kGiB - 1 * kGiB - 2 * kGiB);  // need - avail - the limit's eviction
  EXPECT_EQ(lru_state_seen, ModelState::kUnloading);  // already leaving: not offered twice
  EXPECT_THAT(names(*a), ElementsAre("lru", "x"));
  EXPECT_EQ(a->evictions[0].reason, Reason::kLru);
  EXPECT_TRUE(a->fits);

  // When the limits cover the need, no victims are asked for.
  Books c(5 * kGiB);
  c.resident("lru", 2 * kGiB);
  bool called = false;
  auto d = decide_admission(c.view, c.incoming("new", 6 * kGiB), c.budget, {{"lru", Tier::kDisk, Reason::kLru}},
                            [&](const RegistryView&, uint64_t) {
                              called = true;
                              return Expected<std::vector<Eviction>>(std::vector<Eviction>{});
                            });
  ASSERT_TRUE(d);
  EXPECT_FALSE(called);
  EXPECT_TRUE(d->fits);
}

// could_fit: whether the model fits once every lease ends; false makes the
// registry refuse at once instead of waiting out the admission timeout.
TEST(AdmissionTest, CouldFitCountsFreeEvictableAndLeasedBytes) {
  for (uint64_t weights : {8 * kGiB, 8 * kGiB + 1}) {
    Books b(3 * kGiB);
    b.add("held", ModelState::kResident, 4 * kGiB, /*leases=*/1);
    b.resident("idle", 1 * kGiB);
    Admission a = b.admit(b.incoming("new", weights));
    EXPECT_FALSE(a.fits);
    EXPECT_EQ(a.could_fit, weights <= 8 * kGiB) << weights;  // 3 free + 1 evictable + 4 leased
  }
}

TEST(AdmissionTest, RefusesWithTheNumbers) {
  Books b(3 * kGiB);
  b.budget.min_free_bytes = 1 * kGiB;
  b.add("held", ModelState::kResident, 4 * kGiB, /*leases=*/2);
  b.resident("idle", 1 * kGiB);
  ModelView in = b.incoming("big", 5 * kGiB, 1 * kGiB);
  Admission a = b.admit(in);
  EXPECT_FALSE(a.fits);
  EXPECT_EQ(a.need, 6 * kGiB);
  EXPECT_EQ(a.avail, 2 * kGiB);
  EXPECT_EQ(a.evictable_bytes, 1 * kGiB);
  EXPECT_EQ(a.leased_bytes, 4 * kGiB);
  EXPECT_THAT(names(a), ElementsAre("idle"));  // everything evictable, still short
  EXPECT_EQ(a.evicted_bytes, 1 * kGiB);
  EXPECT_TRUE(a.could_fit);  // 2 free + 1 evictable + 4 leased >= 6: waiting for the leases may help
  EXPECT_EQ(a.headroom, 1 * kGiB);
  const std::string m = exhausted_message(in, a);
  EXPECT_THAT(m, HasSubstr("cannot load 'big': needs 6.00 GiB"));
  EXPECT_THAT(m, HasSubstr("(weights 5.00 GiB"));
  EXPECT_THAT(m, HasSubstr("+ workspace 1.00 GiB"));
  EXPECT_THAT(m, HasSubstr("free 2.00 GiB"));
  EXPECT_THAT(m, HasSubstr("(after a headroom of 1.00 GiB"));
  EXPECT_THAT(m, HasSubstr("evictable 1.00 GiB"));
  EXPECT_THAT(m, HasSubstr("held by leased models 4.00 GiB"));
}

TEST(AdmissionTest, BusyOnlyWhenAnotherModelMoves) {
  Books b(0);
  ModelView in = b.incoming("new", 1 * kGiB);
  b.view.models.back().state = ModelState::kLoading;  // the incoming model's own load
  EXPECT_FALSE(b.admit(in).busy);
  b.add("leaving", ModelState::kUnloading, 1 * kGiB);
  EXPECT_TRUE(b.admit(in).busy);
}

TEST(AdmissionTest, AVictimOrderErrorFailsTheAdmission) {
  Books b(0);
  b.resident("a", 1 * kGiB);
  auto a = decide_admission(b.view, b.incoming("new", 1 * kGiB), b.budget, {}, [](const RegistryView&, uint64_t) {
    return Expected<std::vector<Eviction>>(internal_error("policy 'p' threw: bug"));
  });
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, ErrorCode::kInternal);
  EXPECT_THAT(a.error().message, HasSubstr("policy 'p' threw"));
}

TEST(AdmissionTest, LegalEvictions) {
  EXPECT_TRUE(is_legal_eviction(ModelState::kResident, 0, false, Tier::kHost));
  EXPECT_TRUE(is_legal_eviction(ModelState::kResident, 0, false, Tier::kDisk));
  EXPECT_FALSE(is_legal_eviction(ModelState::kResident, 0, false, Tier::kDevice));
  EXPECT_FALSE(is_legal_eviction(ModelState::kResident, 1, false, Tier::kDisk));
  EXPECT_FALSE(is_legal_eviction(ModelState::kResident, 0, true, Tier::kDisk));
  EXPECT_FALSE(is_legal_eviction(ModelState::kLoading, 0, false, Tier::kDisk));
  EXPECT_FALSE(is_legal_eviction(ModelState::kOffloaded, 0, false, Tier::kDisk));
}

// A policy's answer is a ranking: the legal victims are taken in its order,
// each once, until the need is covered.
TEST(AdmissionTest, TakeRankedKeepsTheLegalPrefixThatCoversTheNeed) {
  Books b(0);
  b.resident("a", 2 * kGiB).resident("b", 2 * kGiB).resident("c", 2 * kGiB);
  b.add("leased", ModelState::kResident, 2 * kGiB, /*leases=*/1);
  const std::vector<Eviction> ranking{{"leased", Tier::kHost, Reason::kPressure},  // illegal: skipped
                                      {"b", Tier::kHost, Reason::kPressure},
                                      {"b", Tier::kDisk, Reason::kPressure},  // named again: skipped
                                      {"nope", Tier::kHost, Reason::kPressure},  // unknown: skipped
                                      {"a", Tier::kHost, Reason::kPressure},
                                      {"c", Tier::kHost, Reason::kPressure}};
  std::vector<std::string> taken;
  for (const auto& ev : take_ranked(b.view, ranking, 3 * kGiB)) taken.push_back(ev.model);
  EXPECT_EQ(taken, (std::vector<std::string>{"b", "a"}));  // 4 GiB cover 3: c stays
  EXPECT_TRUE(take_ranked(b.view, ranking, 0).empty());
  EXPECT_EQ(take_ranked(b.view, ranking, 100 * kGiB).size(), 3u);
}

}  // namespace
}  // namespace tp::detail
