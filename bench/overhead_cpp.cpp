// The C++ side of scripts/bench_overhead.py: what bench_overhead.c does
// through tp.h, done through the C++ API, so the three sides (C++, C, Python)
// are timed the same way. One registry (from the config file, pipelines
// expanded, the default device) and pipeline, then COUNT generations (seed
// SEED + i), each timed around Pipeline::generate alone. One JSON line per call:
//   {"wall_s": <steady_clock around the call>, "total_s": <GenerateResult timings.total_s>}
//
//   overhead_cpp CONFIG_JSON_FILE PIPELINE PROMPT SEED COUNT
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "twistedpic/config.h"
#include "twistedpic/pipeline.h"
#include "twistedpic/registry.h"
#include "twistedpic/runtime.h"

namespace {

int fail(const tp::Error& e) {
  std::fprintf(stderr, "overhead_cpp: %s\n", e.message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s CONFIG_JSON_FILE PIPELINE PROMPT SEED COUNT\n", argv[0]);
    return 2;
  }
  auto config = tp::load_registry_config(argv[1]);
  if (!config) return fail(config.error());
  auto expanded = tp::expand_pipeline_components(std::move(*config));
  if (!expanded) return fail(expanded.error());
  auto options = tp::default_registry_options();
  if (!options) return fail(options.error());
  auto registry = tp::ModelRegistry::create(std::move(*expanded), std::move(*options));
  if (!registry) return fail(registry.error());
  auto pipeline = tp::Pipeline::create(**registry, argv[2]);
  if (!pipeline) return fail(pipeline.error());
  const int count = std::atoi(argv[5]);
  for (int i = 0; i < count; ++i) {
    tp::GenerateRequest request;
    request.prompts = {argv[3]};
    request.seed = std::strtoull(argv[4], nullptr, 10) + static_cast<unsigned>(i);
    const auto t0 = std::chrono::steady_clock::now();
    auto result = (*pipeline)->generate(request);
    const auto t1 = std::chrono::steady_clock::now();
    if (!result) return fail(result.error());
    std::printf("{\"wall_s\": %.6f, \"total_s\": %.6f}\n", std::chrono::duration<double>(t1 - t0).count(),
                result->timings.total_s);
    std::fflush(stdout);
  }
  return 0;
}
