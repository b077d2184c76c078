// The discrete-time schedulers (discrete_schedulers.h) and their sampler
// (discrete_sampler.h) against diffusers' EulerDiscreteScheduler,
// EulerAncestralDiscreteScheduler and DPMSolverMultistepScheduler, from the
// references scripts/scheduler_reference.py writes (the ctest fixture
// pipeline.scheduler_reference, into TP_SCHEDULER_REFERENCE_DIR):
//  - the tables of set_timesteps(): timesteps exactly, except Euler's Karras
//    timesteps (numpy's SIMD float32 log of the training sigmas: within 1e-6
//    relative) and the continuous ones (torch's float32 log: 1 ulp); sigmas and
//    init_noise_sigma within 1 ulp (torch's float32 sqrt of the training
//    table, MKL's, is not always correctly rounded: 6 of SDXL's 1000);
//  - whole sampling runs (float32 and bfloat16), the latents after each step
//    within 1e-6 relative to their largest magnitude.
// The counts and worst errors are printed.
#include <ATen/Context.h>
#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "pipeline/common/discrete_sampler.h"
#include "pipeline/common/generation.h"

namespace tp::nn {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kDir = TP_SCHEDULER_REFERENCE_DIR;

json read_json(const fs::path& p) {
  std::ifstream f(p);
  EXPECT_TRUE(f) << p;
  json j;
  f >> j;
  return j;
}

// The float32 values between a and b (0 when equal).
int64_t ulps(float a, float b) {
  int32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  if ((x < 0) != (y < 0)) return a == b ? 0 : std::numeric_limits<int32_t>::max();
  return std::abs(static_cast<int64_t>(x) - y);
}

// A safetensors file's float32 and bfloat16 tensors, on the CPU.
std::map<std::string, at::Tensor> read_safetensors(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  EXPECT_TRUE(f) << p;
  uint64_t n = 0;
  f.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, '\0');
  f.read(header.data(), static_cast<std::streamsize>(n));
  std::stringstream rest;
  rest << f.rdbuf();
  const std::string data = rest.str();
  std::map<std::string, at::Tensor> out;
  const json index = json::parse(header);
  for (const auto& [name, info] : index.items()) {
    if (name == "__metadata__") continue;
    const auto dtype = info["dtype"] == "BF16" ? at::kBFloat16 : at::kFloat;
    EXPECT_TRUE(info["dtype"] == "BF16" || info["dtype"] == "F32") << name;
    const auto shape = info["shape"].get<std::vector<int64_t>>();
    const size_t begin = info["data_offsets"][0];
    out[name] = at::from_blob(const_cast<char*>(data.data()) + begin, shape, at::TensorOptions().dtype(dtype)).clone();
  }
  return out;
}

std::shared_ptr<const Scheduler> scheduler_for(const json& c) {
  auto s = make_scheduler_named(c["class"].get<std::string>(), c["config"], "reference config");
  EXPECT_TRUE(s) << s.error().to_string() << " " << c["config"];
  return s ? *s : nullptr;
}

TEST(SchedulerReferenceTest, TrainingTables) {
  const json tables = read_json(kDir / "tables.json");
  ASSERT_FALSE(tables["training"].empty());
  for (const json& t : tables["training"]) {
    auto s = std::dynamic_pointer_cast<const DiscreteScheduler>(scheduler_for(t));
    ASSERT_NE(s, nullptr);
    ASSERT_EQ(s->alphas_cumprod().size(), t["alphas_cumprod"].size());
    int ac_off = 0, sigma_off = 0;
    int64_t worst = 0;
    for (size_t i = 0; i < s->alphas_cumprod().size(); ++i) {
      ac_off += s->alphas_cumprod()[i] != t["alphas_cumprod"][i].get<float>();
      const int64_t u = ulps(s->train_sigmas()[i], t["sigmas"][i].get<float>());
      sigma_off += u != 0;
      worst = std::max(worst, u);
    }
    std::cout << "training " << t["name"].get<std::string>() << ": alphas_cumprod " << ac_off << " off, sigmas "
              << sigma_off << " of " << s->train_sigmas().size() << " off by <= " << worst << " ulp\n";
    EXPECT_EQ(ac_off, 0) << t["name"];
    EXPECT_LE(worst, 1) << t["name"];
    EXPECT_LE(sigma_off, 10) << t["name"];
  }
}

