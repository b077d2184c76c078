#include "pipeline/common/discrete_schedulers.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

// The arithmetic below is written one rounding per operation, as numpy and
// torch round it. It relies on the compiler not fusing a*b+c into one fma
// (x86-64 without -march: there is no fma to fuse into); where torch's own
// kernels fuse (torch.linspace), std::fma says so.

namespace tp::nn {
namespace {

// ---- numpy and torch, as diffusers calls them

// numpy.linspace(start, stop, num) in float64: i * step + start, the last
// point exactly `stop`.
std::vector<double> np_linspace(double start, double stop, int num) {
  std::vector<double> y(static_cast<size_t>(num));
  if (num == 1) {
    y[0] = start;
    return y;
  }
  const double delta = stop - start, step = delta / (num - 1);
  for (int i = 0; i < num; ++i) y[i] = step == 0 ? i / static_cast<double>(num - 1) * delta + start : i * step + start;
  y[static_cast<size_t>(num) - 1] = stop;
  return y;
}

// numpy.arange(start, stop, step) in float64: ceil((stop - start) / step)
// values; the first two are start and start + step, the others start + i * d
// with d = (start + step) - start (numpy's DOUBLE_fill).
std::vector<double> np_arange(double start, double stop, double step) {
  const double len = std::ceil((stop - start) / step);
  std::vector<double> y;
  if (!(len > 0)) return y;
  const size_t n = static_cast<size_t>(len);
  y.resize(n);
  y[0] = start;
  if (n > 1) y[1] = start + step;
  const double d = n > 1 ? y[1] - y[0] : 0;
  for (size_t i = 2; i < n; ++i) y[i] = start + static_cast<double>(i) * d;
  return y;
}

// numpy.round: half to even.
double np_round(double x) { return std::nearbyint(x); }

// torch.linspace(start, end, n, dtype=float32) on the CPU: the first half
// from the start, the second from the end, each one fma (the ATen kernel's
// `start + step * idx` is contracted where torch is built with fma).
std::vector<float> torch_linspace_f32(double start_d, double end_d, int n) {
  const float start = static_cast<float>(start_d), end = static_cast<float>(end_d);
  std::vector<float> out(static_cast<size_t>(n));
  if (n == 1) {
    out[0] = start;
    return out;
  }
  const float step = (end - start) / static_cast<float>(n - 1);
  const int half = n / 2;
  for (int i = 0; i < n; ++i)
    out[i] =
        i < half ? std::fma(step, static_cast<float>(i), start) : std::fma(-step, static_cast<float>(n - 1 - i), end);
  return out;
}

// numpy.interp(x, arange(len(fp)), fp) for float32 fp, in float64.
double np_interp(double x, const std::vector<float>& fp) {
  const int n = static_cast<int>(fp.size());
  if (std::isnan(x)) return x;
  if (x < 0) return fp.front();
  if (x >= n - 1) return fp.back();
  const int j = static_cast<int>(std::floor(x));
  if (x == j) return fp[j];
  const double slope = (static_cast<double>(fp[j + 1]) - static_cast<double>(fp[j])) / 1.0;
  return slope * (x - j) + static_cast<double>(fp[j]);
}

// _convert_to_karras (rho 7), in float64.
std::vector<double> karras(double sigma_min, double sigma_max, int steps) {
  const double rho = 7.0;
  const std::vector<double> ramp = np_linspace(0, 1, steps);
  const double min_inv_rho = std::pow(sigma_min, 1 / rho), max_inv_rho = std::pow(sigma_max, 1 / rho);
  const double span = min_inv_rho - max_inv_rho;
  std::vector<double> sigmas;
  for (double r : ramp) sigmas.push_back(std::pow(max_inv_rho + r * span, rho));
  return sigmas;
}

// _sigma_to_t: the fractional training timestep of `sigma`, interpolating
// log sigma over `log_sigmas` (float32, as np.log of the float32 table).
double sigma_to_t(double sigma, const std::vector<float>& log_sigmas) {
  const double log_sigma = std::log(std::max(sigma, 1e-10));
  const int n = static_cast<int>(log_sigmas.size());
  // cumsum(dists >= 0).argmax(): the first index where the count peaks.
  int count = 0, best = 0, low_idx = 0;
  for (int i = 0; i < n; ++i) {
    count += log_sigma - static_cast<double>(log_sigmas[i]) >= 0;
    if (count > best) best = count, low_idx = i;
  }
  low_idx = std::min(low_idx, n - 2);
  const int high_idx = low_idx + 1;
  const float low = log_sigmas[low_idx], high = log_sigmas[high_idx];
  const float low_minus_high = low - high;  // float32 - float32 stays float32
  double w = (static_cast<double>(low) - log_sigma) / static_cast<double>(low_minus_high);
  w = std::clamp(w, 0.0, 1.0);
  return (1 - w) * low_idx + w * high_idx;
}

// ---- parsing

struct Fields {
  const nlohmann::json& j;
  const std::string& where;

