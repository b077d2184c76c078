// src/pipeline/common/scheduler.cpp: schedulers from scheduler_config.json, and
// the flow-matching schedule's arithmetic. Torch-free; bit-exact parity with
// diffusers is checked in tests/unit/pipeline/sd3/sd3_parity_test.cpp.
#include "pipeline/common/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace tp::nn {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

json flow(json extra = json::object()) {
  json j = {{"_class_name", "FlowMatchEulerDiscreteScheduler"}, {"num_train_timesteps", 1000}};
  j.update(extra);
  return j;
}

Schedule schedule_of(const json& config, int steps, int image_seq_len = 1024) {
  auto s = make_scheduler(config, "scheduler_config.json");
  EXPECT_TRUE(s) << s.error().to_string();
  if (!s) return {};
  return (*s)->schedule(steps, image_seq_len);
}

// numpy.linspace(start, stop, steps)[i].
double linspace(double start, double stop, int steps, int i) {
  if (steps == 1) return start;
  return i == steps - 1 ? stop : start + i * ((stop - start) / (steps - 1));
}

TEST(MakeSchedulerTest, MakesTheFlowMatchScheduler) {
  auto s = make_scheduler(flow(), "scheduler_config.json");
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ((*s)->class_name(), "FlowMatchEulerDiscreteScheduler");
  const auto* fm = dynamic_cast<const FlowMatchEulerScheduler*>(s->get());
  ASSERT_NE(fm, nullptr);
  EXPECT_EQ(fm->config().num_train_timesteps, 1000);
  EXPECT_EQ(fm->config().shift, 1.0);
  EXPECT_FALSE(fm->config().use_dynamic_shifting);
}

TEST(MakeSchedulerTest, OtherClassesAreUnimplementedNamingThem) {
  for (const json& config : {json{{"_class_name", "DDIMScheduler"}}, json::object(), json{{"_class_name", 3}}}) {
    auto s = make_scheduler(config, "x/scheduler_config.json");
    ASSERT_FALSE(s) << config;
    EXPECT_EQ(s.error().code, ErrorCode::kUnimplemented);
    EXPECT_THAT(s.error().message, HasSubstr("x/scheduler_config.json: scheduler '"));
    EXPECT_THAT(s.error().message, HasSubstr("supported: FlowMatchEulerDiscreteScheduler, EulerDiscreteScheduler"));
  }
  EXPECT_THAT(make_scheduler(json{{"_class_name", "DDIMScheduler"}}, "c").error().message,
              HasSubstr("scheduler 'DDIMScheduler' is not supported"));
}

TEST(MakeSchedulerTest, UnsupportedFlagsAreUnimplementedNamingThem) {
  for (const char* flag :
       {"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "invert_sigmas", "stochastic_sampling"}) {
    auto s = make_scheduler(flow({{flag, true}}), "scheduler_config.json");
    ASSERT_FALSE(s) << flag;
    EXPECT_EQ(s.error().code, ErrorCode::kUnimplemented);
    EXPECT_EQ(s.error().message, std::string("scheduler_config.json: '") + flag + "' is not supported");
    // Off, or null, is fine.
    EXPECT_TRUE(make_scheduler(flow({{flag, false}}), "c")) << flag;
    EXPECT_TRUE(make_scheduler(flow({{flag, nullptr}}), "c")) << flag;
  }
  auto terminal = make_scheduler(flow({{"shift_terminal", 0.02}}), "c");
  ASSERT_FALSE(terminal);
  EXPECT_EQ(terminal.error().code, ErrorCode::kUnimplemented);
  EXPECT_THAT(terminal.error().message, HasSubstr("'shift_terminal'"));
  auto linear = make_scheduler(flow({{"time_shift_type", "linear"}}), "c");
  ASSERT_FALSE(linear);
  EXPECT_EQ(linear.error().code, ErrorCode::kUnimplemented);
  EXPECT_THAT(linear.error().message, HasSubstr("'time_shift_type'"));
  EXPECT_TRUE(make_scheduler(flow({{"time_shift_type", "exponential"}}), "c"));
}

TEST(MakeSchedulerTest, NonObjectIsInvalidArgument) {
  for (const json& config : {json::array(), json("FlowMatchEulerDiscreteScheduler"), json()}) {
    auto s = make_scheduler(config, "scheduler_config.json");
    ASSERT_FALSE(s) << config;
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(s.error().message, "scheduler_config.json: not a JSON object");
  }
  EXPECT_EQ(parse_flow_match_config(json::array(), "c").error().code, ErrorCode::kInvalidArgument);
}

TEST(MakeSchedulerTest, MalformedValuesAreInvalidArgumentNamingTheField) {
  struct Case {
    json extra;
    const char* message;
  };
  for (const Case& c : {
           Case{{{"shift", "3"}}, "c: 'shift' must be a number, not \"3\""},
           Case{{{"shift", 0}}, "c: 'shift' must be positive"},
           Case{{{"base_shift", true}}, "c: 'base_shift' must be a number"},
           Case{{{"num_train_timesteps", 0}}, "c: 'num_train_timesteps' must be a positive integer"},
           Case{{{"num_train_timesteps", 10.5}}, "c: 'num_train_timesteps' must be a positive integer"},
           Case{{{"base_image_seq_len", 256}, {"max_image_seq_len", 256}},
                "c: 'base_image_seq_len' equals 'max_image_seq_len'"},
       }) {
    auto s = make_scheduler(flow(c.extra), "c");
    ASSERT_FALSE(s) << c.extra;
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument) << c.extra;
    EXPECT_THAT(s.error().message, HasSubstr(c.message));
  }
}

