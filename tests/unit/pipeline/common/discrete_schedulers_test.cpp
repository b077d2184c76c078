// src/pipeline/common/discrete_schedulers.cpp: the discrete-time schedulers'
// configs, names and schedules. Torch-free. The schedules are checked here
// against what diffusers' set_timesteps() does by construction (spacings,
// table lookups, Karras ends); value-for-value parity with diffusers is
// tests/unit/pipeline/common/discrete_sampler_reference_test.cpp.
#include "pipeline/common/discrete_schedulers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace tp::nn {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// stabilityai/stable-diffusion-xl-base-1.0's scheduler/scheduler_config.json.
json sdxl(json extra = json::object()) {
  json j = json::parse(R"({"_class_name": "EulerDiscreteScheduler", "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": false, "interpolation_type": "linear",
    "num_train_timesteps": 1000, "prediction_type": "epsilon", "sample_max_value": 1.0, "set_alpha_to_one": false,
    "skip_prk_steps": true, "steps_offset": 1, "timestep_spacing": "leading", "trained_betas": null,
    "use_karras_sigmas": false})");
  j.update(extra);
  return j;
}

// sdxl-turbo's: Euler ancestral, "trailing".
json turbo() { return sdxl({{"_class_name", "EulerAncestralDiscreteScheduler"}, {"timestep_spacing", "trailing"}}); }

std::shared_ptr<const DiscreteScheduler> named(std::string_view name, const json& config) {
  auto s = make_scheduler_named(name, config, "scheduler/scheduler_config.json");
  EXPECT_TRUE(s) << s.error().to_string();
  if (!s) return nullptr;
  auto d = std::dynamic_pointer_cast<const DiscreteScheduler>(*s);
  EXPECT_NE(d, nullptr);
  return d;
}

Error error_of(std::string_view name, const json& config) {
  auto s = make_scheduler_named(name, config, "scheduler/scheduler_config.json");
  EXPECT_FALSE(s) << name << " " << config;
  return s ? Error{} : s.error();
}

TEST(DiscreteSchedulersTest, TheFolderConfigMakesItsClass) {
  for (const char* cls : {"EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler"}) {
    auto s = make_scheduler(sdxl({{"_class_name", cls}}), "scheduler_config.json");
    ASSERT_TRUE(s) << s.error().to_string();
    EXPECT_EQ((*s)->class_name(), cls);
    const auto* d = dynamic_cast<const DiscreteScheduler*>(s->get());
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->config().beta_schedule, BetaSchedule::kScaledLinear);
    EXPECT_EQ(d->config().timestep_spacing, Spacing::kLeading);
    EXPECT_EQ(d->config().steps_offset, 1);
    EXPECT_EQ(d->config().beta_start, 0.00085);
  }
}

TEST(DiscreteSchedulersTest, ClassDefaultsAreDiffusersInitDefaults) {
  auto d = named("", json{{"_class_name", "DPMSolverMultistepScheduler"}});
  ASSERT_NE(d, nullptr);
  const DiscreteConfig& c = d->config();
  EXPECT_EQ(c.num_train_timesteps, 1000);
  EXPECT_EQ(c.beta_schedule, BetaSchedule::kLinear);
  EXPECT_EQ(c.beta_start, 0.0001);
  EXPECT_EQ(c.beta_end, 0.02);
  EXPECT_EQ(c.timestep_spacing, Spacing::kLinspace);
  EXPECT_EQ(c.steps_offset, 0);
  EXPECT_EQ(c.prediction_type, Prediction::kEpsilon);
  EXPECT_EQ(c.solver_order, 2);
  EXPECT_TRUE(c.lower_order_final);
  EXPECT_FALSE(c.euler_at_final);
  EXPECT_FALSE(c.use_karras_sigmas);
  EXPECT_FALSE(c.final_sigma_min);
  EXPECT_FALSE(c.heun);
}