  const nlohmann::json* get(const char* key) const {
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  }
  Status number(const char* key, double& out) const {
    const auto* v = get(key);
    if (!v) return {};
    if (!v->is_number() || !std::isfinite(v->get<double>()))
      return invalid_argument(where + ": '" + key + "' must be a number, not " + v->dump());
    out = v->get<double>();
    return {};
  }
  Status integer(const char* key, int& out, int lo, int hi) const {
    double d = out;
    TP_TRY(number(key, d));
    if (d != std::floor(d) || d < lo || d > hi)
      return invalid_argument(where + ": '" + key + "' must be an integer in " + std::to_string(lo) + ".." +
                              std::to_string(hi) + ", not " + get(key)->dump());
    out = static_cast<int>(d);
    return {};
  }
  Status boolean(const char* key, bool& out) const {
    const auto* v = get(key);
    if (!v) return {};
    if (!v->is_boolean()) return invalid_argument(where + ": '" + key + "' must be true or false, not " + v->dump());
    out = v->get<bool>();
    return {};
  }
  // kUnimplemented when `key` is true.
  Status refuse_true(const char* key) const {
    bool on = false;
    TP_TRY(boolean(key, on));
    if (on) return unimplemented(where + ": '" + key + "' is not supported");
    return {};
  }
  // One of `allowed` (its index), `fallback` when absent; a value in
  // `unsupported` (diffusers has it, this does not) is kUnimplemented.
  Expected<int> choice(const char* key, std::initializer_list<const char*> allowed, int fallback,
                       std::initializer_list<const char*> unsupported = {}) const {
    const auto* v = get(key);
    if (!v) return fallback;
    std::string list;
    for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + "'" + a + "'";
    if (!v->is_string())
      return invalid_argument(where + ": '" + key + "' must be one of " + list + ", not " + v->dump());
    const std::string s = v->get<std::string>();
    int i = 0;
    for (const char* a : allowed) {
      if (s == a) return i;
      ++i;
    }
    for (const char* u : unsupported)
      if (s == u)
        return unimplemented(where + ": '" + key + "' '" + s + "' is not supported (supported: " + list + ")");
    return invalid_argument(where + ": '" + key + "' must be one of " + list + ", not '" + s + "'");
  }
};

struct NamedScheduler {
  const char* name;
  DiscreteKind kind;
  const char* overrides;  // JSON applied over the folder's config
};

constexpr NamedScheduler kNamed[] = {
    {"euler", DiscreteKind::kEuler, R"({"use_karras_sigmas": false})"},
    {"euler_a", DiscreteKind::kEulerAncestral, "{}"},
    {"dpmpp_2m", DiscreteKind::kDpmSolverMultistep,
     R"({"use_karras_sigmas": false, "algorithm_type": "dpmsolver++", "solver_order": 2})"},
    {"dpmpp_2m_karras", DiscreteKind::kDpmSolverMultistep,
     R"({"use_karras_sigmas": true, "algorithm_type": "dpmsolver++", "solver_order": 2})"},
    {"EulerDiscreteScheduler", DiscreteKind::kEuler, "{}"},
    {"EulerAncestralDiscreteScheduler", DiscreteKind::kEulerAncestral, "{}"},
    {"DPMSolverMultistepScheduler", DiscreteKind::kDpmSolverMultistep, "{}"},
};

std::optional<DiscreteKind> kind_of_class(std::string_view cls) {
  for (DiscreteKind k : {DiscreteKind::kEuler, DiscreteKind::kEulerAncestral, DiscreteKind::kDpmSolverMultistep})
    if (discrete_class_name(k) == cls) return k;
  return std::nullopt;
}

}  // namespace

std::string_view discrete_class_name(DiscreteKind kind) {
  switch (kind) {
    case DiscreteKind::kEuler:
      return "EulerDiscreteScheduler";
    case DiscreteKind::kEulerAncestral:
      return "EulerAncestralDiscreteScheduler";
    case DiscreteKind::kDpmSolverMultistep:
      return "DPMSolverMultistepScheduler";
  }
  return "";
}

Expected<DiscreteConfig> parse_discrete_config(DiscreteKind kind, const nlohmann::json& j, std::string_view origin) {
  const std::string where(origin);
  if (!j.is_object()) return invalid_argument(where + ": not a JSON object");
  const Fields f{j, where};
  const bool euler = kind == DiscreteKind::kEuler, dpm = kind == DiscreteKind::kDpmSolverMultistep;
  DiscreteConfig c;
  c.kind = kind;

  TP_TRY(f.integer("num_train_timesteps", c.num_train_timesteps, 2, 100000));
  TP_TRY(f.number("beta_start", c.beta_start));
  TP_TRY(f.number("beta_end", c.beta_end));
  TP_ASSIGN_OR_RETURN(int schedule, f.choice("beta_schedule", {"linear", "scaled_linear", "squaredcos_cap_v2"}, 0));
  c.beta_schedule = static_cast<BetaSchedule>(schedule);
  if (c.beta_schedule == BetaSchedule::kScaledLinear && (c.beta_start < 0 || c.beta_end < 0))
    return invalid_argument(where + ": 'beta_start' and 'beta_end' must not be negative with scaled_linear betas");
  if (const auto* tb = f.get("trained_betas")) {
    if (!tb->is_array() || tb->size() != static_cast<size_t>(c.num_train_timesteps))
      return invalid_argument(where + ": 'trained_betas' must be an array of num_train_timesteps (" +
                              std::to_string(c.num_train_timesteps) + ") numbers");
    for (const auto& b : *tb) {
      if (!b.is_number() || !(b.get<double>() >= 0 && b.get<double>() < 1))
        return invalid_argument(where + ": 'trained_betas' must hold numbers in [0, 1), not " + b.dump());
      c.trained_betas.push_back(b.get<double>());
    }
  }
  TP_TRY(f.refuse_true("rescale_betas_zero_snr"));

  const auto predictions = {"epsilon", "v_prediction"};
  TP_ASSIGN_OR_RETURN(int prediction,
                      f.choice("prediction_type", predictions, 0, {"sample", "original_sample", "flow_prediction"}));
  c.prediction_type = static_cast<Prediction>(prediction);
  TP_ASSIGN_OR_RETURN(int spacing, f.choice("timestep_spacing", {"linspace", "leading", "trailing"}, 0));
  c.timestep_spacing = static_cast<Spacing>(spacing);
  TP_TRY(f.integer("steps_offset", c.steps_offset, 0, 1000000));

  if (euler || dpm) {
    TP_TRY(f.boolean("use_karras_sigmas", c.use_karras_sigmas));
    TP_TRY(f.refuse_true("use_exponential_sigmas"));
    TP_TRY(f.refuse_true("use_beta_sigmas"));
    TP_ASSIGN_OR_RETURN(int final_type, f.choice("final_sigmas_type", {"zero", "sigma_min"}, 0));
    c.final_sigma_min = final_type == 1;
  }
  if (euler) {
    TP_ASSIGN_OR_RETURN(int interp, f.choice("interpolation_type", {"linear"}, 0, {"log_linear"}));
    (void)interp;
    TP_ASSIGN_OR_RETURN(int type, f.choice("timestep_type", {"discrete", "continuous"}, 0));
    c.continuous_timesteps = type == 1;
    for (auto [key, out] : {std::pair{"sigma_min", &c.sigma_min}, std::pair{"sigma_max", &c.sigma_max}}) {
      if (!f.get(key)) continue;
      double v = 0;
      TP_TRY(f.number(key, v));
      if (!(v > 0)) return invalid_argument(where + ": '" + key + "' must be positive");
      *out = v;
    }
  }
  if (dpm) {
    TP_TRY(f.integer("solver_order", c.solver_order, 1, 3));
    if (c.solver_order == 3) return unimplemented(where + ": 'solver_order' 3 is not supported (1 or 2)");
    // diffusers treats "deis" as dpmsolver++.
    TP_ASSIGN_OR_RETURN(int algorithm, f.choice("algorithm_type", {"dpmsolver++", "deis"}, 0,
                                                {"dpmsolver", "sde-dpmsolver", "sde-dpmsolver++"}));
    (void)algorithm;
    // diffusers treats "logrho", "bh1" and "bh2" as midpoint.
    TP_ASSIGN_OR_RETURN(int solver, f.choice("solver_type", {"midpoint", "heun", "logrho", "bh1", "bh2"}, 0));
    c.heun = solver == 1;
    TP_TRY(f.boolean("lower_order_final", c.lower_order_final));
    TP_TRY(f.boolean("euler_at_final", c.euler_at_final));
    for (const char* flag : {"thresholding", "use_lu_lambdas", "use_flow_sigmas", "use_dynamic_shifting"})
      TP_TRY(f.refuse_true(flag));
    if (const auto* v = f.get("variance_type"))
      return unimplemented(where + ": 'variance_type' " + v->dump() + " is not supported (null only)");
    if (const auto* v = f.get("lambda_min_clipped"))
      return unimplemented(where + ": a finite 'lambda_min_clipped' (" + v->dump() + ") is not supported");
  }
  return c;
}

DiscreteScheduler::DiscreteScheduler(DiscreteConfig config) : config_(std::move(config)) {
  const int n = config_.num_train_timesteps;
  std::vector<float> betas;
  if (!config_.trained_betas.empty()) {
    for (double b : config_.trained_betas) betas.push_back(static_cast<float>(b));
  } else if (config_.beta_schedule == BetaSchedule::kLinear) {
    betas = torch_linspace_f32(config_.beta_start, config_.beta_end, n);
  } else if (config_.beta_schedule == BetaSchedule::kScaledLinear) {
    betas = torch_linspace_f32(std::sqrt(config_.beta_start), std::sqrt(config_.beta_end), n);
    for (float& b : betas) b = b * b;
  } else {
    // betas_for_alpha_bar (cosine), in Python floats, then float32.
    const double pi = 3.141592653589793;
    auto alpha_bar = [&](double t) {
      const double c = std::cos((t + 0.008) / 1.008 * pi / 2);
      return c * c;
    };
    for (int i = 0; i < n; ++i) {
      const double t1 = static_cast<double>(i) / n, t2 = static_cast<double>(i + 1) / n;
      betas.push_back(static_cast<float>(std::min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999)));
    }
  }
  // alphas = 1 - betas (float32); torch.cumprod accumulates float32 in double.
  double acc = 1;
  for (float b : betas) {
    acc *= static_cast<double>(1.0f - b);
    const float ac = static_cast<float>(acc);
    alphas_cumprod_.push_back(ac);
    train_sigmas_.push_back(std::sqrt((1.0f - ac) / ac));
  }
}

