// Internal: diffusers' FlowMatchEulerDiscreteScheduler, the schedule of
// SD3 / 3.5, computed exactly as diffusers computes it (float32 where it
// uses torch, float64 where it uses numpy), so that timesteps match bit for bit.
//
// Threading: plain values and pure functions.
#pragma once

#include <string_view>
#include <vector>

#include "twistedpic/expected.h"

namespace tp::sd3 {

struct FlowMatchConfig {
  int num_train_timesteps = 1000;
  double shift = 1.0;
  bool use_dynamic_shifting = false;
  double base_shift = 0.5, max_shift = 1.15;
  int base_image_seq_len = 256, max_image_seq_len = 4096;
};

// Parses scheduler_config.json. Options that change the schedule in ways not
// implemented here (karras, exponential or beta sigmas, inverted sigmas,
// terminal shift, stochastic sampling, linear time shift) are kUnimplemented,
// as is any scheduler class but FlowMatchEulerDiscreteScheduler.
Expected<FlowMatchConfig> parse_flow_match_config(std::string_view json, std::string_view origin);

// The settings a model is meant to be sampled with, from the optional
// generation_defaults.json beside its model_index.json:
//   {"num_inference_steps": 20, "guidance_scale": 2.5}
// (diffusers' argument names; each key optional, others ignored). Without the
// file or a key: diffusers' StableDiffusion3Pipeline defaults, 28 and 7.
struct GenerationDefaults {
  int steps = 28;
  double guidance_scale = 7.0;
};

// Parses generation_defaults.json; a wrong type or a value out of range
// (steps 1..1000, a finite guidance) is kInvalidArgument naming `origin`.
Expected<GenerationDefaults> parse_generation_defaults(std::string_view json, std::string_view origin);

struct FlowMatchSchedule {
  std::vector<float> timesteps;  // steps entries, fed to the transformer
  std::vector<float> sigmas;     // steps + 1 entries, the last 0
};

// set_timesteps(steps); image_seq_len (patches) matters only with dynamic shifting.
// REQUIRES: steps >= 1.
FlowMatchSchedule flow_match_schedule(const FlowMatchConfig& config, int steps, int image_seq_len);

}  // namespace tp::sd3
