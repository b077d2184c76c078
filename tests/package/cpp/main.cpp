// Links twistedpic::twistedpic from an install prefix: the LibTorch runtime
// info and a ModelRegistry on the simulated device.
#include <cstdio>
#include <cstring>
#include <memory>

#include "twistedpic/config.h"
#include "twistedpic/registry.h"
#include "twistedpic/runtime.h"
#include "twistedpic/testing/simulated_backend.h"
#include "twistedpic/testing/simulated_device.h"
#include "twistedpic/version.h"

int main() {
  tp::RuntimeInfo info = tp::runtime_info();
  if (info.version != TP_VERSION_STRING) {
    std::fprintf(stderr, "header %s, library %s\n", TP_VERSION_STRING, info.version.c_str());
    return 1;
  }
  auto config = tp::parse_registry_config(
      R"({"preset": "max_gpu_availability",
          "models": {"tiny": {"model_id": "org/tiny", "size_bytes": "1GiB"}}})");
  if (!config) return std::fprintf(stderr, "%s\n", config.error().to_string().c_str()), 1;
  auto device = std::make_shared<tp::SimulatedDevice>(8ull << 30);
  tp::RegistryOptions options;
  options.backend = std::make_shared<tp::SimulatedBackend>(device);
  options.monitor = device;
  options.background_thread = false;
  auto registry = tp::ModelRegistry::create(*config, options);
  if (!registry) return std::fprintf(stderr, "%s\n", registry.error().to_string().c_str()), 1;
  {
    auto lease = (*registry)->acquire("tiny");
    if (!lease) return std::fprintf(stderr, "%s\n", lease.error().to_string().c_str()), 1;
  }
  auto stats = (*registry)->stats();
  if (stats.loads != 1) return std::fprintf(stderr, "expected 1 load, got %llu\n", (unsigned long long)stats.loads), 1;
  std::printf("cpp consumer: twistedpic %s, torch %s, 1 model loaded on the simulated device\n",
              info.version.c_str(), info.torch_version.c_str());
  return 0;
}
