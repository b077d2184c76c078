// Test harness: a registry over a SimulatedDevice, a SimulatedBackend and a
// ManualClock, recording every event.
#pragma once

#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <vector>

#include "twistedpic/registry.h"
#include "twistedpic/testing/manual_clock.h"
#include "twistedpic/testing/simulated_backend.h"
#include "twistedpic/testing/simulated_device.h"

namespace tp::testing {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

inline ModelConfig model(std::string name, uint64_t bytes, int priority = 0, bool pinned = false) {
  ModelConfig m;
  m.name = std::move(name);
  m.source = "/models/" + m.name;
  m.size_bytes = bytes;
  m.priority = priority;
  m.pinned = pinned;
  return m;
}

struct Harness {
  std::shared_ptr<SimulatedDevice> device;
  std::shared_ptr<SimulatedBackend> backend;
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  std::unique_ptr<ModelRegistry> registry;
  std::mutex mu;
  std::vector<ResidencyEvent> events;

  explicit Harness(RegistryConfig config, uint64_t device_bytes = 10 * kGiB, SimulatedBackend::Hooks hooks = {},
                   std::vector<std::shared_ptr<MemoryPolicy>> policies = {}) {
    device = std::make_shared<SimulatedDevice>(device_bytes);
    backend = std::make_shared<SimulatedBackend>(device, std::move(hooks));
    if (!config.host_budget_bytes) config.host_budget_bytes = 64 * kGiB;
    RegistryOptions options;
    options.backend = backend;
    options.monitor = device;
    options.clock = clock;
    options.background_thread = false;
    options.policies = std::move(policies);
    auto r = ModelRegistry::create(std::move(config), std::move(options));
    EXPECT_TRUE(r) << r.error().to_string();
    if (r) {
      registry = std::move(*r);
      registry->subscribe([this](const ResidencyEvent& ev) {
        std::lock_guard<std::mutex> lock(mu);
        events.push_back(ev);
      });
    }
  }

  ModelInfo info(const std::string& name) const { return registry->info(name).value(); }
  ModelState state(const std::string& name) const { return info(name).state; }

  // "name:from->to:reason" for each event so far, then clears them.
  std::vector<std::string> take_events() {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<std::string> out;
    for (const auto& e : events)
      out.push_back(e.model + ":" + std::string(tier_name(e.from)) + "->" + std::string(tier_name(e.to)) + ":" +
                    std::string(reason_name(e.reason)) + (e.failed ? ":failed" : ""));
    events.clear();
    return out;
  }

  // Bytes the registry accounts on the device equal the simulated device's.
  void expect_accounting() const {
    uint64_t sum = 0;
    for (const auto& m : registry->list()) sum += m.device_bytes;
    EXPECT_EQ(sum, device->allocated_bytes());
    EXPECT_EQ(registry->stats().device_bytes, sum);
  }
};

inline RegistryConfig config_of(std::vector<ModelConfig> models, PolicyConfig policy = {}) {
  RegistryConfig c;
  c.models = std::move(models);
  c.policy = policy;
  return c;
}

}  // namespace tp::testing
