// Private (pipeline): the schedulers, behind one interface. Torch-free: a
// schedule is pure arithmetic, computed exactly as diffusers computes it
// (float32 where it uses torch, float64 where it uses numpy), so that
// timesteps match bit for bit.
//
// make_scheduler() reads a folder's scheduler_config.json (already parsed by
// the strict reader) and returns the scheduler its "_class_name" names.
// Implemented: FlowMatchEulerDiscreteScheduler (SD3 / 3.5, Flux), and the
// discrete-time EulerDiscreteScheduler, EulerAncestralDiscreteScheduler and
// DPMSolverMultistepScheduler (SDXL; discrete_schedulers.h). A family that
// needs another adds a class and a case in make_scheduler().
//
// Threading: a Scheduler is immutable; schedule() is safe from any thread.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string_view>
#include <vector>

#include "twistedpic/expected.h"

namespace tp::nn {

struct Schedule {
  std::vector<float> timesteps;  // steps entries, fed to the denoiser
  std::vector<float> sigmas;     // steps + 1 entries, the last the terminal sigma
};

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  virtual std::string_view class_name() const = 0;
  // set_timesteps(steps); image_seq_len (patches) matters only to schedules
  // that shift with the image size. REQUIRES: steps >= 1.
  virtual Schedule schedule(int steps, int image_seq_len) const = 0;
};

// Errors: kUnimplemented for a class or an option not implemented here (named);
// kInvalidArgument for malformed values, naming `origin` and the field.
Expected<std::shared_ptr<const Scheduler>> make_scheduler(const nlohmann::json& config, std::string_view origin);

// ---- FlowMatchEulerDiscreteScheduler

struct FlowMatchConfig {
  int num_train_timesteps = 1000;
  double shift = 1.0;
  bool use_dynamic_shifting = false;
  double base_shift = 0.5, max_shift = 1.15;
  int base_image_seq_len = 256, max_image_seq_len = 4096;
};

// Options that change the schedule in ways not implemented here (karras,
// exponential or beta sigmas, inverted sigmas, terminal shift, stochastic
// sampling, linear time shift) are kUnimplemented.
Expected<FlowMatchConfig> parse_flow_match_config(const nlohmann::json& config, std::string_view origin);

class FlowMatchEulerScheduler final : public Scheduler {
 public:
  explicit FlowMatchEulerScheduler(FlowMatchConfig config) : config_(config) {}
  std::string_view class_name() const override { return "FlowMatchEulerDiscreteScheduler"; }
  Schedule schedule(int steps, int image_seq_len) const override;
  const FlowMatchConfig& config() const { return config_; }

  // Flux's way (FluxPipeline.__call__): mu from the packed image sequence
  // length (calculate_shift over the config's base/max shift and sequence
  // lengths, float64), and set_timesteps(sigmas=linspace(1, 1/steps, steps),
  // mu=mu), which shifts the float32 sigmas in float32 as numpy does. Without
  // use_dynamic_shifting, mu is unused and the static shift applies.
  // REQUIRES: steps >= 1.
  double mu(int image_seq_len) const;
  Schedule schedule_linear_sigmas(int steps, double mu) const;

 private:
  FlowMatchConfig config_;
};

}  // namespace tp::nn
