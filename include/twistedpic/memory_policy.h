// twistedpic: memory policies, the plug-ins that decide what stays on the
// device.
//
// The registry keeps a chain of policies: the host's own first, then the
// built-ins the config enables. At each decision point it asks the chain:
//   preload()        models to load at start (eager), in order;
//   on_idle()        a model's last lease ended: unload it now? (unload-after);
//   expires_at()     when an idle model should leave (idle-timeout);
//   enforce_limits() evictions needed so a model can come in (LRU);
//   select_victims() which models to evict to free N bytes (admission and
//                    pressure); the first policy with an answer wins, and the
//                    registry falls back to rank_victims().
// The registry enforces the invariants whatever a policy answers: a leased
// model is never evicted, and a pinned one is never evicted by a policy.
//
// Threading: the registry calls a policy with its own lock held, from any of
// its threads, one call at a time. A policy must not call back into the
// registry. Views are valid only during the call.
//
// Exceptions: a policy should not throw, but one that does cannot wedge the
// registry. An exception from a decision on a request's path (admission in
// acquire()/preload(), plan(), preload() during create()) fails that request
// with kInternal "policy '<name>' threw: <what>" and leaves the model where
// it was; the next request asks the policy again. One from a call with no
// caller to tell (on_idle at a release, tick() and the background thread,
// on_access, expires_at) is logged at error level and that answer ignored.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "twistedpic/clock.h"
#include "twistedpic/config.h"
#include "twistedpic/device_monitor.h"
#include "twistedpic/residency.h"

namespace tp {
inline namespace v0 {

struct ModelView {
  const ModelConfig* config = nullptr;
  std::string_view name;
  ModelState state = ModelState::kUnloaded;
  Tier tier = Tier::kDisk;
  uint64_t device_bytes = 0;  // held on the device now
  uint64_t host_bytes = 0;    // pinned host copy held now
  uint64_t weight_bytes = 0;  // the weights' device size (0 until the backend opened the model)
  uint32_t leases = 0;
  TimePoint last_use{};       // last acquire or release
  uint64_t load_count = 0;
  Duration last_load_time{};
  // The effective per-model policy (config override or registry default).
  Tier unload_after = Tier::kDevice;
  double idle_timeout_s = -1;
  Tier idle_unload_to = Tier::kHost;

  // Resident, unleased and not pinned: a policy may evict it.
  bool evictable() const { return state == ModelState::kResident && leases == 0 && !config->pinned; }
};

// A registry with several devices decides per device: admission, LRU limits,
// pressure and on_idle() see the models of one device (placed there, or
// loading there) and that device's memory; preload() sees every model and the
// first device. The host tier (host_bytes, host_budget_bytes) is shared.
struct RegistryView {
  std::vector<ModelView> models;
  DeviceMemoryInfo device;
  std::string device_name;         // RegistryDevice::name of `device`
  uint64_t device_bytes = 0;       // held by the registry (sum over residents)
  uint64_t host_bytes = 0;         // pinned host copies held
  uint64_t host_budget_bytes = 0;
  TimePoint now{};

  const ModelView* find(std::string_view name) const;
};

struct Eviction {
  std::string model;
  Tier to = Tier::kHost;  // kHost keeps a pinned copy; kDisk drops everything
  Reason reason = Reason::kPressure;
};

class MemoryPolicy {
 public:
  virtual ~MemoryPolicy() = default;
  virtual std::string_view name() const = 0;

  virtual std::vector<std::string> preload(const RegistryView& view);
  virtual std::optional<Eviction> on_idle(const RegistryView& view, const ModelView& model);
  virtual std::optional<TimePoint> expires_at(const ModelView& model);
  // `incoming` is the model about to load (not yet counted in the view's
  // device bytes), or nullptr for a periodic check.
  virtual std::vector<Eviction> enforce_limits(const RegistryView& view, const ModelView* incoming);
  // Victims freeing at least `need_bytes`, cheapest first. Empty: no opinion.
  virtual std::vector<Eviction> select_victims(const RegistryView& view, uint64_t need_bytes, Reason reason);
  virtual void on_access(const ModelView& model);
};

// The default victim order: lower priority first, then cheapest to reload
// (a model whose copy fits in the host tier comes back at PCIe speed), then
// least recently used. Takes victims until `need_bytes` are covered, then
// drops any that are not needed, so that only as much as needed is evicted.
// Returns every evictable model in order when they cannot cover the need.
TP_EXPORT std::vector<Eviction> rank_victims(const RegistryView& view, uint64_t need_bytes, Reason reason);

// The built-in policies the config enables: eager, unload-after, idle-timeout
// and LRU. (Pressure is the registry's headroom check plus rank_victims.)
TP_EXPORT std::vector<std::shared_ptr<MemoryPolicy>> make_builtin_policies(const RegistryConfig& config);

}  // namespace v0
}  // namespace tp