Schedule DiscreteScheduler::schedule(int steps, int /*image_seq_len*/) const {
  TP_ASSERT(steps >= 1);
  const DiscreteConfig& c = config_;
  const int n = c.num_train_timesteps;
  const bool dpm = c.kind == DiscreteKind::kDpmSolverMultistep;

  // The timesteps before any Karras conversion: Euler's are float32 values,
  // DPM's integers (both held in doubles).
  std::vector<double> t;
  if (!dpm) {
    if (c.timestep_spacing == Spacing::kLinspace) {
      const std::vector<double> l = np_linspace(0, n - 1, steps);
      for (int i = steps - 1; i >= 0; --i) t.push_back(static_cast<float>(l[i]));
    } else if (c.timestep_spacing == Spacing::kLeading) {
      const int ratio = n / steps;
      for (int i = steps - 1; i >= 0; --i)
        t.push_back(static_cast<float>(static_cast<double>(i) * ratio) + static_cast<float>(c.steps_offset));
    } else {
      for (double v : np_arange(n, 0, -(static_cast<double>(n) / steps)))
        t.push_back(static_cast<float>(np_round(v)) - 1.0f);
    }
  } else {
    const int last = n;  // lambda_min_clipped is -inf
    if (c.timestep_spacing == Spacing::kLinspace) {
      const std::vector<double> l = np_linspace(0, last - 1, steps + 1);
      for (int i = steps; i >= 1; --i) t.push_back(static_cast<double>(static_cast<int64_t>(np_round(l[i]))));
    } else if (c.timestep_spacing == Spacing::kLeading) {
      const int64_t ratio = last / (steps + 1);
      for (int64_t i = steps; i >= 1; --i) t.push_back(static_cast<double>(i * ratio + c.steps_offset));
    } else {
      for (double v : np_arange(last, 0, -(static_cast<double>(n) / steps)))
        t.push_back(static_cast<double>(static_cast<int64_t>(np_round(v)) - 1));
    }
  }

  std::vector<double> sigmas;
  if (c.use_karras_sigmas) {
    std::vector<float> log_sigmas;
    for (float s : train_sigmas_) log_sigmas.push_back(static_cast<float>(std::log(static_cast<double>(s))));
    if (!dpm) {
      // Euler: the range of the interpolated schedule (or the config's).
      std::vector<double> in;
      for (double x : t) in.push_back(np_interp(x, train_sigmas_));
      sigmas = karras(c.sigma_min.value_or(in.back()), c.sigma_max.value_or(in.front()), steps);
      t.clear();
      for (double s : sigmas) t.push_back(sigma_to_t(s, log_sigmas));
    } else {
      sigmas = karras(train_sigmas_.front(), train_sigmas_.back(), steps);
      t.clear();
      for (double s : sigmas) {
        const double v = sigma_to_t(s, log_sigmas);
        // Rounded, except for cosine betas; then int64 (truncation).
        t.push_back(static_cast<double>(
            static_cast<int64_t>(c.beta_schedule != BetaSchedule::kSquaredCosCapV2 ? np_round(v) : v)));
      }
    }
  } else {
    for (double x : t) sigmas.push_back(np_interp(x, train_sigmas_));
  }

  Schedule s;
  for (double v : sigmas) s.sigmas.push_back(static_cast<float>(v));
  const float ac0 = alphas_cumprod_.front();
  s.sigmas.push_back(c.final_sigma_min ? std::sqrt((1.0f - ac0) / ac0) : 0.0f);
  if (c.kind == DiscreteKind::kEuler && c.continuous_timesteps && c.prediction_type == Prediction::kVPrediction) {
    for (size_t i = 0; i + 1 < s.sigmas.size(); ++i) s.timesteps.push_back(0.25f * std::log(s.sigmas[i]));
  } else {
    for (double v : t) s.timesteps.push_back(static_cast<float>(v));
  }
  return s;
}

