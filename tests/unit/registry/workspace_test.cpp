// Admission counts what a use needs beside the weights (#23 items 1 and 2,
// the registry's side): AcquireOptions::workspace_bytes (the pipeline's
// activation estimate) for a load and for a model already resident, the
// weight backend's load scratch, and the scratch pool it keeps.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <future>
#include <thread>

#include "support/registry_harness.h"

namespace tp::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

AcquireOptions with_workspace(uint64_t bytes) {
  AcquireOptions o;
  o.workspace_bytes = bytes;
  return o;
}

RegistryConfig fail_at_once(RegistryConfig c) {
  c.admission_timeout = std::chrono::milliseconds(0);
  return c;
}

// A load admits its weights plus the larger of the configured workspace and
// the acquire's.
TEST(WorkspaceTest, ALoadAdmitsTheAcquiresWorkspace) {
  ModelConfig m = model("m", 6 * kGiB);
  m.workspace_bytes = 1 * kGiB;
  Harness h(fail_at_once(config_of({m})), 10 * kGiB);
  auto too_big = h.registry->acquire("m", with_workspace(5 * kGiB));
  ASSERT_FALSE(too_big);
  EXPECT_EQ(too_big.error().code, ErrorCode::kResourceExhausted);
  EXPECT_THAT(too_big.error().message, HasSubstr("cannot load 'm': needs 11.00 GiB"));
  EXPECT_THAT(too_big.error().message, HasSubstr("+ workspace 5.00 GiB"));
  EXPECT_EQ(h.state("m"), ModelState::kUnloaded);
  auto fits = h.registry->acquire("m", with_workspace(4 * kGiB));
  ASSERT_TRUE(fits) << fits.error().to_string();
  h.expect_accounting();
}

// A resident model's acquire makes its workspace usable: unleased models
// leave for it, the model itself stays.
TEST(WorkspaceTest, AResidentModelsWorkspaceEvictsOthers) {
  Harness h(config_of({model("a", 4 * kGiB), model("b", 4 * kGiB)}), 10 * kGiB);
  ASSERT_TRUE(h.registry->preload("a"));
  ASSERT_TRUE(h.registry->preload("b"));
  h.take_events();
  auto lease = h.registry->acquire("a", with_workspace(3 * kGiB));  // 2 GiB free
  ASSERT_TRUE(lease) << lease.error().to_string();
  EXPECT_EQ(h.state("a"), ModelState::kResident);
  EXPECT_NE(h.state("b"), ModelState::kResident);
  EXPECT_THAT(h.take_events(), ElementsAre("b:device->host:pressure"));
  EXPECT_EQ(h.registry->stats().hits, 1u);
  // Enough free already: nothing moves.
  auto again = h.registry->acquire("a", with_workspace(5 * kGiB));
  ASSERT_TRUE(again);
  EXPECT_TRUE(h.take_events().empty());
  h.expect_accounting();
}

TEST(WorkspaceTest, AResidentModelsWorkspaceThatCannotBeMadeIsRefusedWithTheNumbers) {
  Harness h(fail_at_once(config_of({model("a", 4 * kGiB), model("b", 4 * kGiB)})), 10 * kGiB);
  auto b = h.registry->acquire("b").value();
  ASSERT_TRUE(h.registry->preload("a"));
  auto lease = h.registry->acquire("a", with_workspace(3 * kGiB));
  ASSERT_FALSE(lease);
  EXPECT_EQ(lease.error().code, ErrorCode::kResourceExhausted);
  EXPECT_THAT(lease.error().message, HasSubstr("cannot run 'a': needs 3.00 GiB"));
  EXPECT_THAT(lease.error().message, HasSubstr("of workspace beside its loaded weights on simulated, free 2.00 GiB"));
  EXPECT_THAT(lease.error().message, HasSubstr("held by leased models 4.00 GiB"));
  EXPECT_EQ(h.state("a"), ModelState::kResident) << "a refusal moves nothing";
  EXPECT_EQ(h.info("a").leases, 0u);
  EXPECT_EQ(h.registry->stats().admission_failures, 1u);
}

// With the default timeout the workspace request waits in the queue for a
// lease to end, as a load does.
TEST(WorkspaceTest, AResidentModelsWorkspaceWaitsForLeases) {
  Harness h(config_of({model("a", 4 * kGiB), model("b", 4 * kGiB)}), 10 * kGiB);
  auto b = h.registry->acquire("b").value();
  ASSERT_TRUE(h.registry->preload("a"));
  auto waiting = std::async(std::launch::async, [&] { return h.registry->acquire("a", with_workspace(3 * kGiB)); });
  ASSERT_TRUE(eventually([&] { return h.registry->stats().admission_queue == 1; }));
  EXPECT_EQ(h.info("a").admission_position, 1u);
  b.release();
  auto lease = waiting.get();
  ASSERT_TRUE(lease) << lease.error().to_string();
  EXPECT_NE(h.state("b"), ModelState::kResident);
  EXPECT_EQ(h.registry->stats().admission_waits, 1u);
  h.expect_accounting();
}

// The backend's load scratch is part of a load's need: without counting it,
// this load would run out of device memory (the simulated load allocates the
// scratch beside the weights).
TEST(WorkspaceTest, ALoadsScratchIsAdmitted) {
  Harness h(config_of({model("a", 4 * kGiB), model("b", 5 * kGiB)}), 10 * kGiB);
  h.backend->set_load_scratch_bytes(2 * kGiB);
  ASSERT_TRUE(h.registry->preload("a"));
  h.take_events();
  auto plan = h.registry->plan("b");
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->needed_bytes, 7 * kGiB);
  EXPECT_EQ(plan->evictions.size(), 1u);
  auto lease = h.registry->acquire("b");  // 6 GiB free: the weights fit, weights + scratch do not
  ASSERT_TRUE(lease) << lease.error().to_string();
  EXPECT_THAT(h.take_events(), ElementsAre("a:device->host:pressure", "b:disk->device:lazy"));
  EXPECT_EQ(h.device->allocated_bytes(), 5 * kGiB) << "the scratch went back after the load";
  h.expect_accounting();
}

// The scratch pool the backend keeps counts as held against the device budget.
TEST(WorkspaceTest, TheScratchPoolCountsAgainstTheBudget) {
  RegistryConfig c = config_of({model("a", 4 * kGiB), model("b", 2 * kGiB)});
  c.device_budget_bytes = 8 * kGiB;
  Harness h(std::move(c), 20 * kGiB);
  ASSERT_TRUE(h.backend->set_scratch_pool_bytes(3 * kGiB));
  ASSERT_TRUE(h.registry->preload("a"));
  auto plan = h.registry->plan("b");
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->free_bytes, 1 * kGiB) << "budget 8 - weights 4 - scratch pool 3";
  ASSERT_TRUE(h.registry->acquire("b"));
  EXPECT_NE(h.state("a"), ModelState::kResident);
  const RegistryStats st = h.registry->stats();
  ASSERT_EQ(st.devices.size(), 1u);
  EXPECT_EQ(st.devices[0].scratch_bytes, 3 * kGiB);
  EXPECT_EQ(st.devices[0].name, "simulated");
  EXPECT_EQ(st.devices[0].budget_bytes, 8 * kGiB);
}

}  // namespace
}  // namespace tp::testing
