#include "pipeline/common/discrete_sampler.h"

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>

#include <string>
#include <utility>

// Each expression below is diffusers' (scheduling_euler_discrete.py,
// scheduling_euler_ancestral_discrete.py, scheduling_dpmsolver_multistep.py),
// written with the same operators in the same order: Python's `1 / t` is
// t.reciprocal() * 1, `0.5 * t` is t * 0.5, `t ** 2` is pow(t, 2).

namespace tp::nn {
namespace {

// _sigma_to_alpha_sigma_t: alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma * alpha_t.
std::pair<at::Tensor, at::Tensor> alpha_sigma(const at::Tensor& sigma) {
  at::Tensor alpha_t = at::reciprocal(at::pow(at::pow(sigma, 2) + 1, 0.5)) * 1;
  return {alpha_t, sigma * alpha_t};
}

at::Tensor lambda_of(const at::Tensor& alpha_t, const at::Tensor& sigma_t) {
  return at::log(alpha_t) - at::log(sigma_t);
}

// The x0 prediction of Euler and Euler ancestral from a v_prediction output.
at::Tensor v_to_x0(const at::Tensor& model_output, const at::Tensor& sample, const at::Tensor& sigma) {
  return model_output * (-sigma / at::pow(at::pow(sigma, 2) + 1, 0.5)) + (sample / (at::pow(sigma, 2) + 1));
}

}  // namespace

Expected<DiscreteSampler> DiscreteSampler::make(const Scheduler& scheduler, int steps) {
  const auto* discrete = dynamic_cast<const DiscreteScheduler*>(&scheduler);
  if (!discrete)
    return invalid_argument("sampler: scheduler '" + std::string(scheduler.class_name()) + "' is not discrete-time");
  if (steps < 1) return invalid_argument("sampler: steps must be at least 1, not " + std::to_string(steps));
  Schedule schedule = discrete->schedule(steps);
  const double init = discrete->init_noise_sigma(schedule);
  return DiscreteSampler(discrete->config(), std::move(schedule), init);
}

at::Tensor DiscreteSampler::sigma(int i) const {
  return at::scalar_tensor(schedule_.sigmas.at(static_cast<size_t>(i)), at::kFloat);
}

at::Tensor DiscreteSampler::scale_model_input(const at::Tensor& x, int i) const {
  TP_ASSERT(i >= 0 && i < steps());
  if (config_.kind == DiscreteKind::kDpmSolverMultistep) return x;
  return x / at::pow(at::pow(sigma(i), 2) + 1, 0.5);
}

at::Tensor DiscreteSampler::step(const at::Tensor& model_output, int i, const at::Tensor& sample,
                                 at::Generator& generator) {
  TP_ASSERT(i == next_step_ && i < steps());
  ++next_step_;
  switch (config_.kind) {
    case DiscreteKind::kEuler:
      return euler_step(model_output, i, sample);
    case DiscreteKind::kEulerAncestral:
      return euler_ancestral_step(model_output, i, sample, generator);
    case DiscreteKind::kDpmSolverMultistep:
      return dpm_step(model_output, i, sample);
  }
  TP_ASSERT(false);
  return {};
}

at::Tensor DiscreteSampler::euler_step(const at::Tensor& model_output, int i, const at::Tensor& sample_in) const {
  const at::Tensor sample = sample_in.to(at::kFloat);
  const at::Tensor sigma = this->sigma(i);
  // s_churn 0: gamma 0, sigma_hat = sigma * (0.0 + 1).
  const at::Tensor sigma_hat = sigma * 1.0;
  const at::Tensor pred_original = config_.prediction_type == Prediction::kEpsilon
                                       ? sample - sigma_hat * model_output
                                       : v_to_x0(model_output, sample, sigma);
  const at::Tensor derivative = (sample - pred_original) / sigma_hat;
  const at::Tensor dt = this->sigma(i + 1) - sigma_hat;
  return (sample + derivative * dt).to(model_output.scalar_type());
}

at::Tensor DiscreteSampler::euler_ancestral_step(const at::Tensor& model_output, int i, const at::Tensor& sample_in,
                                                 at::Generator& generator) const {
  const at::Tensor sigma = this->sigma(i);
  const at::Tensor sample = sample_in.to(at::kFloat);
  const at::Tensor pred_original = config_.prediction_type == Prediction::kEpsilon
                                       ? sample - sigma * model_output
                                       : v_to_x0(model_output, sample, sigma);
  const at::Tensor sigma_from = this->sigma(i), sigma_to = this->sigma(i + 1);
  const at::Tensor sigma_up =
      at::pow(at::pow(sigma_to, 2) * (at::pow(sigma_from, 2) - at::pow(sigma_to, 2)) / at::pow(sigma_from, 2), 0.5);
  const at::Tensor sigma_down = at::pow(at::pow(sigma_to, 2) - at::pow(sigma_up, 2), 0.5);
  const at::Tensor derivative = (sample - pred_original) / sigma;
  const at::Tensor dt = sigma_down - sigma;
  at::Tensor prev = sample + derivative * dt;
  // randn_tensor(shape, generator=<CPU generator>, dtype=model_output.dtype), then on the device.
  const at::Tensor noise =
      at::randn(model_output.sizes(), generator, at::TensorOptions().dtype(model_output.scalar_type()).device(at::kCPU))
          .to(model_output.device());
  prev = prev + noise * sigma_up;
  return prev.to(model_output.scalar_type());
}

at::Tensor DiscreteSampler::dpm_step(const at::Tensor& model_output_in, int i, const at::Tensor& sample_in) {
  const DiscreteConfig& c = config_;
  const int n = steps();
  const bool lower_order_final =
      i == n - 1 && (c.euler_at_final || (c.lower_order_final && n < 15) || !c.final_sigma_min);
  const bool lower_order_second = i == n - 2 && c.lower_order_final && n < 15;

  // convert_model_output (dpmsolver++): the data prediction, in the inputs' dtypes.
  at::Tensor model_output;
  {
    auto [alpha_t, sigma_t] = alpha_sigma(sigma(i));
    model_output = c.prediction_type == Prediction::kEpsilon ? (sample_in - sigma_t * model_output_in) / alpha_t
                                                             : alpha_t * sample_in - sigma_t * model_output_in;
  }
  if (c.solver_order == 2) previous_output_ = last_output_;
  last_output_ = model_output;
  const at::Tensor sample = sample_in.to(at::kFloat);

  at::Tensor prev;
  if (c.solver_order == 1 || lower_order_nums_ < 1 || lower_order_final) {
    // dpm_solver_first_order_update
    auto [alpha_t, sigma_t] = alpha_sigma(sigma(i + 1));
    auto [alpha_s, sigma_s] = alpha_sigma(sigma(i));
    const at::Tensor h = lambda_of(alpha_t, sigma_t) - lambda_of(alpha_s, sigma_s);
    prev = (sigma_t / sigma_s) * sample - (alpha_t * (at::exp(-h) - 1.0)) * model_output;
  } else {
    // multistep_dpm_solver_second_order_update (solver_order 2, or lower_order_second: the same)
    (void)lower_order_second;
    auto [alpha_t, sigma_t] = alpha_sigma(sigma(i + 1));
    auto [alpha_s0, sigma_s0] = alpha_sigma(sigma(i));
    auto [alpha_s1, sigma_s1] = alpha_sigma(sigma(i - 1));
    const at::Tensor lambda_t = lambda_of(alpha_t, sigma_t), lambda_s0 = lambda_of(alpha_s0, sigma_s0),
                     lambda_s1 = lambda_of(alpha_s1, sigma_s1);
    const at::Tensor& m0 = last_output_;
    const at::Tensor& m1 = previous_output_;
    const at::Tensor h = lambda_t - lambda_s0, h_0 = lambda_s0 - lambda_s1;
    const at::Tensor r0 = h_0 / h;
    const at::Tensor& d0 = m0;
    const at::Tensor d1 = (at::reciprocal(r0) * 1.0) * (m0 - m1);
    if (!c.heun) {
      prev = (sigma_t / sigma_s0) * sample - (alpha_t * (at::exp(-h) - 1.0)) * d0 -
             ((alpha_t * (at::exp(-h) - 1.0)) * 0.5) * d1;
    } else {
      prev = (sigma_t / sigma_s0) * sample - (alpha_t * (at::exp(-h) - 1.0)) * d0 +
             (alpha_t * ((at::exp(-h) - 1.0) / h + 1.0)) * d1;
    }
  }
  if (lower_order_nums_ < c.solver_order) ++lower_order_nums_;
  return prev.to(model_output.scalar_type());
}

}  // namespace tp::nn
