// Private (pipeline, torch): one sampling run of a discrete-time scheduler
// (discrete_schedulers.h): Euler, Euler ancestral and DPM++ 2M (with its
// multistep state), for epsilon and v_prediction models, step by step as
// diffusers' scheduler.step() computes it: the same tensor operations in the
// same order and dtypes (the sample upcast to float32 in step() and the result
// cast back to the model output's dtype; the scalar coefficients as float32
// CPU tensors), so that a run matches diffusers' to float rounding.
//
// The loop (SDXL's, as diffusers' pipeline runs it):
//   auto sampler = DiscreteSampler::make(scheduler, steps);
//   at::Generator gen = seeded_cpu_generator(seed);                 // generation.h
//   latents = initial_noise(shape, given, gen, device, dtype, dtype) * sampler.init_noise_sigma();
//   for (int i = 0; i < sampler.steps(); ++i) {
//     x = sampler.scale_model_input(cfg ? cat({latents, latents}) : latents, i);
//     eps = unet(x, sampler.schedule().timesteps[i], ...);  then classifier-free guidance
//     latents = sampler.step(eps, i, latents, gen);
//   }
// Euler ancestral draws its per-step noise from `gen` (as
// randn_tensor(shape, generator=CPU generator, dtype=model output's) then moved
// to the device), continuing the stream the initial latents came from.
//
// Threading: a DiscreteSampler belongs to one generation (step() changes its
// state); make() is safe from any thread.
#pragma once

#include <ATen/Tensor.h>
#include <ATen/core/Generator.h>

#include "pipeline/common/discrete_schedulers.h"
#include "twistedpic/expected.h"

namespace tp::nn {

class DiscreteSampler {
 public:
  // The run of `steps` steps (set_timesteps). Errors: kInvalidArgument when
  // `scheduler` is not a DiscreteScheduler or steps < 1.
  static Expected<DiscreteSampler> make(const Scheduler& scheduler, int steps);

  const Schedule& schedule() const { return schedule_; }
  // The number of denoising steps: schedule().timesteps.size() (one more than
  // asked for in diffusers' "trailing" corner cases, as there).
  int steps() const { return static_cast<int>(schedule_.timesteps.size()); }
  // The factor of the initial noise (diffusers' init_noise_sigma).
  double init_noise_sigma() const { return init_noise_sigma_; }
  const DiscreteConfig& config() const { return config_; }

  // The UNet's input at step i: x / sqrt(sigma_i^2 + 1) for Euler and Euler
  // ancestral, x itself for DPM. REQUIRES: 0 <= i < steps().
  at::Tensor scale_model_input(const at::Tensor& x, int i) const;
  // The latents after step i, from the (guided) model output at step i and
  // the latents before it, in model_output's dtype. Euler ancestral draws
  // noise from `generator` (a CPU generator). REQUIRES: the steps are taken in
  // order 0, 1, ..., steps() - 1, once each.
  at::Tensor step(const at::Tensor& model_output, int i, const at::Tensor& sample, at::Generator& generator);

 private:
  DiscreteSampler(DiscreteConfig config, Schedule schedule, double init_noise_sigma)
      : config_(std::move(config)), schedule_(std::move(schedule)), init_noise_sigma_(init_noise_sigma) {}

  at::Tensor euler_step(const at::Tensor& model_output, int i, const at::Tensor& sample) const;
  at::Tensor euler_ancestral_step(const at::Tensor& model_output, int i, const at::Tensor& sample,
                                  at::Generator& generator) const;
  at::Tensor dpm_step(const at::Tensor& model_output, int i, const at::Tensor& sample);
  at::Tensor sigma(int i) const;  // sigmas[i], a float32 CPU scalar tensor

  DiscreteConfig config_;
  Schedule schedule_;
  double init_noise_sigma_ = 1;
  int next_step_ = 0;
  // DPM: the data predictions of the last two steps (model_outputs[-2], [-1])
  // and how many lower-order steps have run (lower_order_nums).
  at::Tensor previous_output_, last_output_;
  int lower_order_nums_ = 0;
};

}  // namespace tp::nn
