// An allocation that fails in the middle of a denoising step (issue #23, item
// 3): the pipeline hands back the cached blocks, moves the unleased models off
// the device and tries once more; when that fails too it answers
// kResourceExhausted with the numbers. Either way no lease is left and the
// next request works. The failure is injected on the CPU through c10's
// allocator hook, at a chosen allocation after step 1.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <vector>

#include "support/counting_cpu_allocator.h"
#include "support/pipeline_registry.h"
#include "twistedpic/pipeline.h"
#include "twistedpic/runtime.h"

namespace tp {
namespace {

class OutOfMemory : public ::testing::Test {
 protected:
  void SetUp() override {
    auto registry = testing::pipeline_registry(testing::one_pipeline_json("tiny", TP_DEFAULT_MODEL_DIR, "sd3"));
    ASSERT_TRUE(registry) << registry.error().message;
    registry_ = std::move(*registry);
    auto pipeline = Pipeline::create(*registry_, "tiny");
    ASSERT_TRUE(pipeline) << pipeline.error().message;
    pipeline_ = std::move(*pipeline);
    auto clean = pipeline_->generate(request());
    ASSERT_TRUE(clean) << clean.error().message;
    clean_ = clean->images.at(0).rgb;
    failing_.reset_failures();
    failing_.install();
  }
  void TearDown() override {
    failing_.fail_at(0);
    failing_.uninstall();
    for (const ModelInfo& m : registry_->list()) EXPECT_EQ(m.leases, 0u) << m.name;
    // The next request works, and gives the clean image.
    auto next = pipeline_->generate(request());
    ASSERT_TRUE(next) << next.error().message;
    EXPECT_EQ(next->images.at(0).rgb, clean_);
  }

  static GenerateRequest request() {
    GenerateRequest r;
    r.prompts = {"a red circle on a white background"};
    r.steps = 3;
    r.seed = 7;
    return r;
  }

  // The CPU allocator with a fault: once armed, the n-th allocation from
  // then throws c10::OutOfMemoryError, as a CUDA allocation that finds no memory does.
  testing::HookedCpuAllocator& failing_ = testing::HookedCpuAllocator::instance();
  std::unique_ptr<ModelRegistry> registry_;
  std::unique_ptr<Pipeline> pipeline_;
  std::vector<uint8_t> clean_;
};

TEST_F(OutOfMemory, InTheMiddleOfAStepIsSurvivedByFreeingAndTryingOnceMore) {
  const RegistryStats before = registry_->stats();
  GenerateRequest r = request();
  std::atomic<bool> armed{false};
  r.on_step = [&](const StepProgress& p) {
    if (p.step == 1 && !armed.exchange(true)) failing_.fail_at(5);  // the 5th allocation of step 2
    return true;
  };
  auto result = pipeline_->generate(r);
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(failing_.failures(), 1);
  EXPECT_EQ(result->images.at(0).rgb, clean_);  // the second try is the same computation
  ASSERT_FALSE(result->warnings.empty());
  const std::string& w = result->warnings.back();
  for (const char* word : {"ran out of memory at first", "injected", "cached bytes", "unleased model",
                           "second try"})
    EXPECT_NE(w.find(word), std::string::npos) << w;
  const RegistryStats after = registry_->stats();
  EXPECT_GT(after.cache_releases, before.cache_releases);                            // the cache first
  EXPECT_GT(after.evictions(Reason::kExplicit), before.evictions(Reason::kExplicit));  // then the models
  EXPECT_GT(after.reloads, before.reloads);  // brought back from the pinned host tier for the second try
}

TEST_F(OutOfMemory, TwiceIsResourceExhaustedWithTheNumbers) {
  GenerateRequest r = request();
  r.on_step = [&](const StepProgress& p) {
    if (p.step == 1) failing_.fail_at(5);  // in both tries
    return true;
  };
  auto result = pipeline_->generate(r);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kResourceExhausted) << result.error().message;
  EXPECT_EQ(failing_.failures(), 2);
  for (const char* word : {"tiny", "out of memory while generating", "injected", "out of memory again",
                           "cached bytes", "bytes free", "models hold"})
    EXPECT_NE(result.error().message.find(word), std::string::npos) << result.error().message;
}

}  // namespace
}  // namespace tp