TEST(SchedulerReferenceTest, TimestepsSigmasAndInitNoiseSigma) {
  const json tables = read_json(kDir / "tables.json");
  struct Tally {
    int cases = 0, exact = 0, sigmas_off = 0;
    int64_t worst_t = 0, worst_sigma = 0, worst_init = 0;
  };
  std::map<std::string, Tally> tally;
  for (const json& c : tables["cases"]) {
    const std::string name = c["name"];
    auto s = std::dynamic_pointer_cast<const DiscreteScheduler>(scheduler_for(c));
    ASSERT_NE(s, nullptr) << name;
    const int steps = c["steps"];
    const Schedule got = s->schedule(steps);
    Tally& t = tally[name];
    ++t.cases;
    ASSERT_EQ(got.timesteps.size(), c["timesteps"].size()) << name << " " << steps;
    ASSERT_EQ(got.sigmas.size(), c["sigmas"].size()) << name << " " << steps;
    const bool karras_euler = s->config().kind == DiscreteKind::kEuler && s->config().use_karras_sigmas;
    const bool continuous = s->config().continuous_timesteps && s->config().prediction_type == Prediction::kVPrediction;
    bool exact = true;
    for (size_t i = 0; i < got.timesteps.size(); ++i) {
      const float want = c["timesteps"][i].get<float>();
      const int64_t u = ulps(got.timesteps[i], want);
      t.worst_t = std::max(t.worst_t, u);
      exact &= u == 0;
      if (karras_euler)
        EXPECT_NEAR(got.timesteps[i], want, 1e-6 * std::abs(want)) << name << " " << steps << " " << i;
      else if (continuous)
        EXPECT_LE(u, 1) << name << " " << steps << " " << i;
      else
        EXPECT_EQ(got.timesteps[i], want) << name << " " << steps << " " << i;
    }
    for (size_t i = 0; i < got.sigmas.size(); ++i) {
      const int64_t u = ulps(got.sigmas[i], c["sigmas"][i].get<float>());
      t.worst_sigma = std::max(t.worst_sigma, u);
      t.sigmas_off += u != 0;
      exact &= u == 0;
      EXPECT_LE(u, 1) << name << " " << steps << " sigma " << i;
    }
    const int64_t u = ulps(static_cast<float>(s->init_noise_sigma(got)), c["init_noise_sigma"].get<float>());
    t.worst_init = std::max(t.worst_init, u);
    exact &= u == 0;
    EXPECT_LE(u, 1) << name << " " << steps << " init_noise_sigma";
    t.exact += exact;
  }
  for (const auto& [name, t] : tally)
    std::cout << name << ": " << t.exact << "/" << t.cases << " schedules bit-exact; worst ulps: timesteps "
              << t.worst_t << ", sigmas " << t.worst_sigma << " (" << t.sigmas_off << " sigmas off), init_noise_sigma "
              << t.worst_init << "\n";
  EXPECT_GT(tally.size(), 20u);
}

// Runs a reference trajectory on `device`; returns the worst relative error
// (max |ours - diffusers'| / max |diffusers'| over the steps).
double run_trajectory(const json& r, const json& meta, const std::map<std::string, at::Tensor>& ref,
                      at::Device device) {
  auto s = scheduler_for(r);
  if (!s) return INFINITY;
  const int steps = r["steps"];
  auto sampler = DiscreteSampler::make(*s, steps);
  EXPECT_TRUE(sampler) << sampler.error().to_string();
  if (!sampler) return INFINITY;
  EXPECT_EQ(sampler->steps(), r["timesteps"].get<int>()) << r["key"];
  const auto dtype = r["dtype"] == "bfloat16" ? at::kBFloat16 : at::kFloat;
  const auto shape = meta["shape"].get<std::vector<int64_t>>();
  at::Generator gen = seeded_cpu_generator(meta["seed"].get<uint64_t>());
  auto noise = initial_noise(shape, at::Tensor(), gen, device, dtype, dtype);
  EXPECT_TRUE(noise);
  at::Tensor latents = *noise * sampler->init_noise_sigma();
  double worst = 0;
  for (int i = 0; i < sampler->steps(); ++i) {
    const at::Tensor x = sampler->scale_model_input(latents, i);
    const at::Tensor noise_i = at::randn(shape, seeded_cpu_generator(1000 + i), at::kFloat).to(device);
    const at::Tensor model_output = (x * 0.9 + noise_i * 0.1).to(dtype);
    latents = sampler->step(model_output, i, latents, gen);
    const std::string key = r["key"].get<std::string>() + "/" + std::to_string(i);
    const at::Tensor& want = ref.at(key);
    EXPECT_EQ(latents.scalar_type(), want.scalar_type()) << key;
    const at::Tensor ours = latents.cpu().to(at::kDouble), theirs = want.to(at::kDouble);
    const double scale = std::max(theirs.abs().max().item<double>(), 1e-30);
    worst = std::max(worst, (ours - theirs).abs().max().item<double>() / scale);
  }
  return worst;
}

TEST(SchedulerReferenceTest, TrajectoriesMatchDiffusersStepByStep) {
  const json meta = read_json(kDir / "trajectories.json");
  const auto ref = read_safetensors(kDir / "trajectories.safetensors");
  std::map<std::string, std::pair<int, double>> per_variant;  // exact runs, worst relative error
  int runs = 0;
  for (const json& r : meta["runs"]) {
    const double worst = run_trajectory(r, meta, ref, at::kCPU);
    EXPECT_LE(worst, 1e-6) << r["key"];
    const std::string key = r["key"];
    auto& v = per_variant[key.substr(0, key.find('/')) + " " + r["dtype"].get<std::string>()];
    v.first += worst == 0;
    v.second = std::max(v.second, worst);
    ++runs;
  }
  for (const auto& [variant, v] : per_variant)
    std::cout << "trajectories " << variant << ": " << v.first << " runs bit-exact, worst relative error " << v.second
              << "\n";
  EXPECT_GT(runs, 50);
}

// The device path (CPU scalars with device tensors, Euler ancestral's noise
// drawn on the CPU and moved): float32 on CUDA, within 1e-5 relative (the
// device's float kernels may fuse multiply-adds).
TEST(SchedulerReferenceTest, TrajectoriesOnCuda) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const json meta = read_json(kDir / "trajectories.json");
  const auto ref = read_safetensors(kDir / "trajectories.safetensors");
  int runs = 0;
  for (const json& r : meta["runs"]) {
    const std::string key = r["key"];
    if (r["dtype"] != "float32" || r["steps"] != 25) continue;
    const double worst = run_trajectory(r, meta, ref, at::Device(at::kCUDA, 0));
    std::cout << "cuda " << key << ": worst relative error " << worst << "\n";
    EXPECT_LE(worst, 1e-5) << key;
    ++runs;
  }
  EXPECT_GT(runs, 10);
}

}  // namespace
}  // namespace tp::nn
