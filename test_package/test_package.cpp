#include <cstdio>
#include <memory>

#include "twistedpic/config.h"
#include "twistedpic/registry.h"
#include "twistedpic/runtime.h"
#include "twistedpic/testing/simulated_backend.h"
#include "twistedpic/testing/simulated_device.h"

int main() {
  auto config = tp::parse_registry_config(R"({"models": {"tiny": {"model_id": "org/tiny", "size_bytes": "1GiB"}}})");
  if (!config) return 1;
  auto device = std::make_shared<tp::SimulatedDevice>(8ull << 30);
  tp::RegistryOptions options;
  options.backend = std::make_shared<tp::SimulatedBackend>(device);
  options.monitor = device;
  options.background_thread = false;
  auto registry = tp::ModelRegistry::create(*config, options);
  if (!registry || !(*registry)->acquire("tiny")) return 1;
  std::printf("twistedpic %s (C++ API) with torch %s\n", tp::runtime_info().version.c_str(),
              tp::runtime_info().torch_version.c_str());
  return 0;
}