double DiscreteScheduler::init_noise_sigma(const Schedule& schedule) const {
  if (config_.kind == DiscreteKind::kDpmSolverMultistep) return 1.0;
  const float max_sigma = *std::max_element(schedule.sigmas.begin(), schedule.sigmas.end());
  if (config_.timestep_spacing != Spacing::kLeading) return max_sigma;
  return std::sqrt(max_sigma * max_sigma + 1.0f);
}

std::string known_scheduler_names() {
  std::string s;
  for (const auto& n : kNamed) s += std::string(s.empty() ? "" : ", ") + n.name;
  return s;
}

Expected<std::shared_ptr<const Scheduler>> make_scheduler_named(std::string_view name,
                                                                const nlohmann::json& folder_config,
                                                                std::string_view origin) {
  if (name.empty()) return make_scheduler(folder_config, origin);
  const NamedScheduler* named = nullptr;
  for (const auto& n : kNamed)
    if (name == n.name) named = &n;
  if (!named)
    return invalid_argument("generate: unknown scheduler '" + std::string(name) +
                            "' (known: " + known_scheduler_names() + ")");
  if (!folder_config.is_object()) return invalid_argument(std::string(origin) + ": not a JSON object");
  const auto it = folder_config.find("_class_name");
  const std::string cls = it != folder_config.end() && it->is_string() ? it->get<std::string>() : std::string();
  if (!kind_of_class(cls))
    return invalid_argument("generate: scheduler '" + std::string(name) + "' needs a discrete-time model, and " +
                            std::string(origin) + " names '" + cls + "'");
  nlohmann::json config = folder_config;
  config.update(nlohmann::json::parse(named->overrides));
  config["_class_name"] = std::string(discrete_class_name(named->kind));
  TP_ASSIGN_OR_RETURN(DiscreteConfig c, parse_discrete_config(named->kind, config, origin));
  return std::make_shared<const DiscreteScheduler>(std::move(c));
}

}  // namespace tp::nn