TEST(DiscreteSchedulersTest, NamesChangeTheClassAndKeepTheFolderFields) {
  const json v = sdxl({{"prediction_type", "v_prediction"}, {"use_karras_sigmas", true}});
  struct Case {
    const char* name;
    DiscreteKind kind;
    bool karras;
  };
  for (const Case& c :
       {Case{"euler", DiscreteKind::kEuler, false}, Case{"euler_a", DiscreteKind::kEulerAncestral, false},
        Case{"dpmpp_2m", DiscreteKind::kDpmSolverMultistep, false},
        Case{"dpmpp_2m_karras", DiscreteKind::kDpmSolverMultistep, true},
        Case{"EulerDiscreteScheduler", DiscreteKind::kEuler, true},  // from_config: all carried
        Case{"DPMSolverMultistepScheduler", DiscreteKind::kDpmSolverMultistep, true}}) {
    auto d = named(c.name, v);
    ASSERT_NE(d, nullptr) << c.name;
    EXPECT_EQ(d->config().kind, c.kind) << c.name;
    EXPECT_EQ(d->config().use_karras_sigmas && c.kind != DiscreteKind::kEulerAncestral, c.karras) << c.name;
    EXPECT_EQ(d->config().prediction_type, Prediction::kVPrediction) << c.name;
    EXPECT_EQ(d->config().timestep_spacing, Spacing::kLeading) << c.name;
    EXPECT_EQ(d->config().steps_offset, 1) << c.name;
  }
  // dpmpp_2m is DPM++ 2M whatever the folder's DPM config says.
  auto d = named("dpmpp_2m", sdxl({{"_class_name", "DPMSolverMultistepScheduler"}, {"solver_order", 1}}));
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->config().solver_order, 2);
  // An empty name is the folder's own scheduler.
  EXPECT_EQ(named("", turbo())->class_name(), "EulerAncestralDiscreteScheduler");
  EXPECT_EQ(named("euler", turbo())->config().timestep_spacing, Spacing::kTrailing);
}

