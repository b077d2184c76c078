// The memory core's lifecycle on a simulated 24 GiB device: nothing loaded at
// start, lazy load on first use, unload-after to the pinned host tier, a
// reload from the host tier, an idle timeout, and another program (say
// Ollama) growing on the device until the registry makes room for it.
//
// Usage: registry_demo [config.json]   (default: examples/configs/demo.json)
#include <cstdio>
#include <string>

#include "twistedpic/log.h"
#include "twistedpic/registry.h"
#include "twistedpic/testing/manual_clock.h"
#include "twistedpic/testing/simulated_backend.h"
#include "twistedpic/testing/simulated_device.h"

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

void show(const tp::ModelRegistry& r, const tp::SimulatedDevice& device, const char* moment) {
  auto info = const_cast<tp::SimulatedDevice&>(device).query().value();
  std::printf("\n== %s: device %.1f / %.1f GiB free (ours %.1f, other programs %.1f)\n", moment,
              info.free_bytes / kGiB, info.total_bytes / kGiB, info.process_bytes / kGiB, info.other_bytes / kGiB);
  for (const auto& m : r.list())
    std::printf("   %-12s %-10s tier=%-6s device=%5.1f GiB host=%5.1f GiB leases=%u loads=%llu%s\n", m.name.c_str(),
                std::string(tp::state_name(m.state)).c_str(), std::string(tp::tier_name(m.tier)).c_str(),
                m.device_bytes / kGiB, m.host_bytes / kGiB, m.leases, static_cast<unsigned long long>(m.load_count),
                m.expires_at ? "  (idle timer running)" : "");
}

}  // namespace

int main(int argc, char** argv) {
  std::string path = argc > 1 ? argv[1] : "examples/configs/demo.json";
  auto config = tp::load_registry_config(path);
  if (!config) {
    std::fprintf(stderr, "%s\n", config.error().to_string().c_str());
    return 1;
  }
  auto device = std::make_shared<tp::SimulatedDevice>(24ull << 30);
  auto clock = std::make_shared<tp::ManualClock>();
  tp::RegistryOptions options;
  options.backend = std::make_shared<tp::SimulatedBackend>(device);
  options.monitor = device;
  options.clock = clock;
  options.background_thread = false;  // the demo drives time itself
  auto registry = tp::ModelRegistry::create(*config, options);
  if (!registry) {
    std::fprintf(stderr, "%s\n", registry.error().to_string().c_str());
    return 1;
  }
  tp::ModelRegistry& r = **registry;
  r.subscribe([](const tp::ResidencyEvent& e) {
    std::printf("   event: %-12s %s -> %s (%s) %.1f GiB, returned to the driver: %.1f GiB\n", e.model.c_str(),
                std::string(tp::tier_name(e.from)).c_str(), std::string(tp::tier_name(e.to)).c_str(),
                std::string(tp::reason_name(e.reason)).c_str(), e.bytes / kGiB, e.bytes_returned / kGiB);
  });

  std::printf("twistedpic memory core demo (simulated device; weights are byte counts until the pipeline lands)\n");
  show(r, *device, "start: nothing loaded (lazy)");
  for (int i = 1; i <= 2; ++i) {
    auto lease = r.acquire("sd35_large");
    if (!lease) return std::fprintf(stderr, "%s\n", lease.error().to_string().c_str()), 1;
    show(r, *device, ("generation " + std::to_string(i) + " with sd35_large (leased)").c_str());
  }
  show(r, *device, "after generation: unload-after moved it to the pinned host tier");
  { auto lease = r.acquire("sd35_medium").value(); }
  clock->advance(std::chrono::seconds(301));
  r.tick();
  show(r, *device, "sd35_medium used, then idle for 301 s (idle timeout 300 s)");
  { auto lease = r.acquire("sd35_large").value(); }
  { auto lease = r.acquire("sd35_medium").value(); }
  device->set_external_bytes(18ull << 30);
  r.tick();
  show(r, *device, "another program took 18 GiB: pressure evicts to keep 2 GiB free");
  auto plan = r.plan("sd35_large").value();
  std::printf("\nplan(sd35_large): %s\n", plan.explanation.c_str());
  auto s = r.stats();
  std::printf("stats: hits=%llu misses=%llu loads=%llu reloads=%llu evictions: unload-after=%llu ttl=%llu pressure=%llu\n",
              (unsigned long long)s.hits, (unsigned long long)s.misses, (unsigned long long)s.loads,
              (unsigned long long)s.reloads, (unsigned long long)s.evictions(tp::Reason::kUnloadAfter),
              (unsigned long long)s.evictions(tp::Reason::kTtl), (unsigned long long)s.evictions(tp::Reason::kPressure));
  return 0;
}
