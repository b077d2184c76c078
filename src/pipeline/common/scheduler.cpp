#include "pipeline/common/scheduler.h"

#include <cmath>

#include "pipeline/common/discrete_schedulers.h"

namespace tp::nn {

Expected<std::shared_ptr<const Scheduler>> make_scheduler(const nlohmann::json& config, std::string_view origin) {
  if (!config.is_object()) return invalid_argument(std::string(origin) + ": not a JSON object");
  const auto it = config.find("_class_name");
  const std::string cls = it != config.end() && it->is_string() ? it->get<std::string>() : std::string();
  if (cls == "FlowMatchEulerDiscreteScheduler") {
    TP_ASSIGN_OR_RETURN(FlowMatchConfig c, parse_flow_match_config(config, origin));
    return std::make_shared<const FlowMatchEulerScheduler>(c);
  }
  for (DiscreteKind kind : {DiscreteKind::kEuler, DiscreteKind::kEulerAncestral, DiscreteKind::kDpmSolverMultistep}) {
    if (cls != discrete_class_name(kind)) continue;
    TP_ASSIGN_OR_RETURN(DiscreteConfig c, parse_discrete_config(kind, config, origin));
    return std::make_shared<const DiscreteScheduler>(std::move(c));
  }
  return unimplemented(std::string(origin) + ": scheduler '" + cls +
                       "' is not supported (supported: FlowMatchEulerDiscreteScheduler, EulerDiscreteScheduler, "
                       "EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler)");
}

Expected<FlowMatchConfig> parse_flow_match_config(const nlohmann::json& j, std::string_view origin) {
  const std::string where(origin);
  if (!j.is_object()) return invalid_argument(where + ": not a JSON object");
  for (const char* flag : {"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "invert_sigmas",
                           "stochastic_sampling"}) {
    auto it = j.find(flag);
    if (it != j.end() && !it->is_null() && (!it->is_boolean() || it->get<bool>()))
      return unimplemented(where + ": '" + flag + "' is not supported");
  }
  if (auto it = j.find("shift_terminal"); it != j.end() && !it->is_null())
    return unimplemented(where + ": 'shift_terminal' is not supported");
  if (auto it = j.find("time_shift_type"); it != j.end() && !it->is_null() && *it != "exponential")
    return unimplemented(where + ": only the exponential 'time_shift_type' is supported");

  FlowMatchConfig c;
  auto number = [&](const char* key, double& out) -> Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return {};
    if (!it->is_number() || !std::isfinite(it->get<double>()))
      return invalid_argument(where + ": '" + key + "' must be a number, not " + it->dump());
    out = it->get<double>();
    return {};
  };
  double train = c.num_train_timesteps, base_len = c.base_image_seq_len, max_len = c.max_image_seq_len;
  TP_TRY(number("num_train_timesteps", train));
  TP_TRY(number("shift", c.shift));
  TP_TRY(number("base_shift", c.base_shift));
  TP_TRY(number("max_shift", c.max_shift));
  TP_TRY(number("base_image_seq_len", base_len));
  TP_TRY(number("max_image_seq_len", max_len));
  if (train < 1 || train > 100000 || train != std::floor(train))
    return invalid_argument(where + ": 'num_train_timesteps' must be a positive integer");
  if (c.shift <= 0) return invalid_argument(where + ": 'shift' must be positive");
  if (base_len == max_len) return invalid_argument(where + ": 'base_image_seq_len' equals 'max_image_seq_len'");
  c.num_train_timesteps = static_cast<int>(train);
  c.base_image_seq_len = static_cast<int>(base_len);
  c.max_image_seq_len = static_cast<int>(max_len);
  if (auto it = j.find("use_dynamic_shifting"); it != j.end() && it->is_boolean()) c.use_dynamic_shifting = it->get<bool>();
  return c;
}

Schedule FlowMatchEulerScheduler::schedule(int steps, int image_seq_len) const {
  const FlowMatchConfig& c = config_;
  const int n = c.num_train_timesteps;
  // __init__: float32 torch arithmetic over linspace(1, n, n) / n.
  auto shifted32 = [&](float s) {
    if (c.use_dynamic_shifting) return s;
    const float shift = static_cast<float>(c.shift);
    return shift * s / (1.0f + (shift - 1.0f) * s);
  };
  const float sigma_max = shifted32(static_cast<float>(n) / static_cast<float>(n));
  const float sigma_min = shifted32(1.0f / static_cast<float>(n));

  // set_timesteps: numpy float64 from here, float32 at the end.
  const double t_max = static_cast<double>(sigma_max) * n, t_min = static_cast<double>(sigma_min) * n;
  double mu = 0;
  if (c.use_dynamic_shifting) {
    const double m = (c.max_shift - c.base_shift) / (c.max_image_seq_len - c.base_image_seq_len);
    mu = image_seq_len * m + (c.base_shift - m * c.base_image_seq_len);
  }
  Schedule s;
  for (int i = 0; i < steps; ++i) {
    // np.linspace: start + i * step, the last point exactly `stop`.
    const double t = steps == 1 ? t_max : (i == steps - 1 ? t_min : t_max + i * ((t_min - t_max) / (steps - 1)));
    double sigma = t / n;
    if (c.use_dynamic_shifting) sigma = std::exp(mu) / (std::exp(mu) + (1 / sigma - 1));
    else sigma = c.shift * sigma / (1 + (c.shift - 1) * sigma);
    const float sigma32 = static_cast<float>(sigma);
    s.sigmas.push_back(sigma32);
    s.timesteps.push_back(sigma32 * static_cast<float>(n));
  }
  s.sigmas.push_back(0.0f);
  return s;
}

double FlowMatchEulerScheduler::mu(int image_seq_len) const {
  const FlowMatchConfig& c = config_;
  const double m = (c.max_shift - c.base_shift) / (c.max_image_seq_len - c.base_image_seq_len);
  const double b = c.base_shift - m * c.base_image_seq_len;
  return image_seq_len * m + b;
}

Schedule FlowMatchEulerScheduler::schedule_linear_sigmas(int steps, double mu) const {
  const FlowMatchConfig& c = config_;
  Schedule s;
  const double start = 1.0, stop = 1.0 / steps;
  const float e = static_cast<float>(std::exp(mu));
  const float shift = static_cast<float>(c.shift), shift_less_one = static_cast<float>(c.shift - 1);
  for (int i = 0; i < steps; ++i) {
    // np.linspace(1, 1/steps, steps) in float64, then .astype(float32).
    const double v = steps == 1 ? start : (i == steps - 1 ? stop : start + i * ((stop - start) / (steps - 1)));
    const float sigma = static_cast<float>(v);
    // numpy float32 arithmetic: Python floats are cast to float32 first (NEP 50).
    const float shifted = c.use_dynamic_shifting ? e / (e + (1.0f / sigma - 1.0f))
                                                 : shift * sigma / (1.0f + shift_less_one * sigma);
    s.sigmas.push_back(shifted);
    s.timesteps.push_back(shifted * static_cast<float>(c.num_train_timesteps));
  }
  s.sigmas.push_back(0.0f);
  return s;
}

}  // namespace tp::nn