TEST(DiscreteSchedulersTest, AnUnknownNameIsInvalidArgumentListingTheKnownOnes) {
  const Error e = error_of("dpmpp_3m", sdxl());
  EXPECT_EQ(e.code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(e.message, HasSubstr("unknown scheduler 'dpmpp_3m'"));
  for (const char* n : {"euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "EulerDiscreteScheduler",
                        "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler"})
    EXPECT_THAT(e.message, HasSubstr(n));
  EXPECT_THAT(known_scheduler_names(), HasSubstr("euler_a, dpmpp_2m"));
}

TEST(DiscreteSchedulersTest, ADiscreteNameOnAFlowMatchFolderIsInvalidArgument) {
  const Error e = error_of("euler", json{{"_class_name", "FlowMatchEulerDiscreteScheduler"}});
  EXPECT_EQ(e.code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(e.message, HasSubstr("FlowMatchEulerDiscreteScheduler"));
}

TEST(DiscreteSchedulersTest, UnimplementedOptionsAreNamed) {
  struct Case {
    const char* name;
    json extra;
    const char* field;
  };
  const std::vector<Case> cases = {
      {"euler", {{"rescale_betas_zero_snr", true}}, "rescale_betas_zero_snr"},
      {"euler_a", {{"rescale_betas_zero_snr", true}}, "rescale_betas_zero_snr"},
      {"euler", {{"use_exponential_sigmas", true}}, "use_exponential_sigmas"},
      {"euler", {{"use_beta_sigmas", true}}, "use_beta_sigmas"},
      {"euler", {{"interpolation_type", "log_linear"}}, "interpolation_type"},
      {"euler", {{"prediction_type", "sample"}}, "prediction_type"},
      {"euler_a", {{"prediction_type", "sample"}}, "prediction_type"},
      {"dpmpp_2m", {{"thresholding", true}}, "thresholding"},
      {"DPMSolverMultistepScheduler", {{"algorithm_type", "sde-dpmsolver++"}}, "algorithm_type"},
      {"DPMSolverMultistepScheduler", {{"algorithm_type", "dpmsolver"}}, "algorithm_type"},
      {"DPMSolverMultistepScheduler", {{"solver_order", 3}}, "solver_order"},
      {"dpmpp_2m", {{"use_lu_lambdas", true}}, "use_lu_lambdas"},
      {"dpmpp_2m", {{"use_flow_sigmas", true}}, "use_flow_sigmas"},
      {"dpmpp_2m", {{"variance_type", "learned_range"}}, "variance_type"},
      {"dpmpp_2m", {{"lambda_min_clipped", -5.1}}, "lambda_min_clipped"},
      {"dpmpp_2m", {{"prediction_type", "flow_prediction"}}, "prediction_type"},
  };
  for (const Case& c : cases) {
    const Error e = error_of(c.name, sdxl(c.extra));
    EXPECT_EQ(e.code, ErrorCode::kUnimplemented) << c.name << " " << c.extra << ": " << e.message;
    EXPECT_THAT(e.message, HasSubstr(std::string("'") + c.field + "'")) << c.name;
    EXPECT_THAT(e.message, HasSubstr("scheduler/scheduler_config.json")) << c.name;
  }
  // Another class's options are ignored, as from_config ignores them.
  EXPECT_NE(named("euler", sdxl({{"thresholding", true}, {"solver_order", 3}})), nullptr);
  EXPECT_NE(named("euler_a", sdxl({{"use_karras_sigmas", true}, {"interpolation_type", "log_linear"}})), nullptr);
  // What diffusers maps onto what is here.
  EXPECT_NE(named("DPMSolverMultistepScheduler", sdxl({{"algorithm_type", "deis"}, {"solver_type", "bh2"}})), nullptr);
}

TEST(DiscreteSchedulersTest, MalformedValuesAreInvalidArgumentNamingTheFieldAndTheChoices) {
  Error e = error_of("euler", sdxl({{"timestep_spacing", "even"}}));
  EXPECT_EQ(e.code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(e.message, HasSubstr("'timestep_spacing' must be one of 'linspace', 'leading', 'trailing', not 'even'"));
  e = error_of("euler", sdxl({{"beta_schedule", "cosine"}}));
  EXPECT_THAT(e.message, HasSubstr("'beta_schedule' must be one of 'linear', 'scaled_linear', 'squaredcos_cap_v2'"));
  e = error_of("euler", sdxl({{"prediction_type", "velocity"}}));
  EXPECT_EQ(e.code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(e.message, HasSubstr("'epsilon', 'v_prediction'"));
  for (const json& bad : {json{{"num_train_timesteps", 0}}, json{{"num_train_timesteps", 10.5}},
                          json{{"beta_start", "small"}}, json{{"steps_offset", -1}}, json{{"use_karras_sigmas", 1}},
                          json{{"trained_betas", {0.1, 0.2}}}, json{{"sigma_min", 0}}}) {
    const Error b = error_of("EulerDiscreteScheduler", sdxl(bad));
    EXPECT_EQ(b.code, ErrorCode::kInvalidArgument) << bad;
    EXPECT_THAT(b.message, HasSubstr("'" + bad.begin().key() + "'")) << bad;
  }
  EXPECT_EQ(error_of("", json::array()).code, ErrorCode::kInvalidArgument);
}

TEST(DiscreteSchedulersTest, TrainingTablesOfSdxl) {
  auto d = named("euler", sdxl());
  ASSERT_NE(d, nullptr);
  const auto& ac = d->alphas_cumprod();
  const auto& sig = d->train_sigmas();
  ASSERT_EQ(ac.size(), 1000u);
  ASSERT_EQ(sig.size(), 1000u);
  // The first beta is beta_start itself; sigma = sqrt((1 - ac) / ac) grows with t.
  EXPECT_FLOAT_EQ(ac[0], 1.0f - 0.00085f);
  for (size_t i = 1; i < sig.size(); ++i) ASSERT_LT(sig[i - 1], sig[i]) << i;
  // SDXL's well-known sigma range.
  EXPECT_NEAR(sig.front(), 0.0292, 1e-4);
  EXPECT_NEAR(sig.back(), 14.6146, 1e-4);
}

TEST(DiscreteSchedulersTest, LeadingSpacingIsSdxlsSchedule) {
  for (const char* name : {"euler", "euler_a"}) {
    auto d = named(name, sdxl());
    ASSERT_NE(d, nullptr);
    for (int steps : {1, 4, 25, 30, 50}) {
      const Schedule s = d->schedule(steps);
      ASSERT_EQ(s.timesteps.size(), static_cast<size_t>(steps));
      ASSERT_EQ(s.sigmas.size(), static_cast<size_t>(steps) + 1);
      const int ratio = 1000 / steps;
      for (int i = 0; i < steps; ++i) {
        const int t = (steps - 1 - i) * ratio + 1;  // steps_offset 1
        EXPECT_EQ(s.timesteps[i], static_cast<float>(t)) << name << " " << steps << " " << i;
        EXPECT_EQ(s.sigmas[i], d->train_sigmas()[t]) << name << " " << steps << " " << i;  // on the table
      }
      EXPECT_EQ(s.sigmas.back(), 0.0f);
      // "leading": the noise is scaled by sqrt(sigma_max^2 + 1).
      EXPECT_FLOAT_EQ(d->init_noise_sigma(s), std::sqrt(s.sigmas[0] * s.sigmas[0] + 1));
    }
  }
}

TEST(DiscreteSchedulersTest, TrailingSpacingIsTurbosSchedule) {
  auto d = named("", turbo());
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->schedule(1).timesteps, std::vector<float>({999}));
  EXPECT_EQ(d->schedule(4).timesteps, std::vector<float>({999, 749, 499, 249}));
  const Schedule s = d->schedule(4);
  EXPECT_EQ(d->init_noise_sigma(s), s.sigmas[0]);  // no sqrt(sigma^2 + 1) with "trailing"
  EXPECT_EQ(s.sigmas[0], d->train_sigmas()[999]);
  // numpy.arange(1000, 0, -1000 / 61) has 62 values: diffusers runs 62 steps, the last at timestep -1.
  const Schedule odd = d->schedule(61);
  ASSERT_EQ(odd.timesteps.size(), 62u);
  EXPECT_EQ(odd.timesteps.back(), -1.0f);
  EXPECT_EQ(odd.sigmas[61], d->train_sigmas()[0]);
  EXPECT_EQ(d->schedule(60).timesteps.size(), 60u);
}

TEST(DiscreteSchedulersTest, LinspaceSpacingInterpolatesTheTable) {
  auto d = named("", json{{"_class_name", "EulerDiscreteScheduler"}});  // the class defaults: linspace
  ASSERT_NE(d, nullptr);
  const Schedule s = d->schedule(7);
  ASSERT_EQ(s.timesteps.size(), 7u);
  EXPECT_EQ(s.timesteps.front(), 999.0f);
  EXPECT_EQ(s.timesteps.back(), 0.0f);
  for (int i = 0; i < 7; ++i) {
    const double t = s.timesteps[i];
    const auto lo = static_cast<size_t>(std::floor(t)), hi = static_cast<size_t>(std::ceil(t));
    const double w = t - std::floor(t);
    const double expected = d->train_sigmas()[lo] + w * (d->train_sigmas()[hi] - d->train_sigmas()[lo]);
    EXPECT_NEAR(s.sigmas[i], expected, 1e-6 * expected) << i;
  }
  EXPECT_EQ(d->init_noise_sigma(s), s.sigmas[0]);
}

TEST(DiscreteSchedulersTest, DpmTimestepsAreIntegersWithUnitNoise) {
  auto d = named("dpmpp_2m", sdxl());
  ASSERT_NE(d, nullptr);
  const Schedule s = d->schedule(25);
  ASSERT_EQ(s.timesteps.size(), 25u);
  const int ratio = 1000 / 26;  // DPM's "leading" divides by steps + 1
  for (int i = 0; i < 25; ++i) {
    EXPECT_EQ(s.timesteps[i], static_cast<float>((25 - i) * ratio + 1)) << i;
    EXPECT_EQ(s.sigmas[i], d->train_sigmas()[(25 - i) * ratio + 1]) << i;
  }
  EXPECT_EQ(s.sigmas.back(), 0.0f);
  EXPECT_EQ(d->init_noise_sigma(s), 1.0);
}

TEST(DiscreteSchedulersTest, KarrasSigmasSpanTheTableWithRho7) {
  for (const char* name : {"dpmpp_2m_karras", "EulerDiscreteScheduler"}) {
    auto d = named(name, sdxl({{"use_karras_sigmas", true}}));
    ASSERT_NE(d, nullptr);
    const int steps = 25;
    const Schedule s = d->schedule(steps);
    ASSERT_EQ(s.sigmas.size(), static_cast<size_t>(steps) + 1);
    const double hi = d->train_sigmas().back(), lo = d->train_sigmas().front();
    const bool dpm = d->config().kind == DiscreteKind::kDpmSolverMultistep;
    // Euler's range is its leading schedule's (timesteps 961 .. 1), DPM's the whole table.
    const double smax = dpm ? hi : d->train_sigmas()[961], smin = dpm ? lo : d->train_sigmas()[1];
    for (int i = 0; i < steps; ++i) {
      const double ramp = static_cast<double>(i) / (steps - 1);
      const double expected =
          std::pow(std::pow(smax, 1 / 7.0) + ramp * (std::pow(smin, 1 / 7.0) - std::pow(smax, 1 / 7.0)), 7.0);
      EXPECT_NEAR(s.sigmas[i], expected, 1e-6 * expected) << name << " " << i;
      if (i > 0) {
        EXPECT_LT(s.timesteps[i], s.timesteps[i - 1]) << name << " " << i;
      }
      if (dpm) {
        EXPECT_EQ(s.timesteps[i], std::round(s.timesteps[i])) << i;
      }
    }
    EXPECT_EQ(s.sigmas.back(), 0.0f);
  }
}

TEST(DiscreteSchedulersTest, FinalSigmaMinAndContinuousTimesteps) {
  auto d = named("euler", sdxl({{"final_sigmas_type", "sigma_min"}}));
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->schedule(4).sigmas.back(), d->train_sigmas().front());
  auto v = named("euler", sdxl({{"timestep_type", "continuous"}, {"prediction_type", "v_prediction"}}));
  ASSERT_NE(v, nullptr);
  const Schedule s = v->schedule(4);
  for (size_t i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(s.timesteps[i], 0.25f * std::log(s.sigmas[i])) << i;
  // Continuous timesteps are for v_prediction only.
  EXPECT_EQ(named("euler", sdxl({{"timestep_type", "continuous"}}))->schedule(4).timesteps,
            named("euler", sdxl())->schedule(4).timesteps);
}

}  // namespace
}  // namespace tp::nn
