// Private (pipeline): the discrete-time schedulers of the UNet families (SDXL):
// EulerDiscreteScheduler, EulerAncestralDiscreteScheduler and
// DPMSolverMultistepScheduler (DPM++ 2M), their configs and their schedules.
// Torch-free: the tables are pure arithmetic, computed as diffusers computes
// them (numpy float64 where it uses numpy, float32 where it uses torch).
//
// Exactness: everything matches diffusers bit for bit except where diffusers
// goes through a float32 library function whose rounding is its own: torch's
// sqrt of the training sigmas (MKL's vsSqrt, not always correctly rounded) and
// numpy's SIMD float32 log (Karras timesteps). There a value may be 1 ulp
// away; scripts/scheduler_reference.py and
// tests/unit/pipeline/common/discrete_sampler_reference_test.cpp measure it.
//
// The stepping (which needs tensors) is DiscreteSampler (discrete_sampler.h).
//
// Threading: a DiscreteScheduler is immutable; everything here is safe from
// any thread.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/common/scheduler.h"
#include "twistedpic/expected.h"

namespace tp::nn {

enum class DiscreteKind { kEuler, kEulerAncestral, kDpmSolverMultistep };
enum class BetaSchedule { kLinear, kScaledLinear, kSquaredCosCapV2 };
enum class Prediction { kEpsilon, kVPrediction };
enum class Spacing { kLinspace, kLeading, kTrailing };

// The diffusers class name of `kind`.
std::string_view discrete_class_name(DiscreteKind kind);

// One class's config; the defaults are that class's __init__ defaults (not
// SDXL's shipped scheduler_config.json, which sets scaled_linear
// 0.00085..0.012, "leading" spacing and steps_offset 1).
struct DiscreteConfig {
  DiscreteKind kind = DiscreteKind::kEuler;
  int num_train_timesteps = 1000;
  double beta_start = 0.0001, beta_end = 0.02;
  BetaSchedule beta_schedule = BetaSchedule::kLinear;
  std::vector<double> trained_betas;  // when not empty, the betas themselves
  Prediction prediction_type = Prediction::kEpsilon;
  Spacing timestep_spacing = Spacing::kLinspace;
  int steps_offset = 0;            // added to the "leading" timesteps
  bool use_karras_sigmas = false;  // Euler and DPM
  bool final_sigma_min = false;    // final_sigmas_type "sigma_min" (else "zero"); Euler and DPM
  // Euler only.
  bool continuous_timesteps = false;           // timestep_type "continuous" (matters with v_prediction)
  std::optional<double> sigma_min, sigma_max;  // the Karras range; Default: the schedule's ends
  // DPMSolverMultistepScheduler only (algorithm_type is "dpmsolver++").
  int solver_order = 2;  // 1 or 2
  bool heun = false;     // solver_type "heun" (else "midpoint")
  bool lower_order_final = true;
  bool euler_at_final = false;
};

// Reads `kind`'s fields from a scheduler_config.json (any "_class_name": like
// diffusers' from_config, fields of other classes are ignored). Errors:
// kInvalidArgument for malformed values (naming `origin` and the field, with
// the allowed values); kUnimplemented for options diffusers has that are not
// implemented here (rescale_betas_zero_snr, thresholding, algorithm types
// other than dpmsolver++, solver_order 3, exponential / beta / lu / flow
// sigmas, interpolation_type "log_linear", learned variance, a finite
// lambda_min_clipped, dynamic shifting, prediction types other than epsilon
// and v_prediction), naming the field.
Expected<DiscreteConfig> parse_discrete_config(DiscreteKind kind, const nlohmann::json& config,
                                               std::string_view origin);

class DiscreteScheduler final : public Scheduler {
 public:
  explicit DiscreteScheduler(DiscreteConfig config);
  std::string_view class_name() const override { return discrete_class_name(config_.kind); }
  // set_timesteps(steps): timesteps as the UNet gets them (DPM's are integers)
  // and the sigmas, the last the final sigma (0, or the smallest training
  // sigma with final_sigmas_type "sigma_min"). image_seq_len is unused.
  // Like diffusers, "trailing" spacing gives one extra timestep (-1) for a few
  // step counts (61, 103, 121, 122 of 1000): timesteps.size() is the loop's
  // length. REQUIRES: steps >= 1.
  Schedule schedule(int steps, int image_seq_len = 0) const override;
  // The factor of the initial noise for `schedule` (diffusers' init_noise_sigma
  // after set_timesteps): Euler's largest sigma, sqrt(sigma^2 + 1) with
  // "leading" spacing; 1 for DPM.
  double init_noise_sigma(const Schedule& schedule) const;

  const DiscreteConfig& config() const { return config_; }
  // The training tables (num_train_timesteps entries, float32 as in diffusers).
  const std::vector<float>& alphas_cumprod() const { return alphas_cumprod_; }
  const std::vector<float>& train_sigmas() const { return train_sigmas_; }

 private:
  DiscreteConfig config_;
  std::vector<float> alphas_cumprod_, train_sigmas_;
};

// The scheduler a request names (the request option "scheduler"), built like
// diffusers' NewScheduler.from_config(folder_config): the folder's fields
// (betas, spacing, steps_offset, prediction_type, ...) carry over, the class
// changes. Names: the class names, and "euler" (Euler), "euler_a" (Euler
// ancestral), "dpmpp_2m" and "dpmpp_2m_karras" (DPM++ 2M, that is
// DPMSolverMultistepScheduler with algorithm_type dpmsolver++ and solver_order
// 2, without or with Karras sigmas). An empty name is the folder's own
// scheduler (make_scheduler). Errors: kInvalidArgument for an unknown name
// (listing known_scheduler_names()) or a discrete name on a folder whose
// scheduler is not discrete-time; else as parse_discrete_config.
Expected<std::shared_ptr<const Scheduler>> make_scheduler_named(std::string_view name,
                                                                const nlohmann::json& folder_config,
                                                                std::string_view origin);
// "euler, euler_a, ..." for messages.
std::string known_scheduler_names();

}  // namespace tp::nn
