// libFuzzer target for the registry config parser and what it feeds: arbitrary
// bytes go through tp::parse_registry_config. A refusal must name the origin.
// An accepted config must keep the parser's promises (it validates; every value
// is in range), and a ModelRegistry built from it over a simulated device must
// work: created, listed, each model acquired and released (failures are fine:
// size_bytes may be 0 or too large), ticked with the clock far ahead, and
// unloaded, with the books balanced at the end.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "twistedpic/config.h"
#include "twistedpic/log.h"
#include "twistedpic/registry.h"
#include "twistedpic/testing/manual_clock.h"
#include "twistedpic/testing/simulated_backend.h"
#include "twistedpic/testing/simulated_device.h"

namespace {

constexpr uint64_t kDeviceBytes = 16ull << 30;

void check(bool ok) {
  if (!ok) std::abort();
}

bool valid_unload_tier(tp::Tier t) { return t == tp::Tier::kHost || t == tp::Tier::kDisk; }

// What an accepted config promises.
void check_config(const tp::RegistryConfig& c) {
  check(static_cast<bool>(tp::validate_registry_config(c)));
  check(!c.models.empty());
  for (const auto& m : c.models) {
    check(!m.name.empty() && !m.source.empty() && !m.pipeline_type.empty());
    check(m.dtype == tp::DType::kF32 || m.dtype == tp::DType::kF16 || m.dtype == tp::DType::kBF16);
    check(c.find(m.name) == &m);  // unique names
    if (m.policy.idle_timeout_s) check(std::isfinite(*m.policy.idle_timeout_s));
    if (m.policy.idle_unload_to) check(valid_unload_tier(*m.policy.idle_unload_to));
  }
  check(std::isfinite(c.policy.idle_timeout_s));
  check(valid_unload_tier(c.policy.idle_unload_to));
  check(c.monitor_interval.count() > 0 && c.admission_timeout.count() >= 0);
}

void exercise_registry(const tp::RegistryConfig& config) {
  auto device = std::make_shared<tp::SimulatedDevice>(kDeviceBytes);
  auto backend = std::make_shared<tp::SimulatedBackend>(device);
  auto clock = std::make_shared<tp::ManualClock>();
  tp::RegistryOptions options;
  options.backend = backend;
  options.monitor = device;
  options.clock = clock;
  options.background_thread = false;
  auto registry = tp::ModelRegistry::create(config, options);
  if (!registry) {
    // A valid config may still name a device this registry lacks (its one
    // device is "simulated"): refused by name, as a user's config would be.
    check(registry.error().code == tp::ErrorCode::kInvalidArgument &&
          registry.error().message.find("no device '") != std::string::npos);
    return;
  }
  tp::ModelRegistry& r = **registry;

  check(r.list().size() == config.models.size());
  for (const auto& m : config.models) {
    auto lease = r.acquire(m.name);  // one at a time: never waits for another lease
    if (lease) check(lease->weights().on_device());
    auto plan = r.plan(m.name);
    if (plan) check(plan->needed_bytes >= plan->bytes_to_move);
  }
  for (const auto& info : r.list()) check(info.leases == 0 && (info.device_bytes > 0) == (info.state == tp::ModelState::kResident));
  clock->advance(std::chrono::hours(24 * 366));
  r.tick();
  uint64_t sum = 0;
  for (const auto& info : r.list()) sum += info.device_bytes;
  check(sum == device->allocated_bytes() && r.stats().host_bytes == backend->host_bytes());
  check(static_cast<bool>(r.unload_all(tp::Tier::kDisk)));
  check(device->allocated_bytes() == 0 && backend->host_bytes() == 0);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tp::log::set_sink([](tp::LogLevel, std::string_view, std::string_view) {}, tp::LogLevel::kOff);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = tp::parse_registry_config(text, "fuzz");  // an exception escaping is a crash
  if (!config) {
    check(config.error().code == tp::ErrorCode::kInvalidArgument);
    check(config.error().message.rfind("fuzz: ", 0) == 0);  // every message names the origin
    return 0;
  }
  check_config(*config);
  exercise_registry(*config);
  return 0;
}
