// Activations in admission (issue #23, item 1): each pipeline's estimate of a
// request's peak activation bytes per network, proved against what torch
// really allocates. A counting CPU allocator (c10's allocator hook,
// support/counting_cpu_allocator.h) measures, for every lease a generate call
// takes, the most bytes live during the lease above those live when it began;
// the pipeline's estimate for that lease (GenerateResult::workspace) must lie
// within 1.0x and 1.3x of it. Tiny random-weight pipelines of every family
// (the reference fixtures) and the same scaled up (workspace_fixtures.py),
// at several sizes, square and not, with batches and guidance on and off.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "pipeline/runner.h"
#include "support/counting_cpu_allocator.h"
#include "support/pipeline_registry.h"
#include "twistedpic/pipeline.h"
#include "twistedpic/runtime.h"

namespace tp {
namespace {

testing::HookedCpuAllocator& allocator() { return testing::HookedCpuAllocator::instance(); }

struct Case {
  int width, height;
  int prompts = 1, images_per_prompt = 1;
  bool guided = false;
};

struct Window {
  std::string model;
  uint64_t estimate = 0, base = 0, peak = 0;
};

class ActivationEstimate : public ::testing::Test {
 protected:
  void open(const std::string& folder, const std::string& type) {
    ASSERT_TRUE(std::filesystem::exists(folder)) << folder;
    auto registry = testing::pipeline_registry(testing::one_pipeline_json("m", folder, type));
    ASSERT_TRUE(registry) << registry.error().message;
    registry_ = std::move(*registry);
    auto pipeline = Pipeline::create(*registry_, "m");
    ASSERT_TRUE(pipeline) << pipeline.error().message;
    pipeline_ = std::move(*pipeline);
    type_ = type;
  }

  GenerateRequest request(const Case& c) const {
    GenerateRequest r;
    for (int i = 0; i < c.prompts; ++i) r.prompts.push_back("a red circle on a white background " + std::to_string(i));
    r.images_per_prompt = c.images_per_prompt;
    r.width = c.width;
    r.height = c.height;
    r.steps = 2;
    r.seed = 3;
    if (type_ == "flux") {
      if (c.guided) {
        r.negative_prompts = {"blurry"};
        r.options["true_cfg_scale"] = "4";
      }
    } else {
      r.guidance_scale = c.guided ? 5.0 : 1.0;
    }
    return r;
  }

  // Runs `c` once to load and bind every network, then again measured, and
  // checks every lease's estimate against its measured peak.
  void check(const std::string& label, const Case& c) {
    const GenerateRequest r = request(c);
    auto warm = pipeline_->generate(r);
    ASSERT_TRUE(warm) << warm.error().message;
    std::vector<Window> windows;
    RunOverrides overrides;
    overrides.on_lease = [&](const std::string& model, uint64_t workspace) {
      if (!windows.empty()) windows.back().peak = allocator().peak();
      allocator().reset_peak();
      windows.push_back({model, workspace, allocator().live(), 0});
      debug_peak(model);
    };
    allocator().install();
    auto result = generate_with_overrides(*pipeline_, r, overrides);
    if (!windows.empty()) windows.back().peak = allocator().peak();
    debug_peak("");
    allocator().uninstall();
    ASSERT_TRUE(result) << result.error().message;
    ASSERT_EQ(result->workspace.size(), windows.size());
    for (size_t i = 0; i < windows.size(); ++i) {
      const Window& w = windows[i];
      EXPECT_EQ(result->workspace[i].model, w.model);
      const uint64_t measured = w.peak - w.base;
      const double ratio = measured ? static_cast<double>(w.estimate) / static_cast<double>(measured) : 0;
      std::printf("%-14s %4dx%-4d p%d x%d %-3s %-24s estimate %10llu measured %10llu ratio %.3f\n", label.c_str(),
                  c.width, c.height, c.prompts, c.images_per_prompt, c.guided ? "cfg" : "", w.model.c_str(),
                  static_cast<unsigned long long>(w.estimate), static_cast<unsigned long long>(measured), ratio);
      EXPECT_GE(ratio, 1.0) << label << " " << w.model << " " << c.width << "x" << c.height;
      EXPECT_LE(ratio, 1.3) << label << " " << w.model << " " << c.width << "x" << c.height;
    }
  }