TEST(FlowMatchEulerSchedulerTest, StepsTimestepsAndStepsPlusOneSigmasEndingInZero) {
  for (int steps : {1, 2, 7, 28, 50}) {
    const Schedule s = schedule_of(flow({{"shift", 3.0}}), steps);
    ASSERT_EQ(s.timesteps.size(), static_cast<size_t>(steps));
    ASSERT_EQ(s.sigmas.size(), static_cast<size_t>(steps) + 1);
    EXPECT_EQ(s.sigmas.back(), 0.0f);
    EXPECT_EQ(s.sigmas.front(), 1.0f);
    for (int i = 0; i < steps; ++i) {
      EXPECT_EQ(s.timesteps[i], s.sigmas[i] * 1000.0f) << i;
      EXPECT_GT(s.sigmas[i], s.sigmas[i + 1]) << "decreasing at " << i;
    }
  }
}

TEST(FlowMatchEulerSchedulerTest, WithoutShiftSigmasAreEvenlySpaced) {
  const int n = 1000, steps = 5;
  const Schedule s = schedule_of(flow(), steps);
  for (int i = 0; i < steps; ++i)
    EXPECT_NEAR(s.sigmas[i], linspace(1.0, 1.0 / n, steps, i), 1e-6) << i;
}

// diffusers: sigma = shift * s / (1 + (shift - 1) * s), on both the training
// sigmas (which sets the endpoints) and the linspace between them.
TEST(FlowMatchEulerSchedulerTest, ShiftMovesSigmasAsTheFormulaSays) {
  const int n = 1000, steps = 6;
  const double shift = 3.0;
  auto shifted = [&](double x) { return shift * x / (1 + (shift - 1) * x); };
  const Schedule s = schedule_of(flow({{"shift", shift}}), steps);
  const Schedule plain = schedule_of(flow(), steps);
  const double s_max = shifted(1.0), s_min = shifted(1.0 / n);
  for (int i = 0; i < steps; ++i) {
    EXPECT_NEAR(s.sigmas[i], shifted(linspace(s_max, s_min, steps, i)), 1e-6) << i;
    if (i > 0) {
      EXPECT_GT(s.sigmas[i], plain.sigmas[i]) << "a shift above 1 spends more steps at high noise";
    }
  }
}

TEST(FlowMatchEulerSchedulerTest, DynamicShiftingFollowsTheImageSize) {
  const int n = 1000, steps = 4;
  const json config = flow({{"use_dynamic_shifting", true}, {"shift", 3.0}, {"base_shift", 0.5}, {"max_shift", 1.15},
                            {"base_image_seq_len", 256}, {"max_image_seq_len", 4096}});
  auto expected = [&](int seq_len, int i) {
    const double m = (1.15 - 0.5) / (4096 - 256);
    const double mu = seq_len * m + (0.5 - m * 256);
    const double x = linspace(1.0, 1.0 / n, steps, i);  // the static shift is not applied
    return std::exp(mu) / (std::exp(mu) + (1 / x - 1));
  };
  for (int seq_len : {256, 1024, 4096}) {
    const Schedule s = schedule_of(config, steps, seq_len);
    ASSERT_EQ(s.sigmas.size(), static_cast<size_t>(steps) + 1);
    for (int i = 0; i < steps; ++i) EXPECT_NEAR(s.sigmas[i], expected(seq_len, i), 1e-6) << seq_len << " " << i;
    EXPECT_EQ(s.sigmas.back(), 0.0f);
  }
  // Larger images keep more noise at the same step.
  EXPECT_GT(schedule_of(config, steps, 4096).sigmas[2], schedule_of(config, steps, 256).sigmas[2]);
}

}  // namespace
}  // namespace tp::nn
