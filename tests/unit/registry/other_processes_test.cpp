// Other processes count: the device's memory held by other programs shows in
// stats(), the max_gpu_availability preset keeps a headroom free for them,
// and pressure evictions say whose bytes filled the device.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/registry_harness.h"

namespace tp::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(OtherProcessesTest, StatsShowTheDeviceAndOtherProcesses) {
  Harness h(config_of({model("a", 3 * kGiB)}), 10 * kGiB);
  auto lease = h.registry->acquire("a").value();
  h.device->set_external_bytes(2 * kGiB);  // another program takes 2 GiB
  RegistryStats s = h.registry->stats();
  EXPECT_EQ(s.device_total_bytes, 10 * kGiB);
  EXPECT_EQ(s.device_free_bytes, 5 * kGiB);
  EXPECT_EQ(s.process_bytes, 3 * kGiB);
  EXPECT_EQ(s.other_process_bytes, 2 * kGiB);
  EXPECT_EQ(s.headroom_bytes, 0u);  // no headroom by default
}

TEST(OtherProcessesTest, MaxGpuAvailabilityKeepsATenthFree) {
  auto p = policy_preset("max_gpu_availability");
  ASSERT_TRUE(p);
  EXPECT_DOUBLE_EQ(p->min_free_fraction, kAvailabilityHeadroom);
  EXPECT_EQ(p->headroom_bytes(80 * kGiB), 8 * kGiB);
  for (const char* other : {"balanced", "max_speed"}) EXPECT_EQ(policy_preset(other)->headroom_bytes(80 * kGiB), 0u);

  // At admission: 10 GiB device, 1 GiB kept free, so 9.5 GiB does not fit.
  Harness h(config_of({model("a", 9 * kGiB + kGiB / 2), model("b", 9 * kGiB)}, *p), 10 * kGiB);
  EXPECT_EQ(h.registry->stats().headroom_bytes, 1 * kGiB);
  auto a = h.registry->acquire("a");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, ErrorCode::kResourceExhausted);
  EXPECT_THAT(a.error().message, HasSubstr("after a headroom of 1.00 GiB"));
  EXPECT_TRUE(h.registry->acquire("b"));
}

TEST(OtherProcessesTest, FractionAndBytesParseAndTheLargerApplies) {
  auto c = parse_registry_config(R"({"models": {"a": {"model_id": "x"}},
      "policy": {"pressure": {"min_free_bytes": "3GiB", "min_free_fraction": 0.25}}})");
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_DOUBLE_EQ(c->policy.min_free_fraction, 0.25);
  EXPECT_EQ(c->policy.headroom_bytes(8 * kGiB), 3 * kGiB);
  EXPECT_EQ(c->policy.headroom_bytes(16 * kGiB), 4 * kGiB);
  auto bad = parse_registry_config(R"({"models": {"a": {"model_id": "x"}},
      "policy": {"pressure": {"min_free_fraction": 1.5}}})");
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message, HasSubstr("policy.pressure.min_free_fraction"));
  // The preset's fraction stays unless the config overrides it.
  auto preset = parse_registry_config(R"({"preset": "max_gpu_availability", "models": {"a": {"model_id": "x"}}})");
  ASSERT_TRUE(preset);
  EXPECT_DOUBLE_EQ(preset->policy.min_free_fraction, kAvailabilityHeadroom);
}

// Another process grows: tick() evicts ours to restore the headroom, and the
// event says how many bytes were ours and how many the others'.
TEST(OtherProcessesTest, PressureEvictionEventSaysWhoseBytes) {
  PolicyConfig p;
  p.min_free_fraction = 0.2;  // 2 GiB of 10
  Harness h(config_of({model("a", 3 * kGiB), model("b", 2 * kGiB)}, p), 10 * kGiB);
  { auto a = h.registry->acquire("a").value(); }
  { auto b = h.registry->acquire("b").value(); }
  h.take_events();
  h.registry->tick();
  EXPECT_THAT(h.take_events(), ElementsAre());  // 5 GiB free
  std::vector<ResidencyEvent> seen;
  h.registry->subscribe([&](const ResidencyEvent& e) { seen.push_back(e); });
  h.device->set_external_bytes(4 * kGiB);  // 1 GiB free: 1 GiB short of the headroom
  h.registry->tick();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].reason, Reason::kPressure);
  EXPECT_EQ(seen[0].model, "b");  // the cheapest that covers 1 GiB
  EXPECT_EQ(seen[0].ours_bytes, 5 * kGiB);
  EXPECT_EQ(seen[0].others_bytes, 4 * kGiB);
  EXPECT_EQ(h.state("a"), ModelState::kResident);
}

}  // namespace
}  // namespace tp::testing