  void check_all(const std::string& label, const std::vector<Case>& cases) {
    for (const Case& c : cases) check(label, c);
  }

  std::unique_ptr<ModelRegistry> registry_;
  std::unique_ptr<Pipeline> pipeline_;
  std::string type_;

 private:
  // TP_DEBUG_PEAK=<part of a model name>: prints the sizes of the blocks
  // live at the peak of that model's leases (all of them, the weights and
  // what was live before included), to find what an estimate misses.
  void debug_peak(const std::string& model) {
    const char* wanted = std::getenv("TP_DEBUG_PEAK");
    if (!wanted) return;
    if (debugging_) {
      std::map<uint64_t, int> sizes;
      for (uint64_t s : allocator().sizes_at_peak()) ++sizes[s];
      for (auto [s, n] : sizes) std::printf("  live at peak: %llu x %d\n", static_cast<unsigned long long>(s), n);
    }
    debugging_ = model.find(wanted) != std::string::npos;
    allocator().snapshot_at_peak(debugging_);
  }
  bool debugging_ = false;
};

TEST_F(ActivationEstimate, Sd3Tiny) {
  open(TP_SD3_REFERENCE_DIR "/plain", "sd3");
  check_all("sd3/plain", {{64, 64}, {32, 48, 1, 1, true}, {96, 64, 2, 2, true}, {48, 96, 1, 3, false}});
}

TEST_F(ActivationEstimate, Sd35Tiny) {
  open(TP_SD3_REFERENCE_DIR "/sd35", "sd3");
  check_all("sd3/sd35", {{64, 64, 1, 1, true}, {48, 32}, {96, 64, 2, 1, true}});
}

TEST_F(ActivationEstimate, FluxTiny) {
  open(TP_FLUX_REFERENCE_DIR "/schnell", "flux");
  check_all("flux/schnell", {{64, 64}, {32, 48, 1, 1, true}, {96, 64, 2, 2, true}, {48, 96, 1, 3, false}});
}

TEST_F(ActivationEstimate, FluxDevTiny) {
  open(TP_FLUX_REFERENCE_DIR "/dev", "flux");
  check_all("flux/dev", {{64, 64, 1, 1, true}, {48, 32}, {96, 64, 2, 1, true}});
}

TEST_F(ActivationEstimate, SdxlTiny) {
  open(TP_SDXL_REFERENCE_DIR "/base", "sdxl");
  check_all("sdxl/base", {{64, 64}, {32, 48, 1, 1, true}, {96, 64, 2, 2, true}, {48, 96, 1, 3, false}});
}

TEST_F(ActivationEstimate, Sd3Scaled) {
  open(TP_WORKSPACE_FIXTURES_DIR "/sd3", "sd3");
  check_all("sd3/x4", {{64, 64}, {48, 80, 1, 1, true}, {128, 96, 2, 1, true}});
}

TEST_F(ActivationEstimate, FluxScaled) {
  open(TP_WORKSPACE_FIXTURES_DIR "/flux", "flux");
  check_all("flux/x4", {{64, 64}, {48, 80, 1, 1, true}, {128, 96, 2, 1, true}});
}

TEST_F(ActivationEstimate, SdxlScaled) {
  open(TP_WORKSPACE_FIXTURES_DIR "/sdxl", "sdxl");
  check_all("sdxl/x4", {{64, 64}, {48, 80, 1, 1, true}, {128, 96, 2, 1, true}});
}

}  // namespace
}  // namespace tp

