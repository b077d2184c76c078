// Times twistedpic's pipeline (SD3, or Flux: the folder's model_index.json
// decides) on a diffusers folder, for scripts/bench_pipeline.py and
// scripts/flux_bench.py, which time diffusers on the same folder in the same
// run and print the ratios.
//
//   sd3_bench FOLDER WIDTH HEIGHT STEPS REPEATS THREADS [GUIDANCE [MAX_SEQUENCE_LENGTH]]
//
// GUIDANCE defaults to 5.0 (SD3's classifier-free guidance; Flux's guidance
// embedding), MAX_SEQUENCE_LENGTH to 64.
// Prints one JSON object: the median seconds of one denoising step (between
// consecutive progress callbacks: the transformer on the guided batch plus
// the scheduler) and of a whole generation (encode, denoise, decode), after
// one warm-up generation that also loads the weights.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "twistedpic/pipeline.h"
#include "twistedpic/runtime.h"

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int fail(const tp::Error& e) {
  std::fprintf(stderr, "sd3_bench: %s\n", e.message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7 || argc > 9) {
    std::fprintf(stderr, "usage: sd3_bench FOLDER WIDTH HEIGHT STEPS REPEATS THREADS [GUIDANCE [MAX_SEQUENCE_LENGTH]]\n");
    return 2;
  }
  at::set_num_threads(std::atoi(argv[6]));
  tp::RegistryConfig config;
  tp::ModelConfig model;
  model.name = "bench";
  model.source = argv[1];
  model.dtype = tp::DType::kF32;
  model.pipeline_type = tp::kDetectPipelineType;
  config.models.push_back(model);
  auto expanded = tp::expand_pipeline_components(config);
  if (!expanded) return fail(expanded.error());
  auto options = tp::default_registry_options();
  if (!options) return fail(options.error());
  auto registry = tp::ModelRegistry::create(*expanded, *options);
  if (!registry) return fail(registry.error());
  auto pipeline = tp::Pipeline::create(**registry, "bench");
  if (!pipeline) return fail(pipeline.error());

  tp::GenerateRequest request;
  request.prompts = {"a red circle on a white background"};
  request.width = std::atoi(argv[2]);
  request.height = std::atoi(argv[3]);
  request.steps = std::atoi(argv[4]);
  request.guidance_scale = argc > 7 ? std::atof(argv[7]) : 5.0;
  request.max_sequence_length = argc > 8 ? std::atoi(argv[8]) : 64;
  std::vector<double> step_times, generate_times;
  double last = 0;
  request.on_step = [&](const tp::StepProgress& p) {
    if (p.step > 1) step_times.push_back(p.elapsed_s - last);
    last = p.elapsed_s;
    return true;
  };
  const int repeats = std::atoi(argv[5]);
  for (int i = 0; i <= repeats; ++i) {
    if (i == 1) step_times.clear();  // the warm-up's steps
    auto result = (*pipeline)->generate(request);
    if (!result) return fail(result.error());
    if (i > 0) generate_times.push_back(result->timings.total_s);
  }
  std::printf("{\"step_s\": %.6f, \"generate_s\": %.6f}\n", median(step_times), median(generate_times));
  return 0;
}
