// The torch layer under stress: generations on the shipped default model
// (models/tiny-sd3) run on several threads, on one pipeline and on two that
// share a registry, while another thread unloads, preloads and evicts the very
// networks they lease, and ticks the policies. Every generation must give the
// bytes that a quiet run gives for its seed, the registry must end consistent
// (no lease left, every network resident or off the device, never failed), and
// the next request must work. Run in the ASan build too (`make test-asan`),
// where a weight freed under a running kernel or a binding used after its
// arena went would be a use after free.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/pipeline_registry.h"
#include "twistedpic/pipeline.h"
#include "twistedpic/runtime.h"

namespace tp {
namespace {

GenerateRequest request(uint64_t seed) {
  GenerateRequest r;
  r.prompts = {"a red circle on a white background"};
  r.steps = 2;
  r.seed = seed;
  return r;
}

Expected<std::vector<uint8_t>> pixels(Pipeline& pipeline, uint64_t seed) {
  TP_ASSIGN_OR_RETURN(GenerateResult result, pipeline.generate(request(seed)));
  return std::move(result.images.at(0).rgb);
}

TEST(PipelineStress, GenerationsStayExactWhileTheirNetworksAreUnloadedAndPreloaded) {
  auto registry = testing::pipeline_registry(testing::one_pipeline_json("tiny", TP_DEFAULT_MODEL_DIR, "sd3"));
  ASSERT_TRUE(registry) << registry.error().message;
  auto first = Pipeline::create(**registry, "tiny");
  auto second = Pipeline::create(**registry, "tiny");
  ASSERT_TRUE(first && second);

  // What a quiet run gives, per seed.
  constexpr uint64_t kSeeds = 3;
  std::map<uint64_t, std::vector<uint8_t>> want;
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    auto p = pixels(**first, seed);
    ASSERT_TRUE(p) << p.error().message;
    want[seed] = std::move(*p);
  }
  ASSERT_NE(want[0], want[1]);

  std::vector<std::string> networks;
  for (const ModelInfo& m : (*registry)->list()) networks.push_back(m.name);
  ASSERT_GE(networks.size(), 3u);

  constexpr int kPerThread = 6;
  std::atomic<int> generators_left{3}, wrong{0}, failed{0};
  std::atomic<uint64_t> moved_off{0}, preloaded{0};
  std::vector<std::string> errors(3);
  auto generate_loop = [&](Pipeline& pipeline, int id) {
    for (int i = 0; i < kPerThread; ++i) {
      const uint64_t seed = static_cast<uint64_t>(id + i) % kSeeds;
      auto p = pixels(pipeline, seed);
      if (!p) {
        ++failed;
        errors[static_cast<size_t>(id)] = p.error().message;
      } else if (*p != want[seed]) {
        ++wrong;
      }
    }
    --generators_left;
  };
  std::thread chaos([&] {
    std::mt19937 rng(7);
    while (generators_left.load() > 0) {
      const std::string& name = networks[rng() % networks.size()];
      switch (rng() % 5) {
        case 0: moved_off += (*registry)->unload(name, Tier::kHost).has_value(); break;  // refused while leased
        case 1: moved_off += (*registry)->unload(name, Tier::kDisk).has_value(); break;
        case 2: preloaded += (*registry)->preload(name).has_value(); break;
        case 3: (void)(*registry)->unload_all(rng() % 2 ? Tier::kHost : Tier::kDisk); break;
        default: (void)(*registry)->tick(); break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  std::vector<std::thread> generators;
  generators.emplace_back(generate_loop, std::ref(**first), 0);
  generators.emplace_back(generate_loop, std::ref(**first), 1);
  generators.emplace_back(generate_loop, std::ref(**second), 2);
  for (auto& t : generators) t.join();
  chaos.join();

  std::printf("chaos: %llu networks moved off the device, %llu preloaded, during %d generations\n",
              static_cast<unsigned long long>(moved_off.load()), static_cast<unsigned long long>(preloaded.load()),
              3 * kPerThread);
  EXPECT_EQ(failed.load(), 0) << errors[0] << " | " << errors[1] << " | " << errors[2];
  EXPECT_EQ(wrong.load(), 0) << "generations gave other bytes than a quiet run for their seed";
  EXPECT_GT(moved_off.load(), 0u) << "the chaos thread never moved a network off the device";
  EXPECT_GT(preloaded.load(), 0u);
  for (const ModelInfo& m : (*registry)->list()) {
    EXPECT_EQ(m.leases, 0u) << m.name;
    EXPECT_NE(m.state, ModelState::kFailed) << m.name << ": " << m.last_error;
    EXPECT_TRUE(m.state == ModelState::kResident || m.state == ModelState::kOffloaded ||
                m.state == ModelState::kUnloaded)
        << m.name;
  }
  auto after = pixels(**second, 1);
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_EQ(*after, want[1]);
}

}  // namespace
}  // namespace tp
