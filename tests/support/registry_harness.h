// Test harness: a registry over a SimulatedDevice, a SimulatedBackend and a
// ManualClock, recording every event (Harness); or over several of them
// (MultiHarness).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "twistedpic/registry.h"
#include "twistedpic/testing/manual_clock.h"
#include "twistedpic/testing/simulated_backend.h"
#include "twistedpic/testing/simulated_device.h"

namespace tp::testing {

// Polls `done` for up to 10 s of real time: a bounded wait for another
// thread's progress, not a timing assertion.
inline bool eventually(const std::function<bool()>& done) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

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

// What both harnesses keep: the registry under test, its ManualClock, and
// every event it published.
struct RecordingRegistry {
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  std::unique_ptr<ModelRegistry> registry;
  std::mutex mu;
  std::vector<ResidencyEvent> events;

  ModelInfo info(const std::string& name) const { return registry->info(name).value(); }
  ModelState state(const std::string& name) const { return info(name).state; }

 protected:
  // Keeps the registry `r` made (a test failure if it failed) and records its events.
  void adopt(Expected<std::unique_ptr<ModelRegistry>> r) {
    EXPECT_TRUE(r) << r.error().to_string();
    if (!r) return;
    registry = std::move(*r);
    registry->subscribe([this](const ResidencyEvent& ev) {
      std::lock_guard<std::mutex> lock(mu);
      events.push_back(ev);
    });
  }

  // "name[@device]:from->to:reason" for each event so far, then clears them.
  std::vector<std::string> take_events(bool with_device) {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<std::string> out;
    for (const auto& e : events)
      out.push_back(e.model + (with_device ? "@" + e.device : "") + ":" + std::string(tier_name(e.from)) + "->" +
                    std::string(tier_name(e.to)) + ":" + std::string(reason_name(e.reason)) +
                    (e.failed ? ":failed" : ""));
    events.clear();
    return out;
  }
};

struct Harness : RecordingRegistry {
  std::shared_ptr<SimulatedDevice> device;
  std::shared_ptr<SimulatedBackend> backend;

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
    adopt(ModelRegistry::create(std::move(config), std::move(options)));
  }

  // "name:from->to:reason" for each event so far, then clears them.
  std::vector<std::string> take_events() { return RecordingRegistry::take_events(false); }

  // Bytes the registry accounts on the device equal the simulated device's.
  void expect_accounting() const {
    uint64_t sum = 0;
    for (const auto& m : registry->list()) sum += m.device_bytes;
    EXPECT_EQ(sum, device->allocated_bytes());
    EXPECT_EQ(registry->stats().device_bytes, sum);
  }
};

// A registry over several SimulatedDevices ("sim:0", "sim:1", ... of the
// given sizes), each with its own SimulatedBackend and cache clean-up (which
// empties that device's simulated cache and counts its runs), one ManualClock,
// recording every event.
struct MultiHarness : RecordingRegistry {
  std::vector<std::shared_ptr<SimulatedDevice>> devices;
  std::vector<std::shared_ptr<SimulatedBackend>> backends;
  std::vector<std::shared_ptr<std::atomic<int>>> cleanups;

  static Expected<std::unique_ptr<ModelRegistry>> create(RegistryConfig config, MultiHarness& h,
                                                         const std::vector<uint64_t>& sizes) {
    RegistryOptions options;
    for (size_t i = 0; i < sizes.size(); ++i) {
      auto device = std::make_shared<SimulatedDevice>(sizes[i], "sim:" + std::to_string(i));
      auto backend = std::make_shared<SimulatedBackend>(device);
      auto runs = std::make_shared<std::atomic<int>>(0);
      h.devices.push_back(device);
      h.backends.push_back(backend);
      h.cleanups.push_back(runs);
      options.devices.push_back({device->name(), backend, device, [device, runs] {
                                   ++*runs;
                                   device->empty_cache();
                                 }});
    }
    if (!config.host_budget_bytes) config.host_budget_bytes = 64 * kGiB;
    options.clock = h.clock;
    options.background_thread = false;
    return ModelRegistry::create(std::move(config), std::move(options));
  }

  MultiHarness(RegistryConfig config, const std::vector<uint64_t>& sizes) {
    adopt(create(std::move(config), *this, sizes));
  }

  // "name@device:from->to:reason" for each event so far, then clears them.
  std::vector<std::string> take_events() { return RecordingRegistry::take_events(true); }

  // Per device, the bytes the registry accounts there equal the simulated
  // device's, and the stats' per-device rows add up to their totals.
  void expect_accounting() const {
    const RegistryStats st = registry->stats();
    ASSERT_EQ(st.devices.size(), devices.size());
    uint64_t held = 0, free = 0, total = 0;
    for (size_t i = 0; i < devices.size(); ++i) {
      uint64_t sum = 0;
      for (const auto& m : registry->list())
        if (m.device == devices[i]->name()) sum += m.device_bytes;
      EXPECT_EQ(sum, devices[i]->allocated_bytes()) << devices[i]->name();
      EXPECT_EQ(st.devices[i].name, devices[i]->name());
      EXPECT_EQ(st.devices[i].held_bytes, sum) << devices[i]->name();
      held += st.devices[i].held_bytes;
      free += st.devices[i].free_bytes;
      total += st.devices[i].total_bytes;
    }
    EXPECT_EQ(st.device_bytes, held);
    EXPECT_EQ(st.device_free_bytes, free);
    EXPECT_EQ(st.device_total_bytes, total);
  }
};

inline ModelConfig model_on(std::string name, uint64_t bytes, std::string device) {
  ModelConfig m = model(std::move(name), bytes);
  m.device = std::move(device);
  return m;
}

inline RegistryConfig config_of(std::vector<ModelConfig> models, PolicyConfig policy = {}) {
  RegistryConfig c;
  c.models = std::move(models);
  c.policy = policy;
  return c;
}

}  // namespace tp::testing
