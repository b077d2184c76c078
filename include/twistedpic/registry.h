// twistedpic: ModelRegistry, the memory core.
//
// The registry holds every model the config declares, loaded or not, and
// hands out leases. A lease keeps its model on the device; when no lease is
// live the memory policies decide whether the model stays, moves to the
// pinned host tier (from which it comes back at PCIe speed) or leaves for
// disk. Loads are lazy by default and single-flight: concurrent acquires of
// one model perform one load, and loading one model never blocks acquiring
// another resident one. Before a load the registry admits it: it estimates
// the bytes (weights, the larger of the model's workspace reserve and the
// acquire's workspace_bytes, and the weight backend's load scratch), evicts
// per policy until the model fits, waits up to the admission timeout for
// leases to end, and otherwise fails with kResourceExhausted stating needed,
// free and evictable bytes. It never lets a load run into an out-of-memory
// crash. A registry may span several devices (RegistryOptions::devices): each
// model lives on the one its config names, or on the one "auto" picks, and
// admission, budgets, headroom, LRU limits and pressure work per device.
//
//   TP_ASSIGN_OR_RETURN(auto registry, tp::ModelRegistry::create(config, options));
//   {
//     TP_ASSIGN_OR_RETURN(tp::ModelLease lease, registry->acquire("sd3_large"));
//     run(lease.weights());
//   }  // lease released: unload-after, LRU, idle-timeout... apply now
//
// Threading: ModelRegistry is thread-safe (internally locked); every method
// may be called from any thread. A ModelLease is a move-only handle owned by
// one thread at a time; the weights it exposes are immutable while it lives
// and may be read from any thread. Destroying the registry while leases are
// live is safe: the registry stops taking requests and frees its models when
// the last lease is released. Event callbacks run on the thread that made
// the transition, possibly concurrently, without the registry's lock held;
// they must not throw and must not destroy the registry. Once the registry's
// destructor returns, no callback runs again.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "twistedpic/clock.h"
#include "twistedpic/config.h"
#include "twistedpic/device_monitor.h"
#include "twistedpic/expected.h"
#include "twistedpic/memory_policy.h"
#include "twistedpic/model_weights.h"
#include "twistedpic/residency.h"

namespace tp::detail {
struct RegistryState;  // src/registry/registry_state.h
struct ModelSlot;
}  // namespace tp::detail

namespace tp {
inline namespace v0 {

// One residency transition.
struct ResidencyEvent {
  std::string model;
  std::string device;           // the device it moved on or off (RegistryDevice::name)
  Tier from = Tier::kDisk;
  Tier to = Tier::kDisk;
  Reason reason = Reason::kLazy;
  uint64_t bytes = 0;           // bytes moved (device bytes of the model)
  double ms = 0;                // how long the transition took
  // For transitions off the device: the increase of the device's free memory
  // measured around the unload, i.e. what actually went back to the driver.
  int64_t bytes_returned = 0;
  bool failed = false;          // a load that failed (bytes = 0)
  std::string error;            // its message
  // An eviction for pressure (Reason::kPressure): who held the device when
  // it was decided. ours: this process (the driver's per-process count, via
  // NVML; the registry's own bytes where that is unknown); others: every
  // other process. 0 for other events.
  uint64_t ours_bytes = 0;
  uint64_t others_bytes = 0;
  // For the last transition off the device before a cache clean-up
  // (RegistryOptions::clean_caches, run after unloads when
  // config.policy.clean_caches is set): the device's free-memory increase
  // the clean-up measured, i.e. the allocator's cached bytes handed back.
  int64_t cache_bytes_returned = 0;
};

using EventCallback = std::function<void(const ResidencyEvent&)>;

// A row of list().
struct ModelInfo {
  std::string name;
  std::string source;
  std::string pipeline_type;
  DType dtype = DType::kBF16;
  ModelState state = ModelState::kUnloaded;
  Tier tier = Tier::kDisk;
  uint64_t device_bytes = 0;
  uint64_t host_bytes = 0;
  uint32_t leases = 0;
  bool pinned = false;
  int priority = 0;
  std::optional<TimePoint> last_use;    // never used: nullopt
  std::optional<TimePoint> expires_at;  // when an idle timeout will unload it
  uint64_t load_count = 0;
  std::chrono::duration<double, std::milli> last_load_time{0};
  std::string last_error;               // of a failed load
  // Its load's place in the admission queue (1: next to be admitted) while
  // it waits for device memory; 0: not waiting.
  uint32_t admission_position = 0;
  // The device it is on, or that its next load goes to ("cuda:1", "cpu");
  // "auto" for a model configured "auto" that no load has placed yet.
  std::string device;
};

// One device of the registry, as stats() sees it (RegistryStats::devices).
struct DeviceStats {
  std::string name;               // "cuda:0", "cpu", "simulated:1"
  uint64_t total_bytes = 0;       // as its monitor reports it (0: unknown)
  uint64_t free_bytes = 0;
  uint64_t process_bytes = 0;        // this process's, per the driver (NVML)
  uint64_t other_process_bytes = 0;  // everyone else's
  uint64_t headroom_bytes = 0;    // the policy's headroom kept free for others
  uint64_t budget_bytes = 0;      // the registry's budget on it; 0: as much as is free
  uint64_t held_bytes = 0;        // model weights the registry holds on it now
  uint64_t peak_bytes = 0;        // the most it ever held
  uint64_t reserved_bytes = 0;    // admitted loads in flight (weights + workspace)
  uint64_t scratch_bytes = 0;     // the weight engine's scratch pool held on it (WeightBackend::scratch_bytes_held)
  uint64_t admission_queue = 0;   // loads waiting for its memory
  uint32_t resident_models = 0;
};

// Load times in milliseconds, in fixed buckets.
struct Histogram {
  static constexpr std::array<double, 14> kBoundsMs{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000};
  std::array<uint64_t, kBoundsMs.size() + 1> buckets{};  // last: above the largest bound
  uint64_t count = 0;
  double sum_ms = 0;
  double max_ms = 0;

  void record(double ms);
  // An upper bound of the q-quantile (0..1) from the buckets; 0 when empty.
  TP_EXPORT double quantile(double q) const;
};

struct RegistryStats {
  uint64_t hits = 0;            // acquires that found the model resident
  uint64_t misses = 0;          // acquires that loaded it or waited for a load
  uint64_t loads = 0;           // successful loads from disk
  uint64_t reloads = 0;         // successful loads from the host tier
  uint64_t load_failures = 0;
  uint64_t admission_waits = 0;     // admissions that waited for leases to end
  uint64_t admission_failures = 0;  // kResourceExhausted returned
  uint64_t admission_cancels = 0;   // admission waits ended by AcquireOptions::cancel
  uint64_t admission_queue = 0;        // loads waiting for admission now
  uint64_t admission_queue_bytes = 0;  // the device bytes they need (weights + workspace)
  std::array<uint64_t, 7> evictions_by_reason{};  // indexed by Reason
  uint64_t bytes_to_device = 0;     // host -> device and disk -> device
  uint64_t bytes_to_host = 0;       // device -> host copies made
  uint64_t bytes_returned = 0;      // measured device bytes returned by unloads
  uint64_t cache_releases = 0;        // runs of RegistryOptions::clean_caches
  uint64_t cache_bytes_returned = 0;  // measured device bytes they handed back
  uint64_t device_bytes = 0;        // held now
  uint64_t peak_device_bytes = 0;
  uint64_t host_bytes = 0;          // held now
  // The device as its monitor reports it when stats() is taken (0: unknown):
  uint64_t device_total_bytes = 0;
  uint64_t device_free_bytes = 0;
  uint64_t process_bytes = 0;        // this process's, per the driver (NVML)
  uint64_t other_process_bytes = 0;  // everyone else's
  uint64_t headroom_bytes = 0;       // the policy's headroom kept free for others on this device
  // Per device, in RegistryOptions::devices order. The device_* and
  // *process_bytes fields above are the sums over them.
  std::vector<DeviceStats> devices;
  Histogram load_ms;                // from disk
  Histogram reload_ms;              // from the host tier

  uint64_t evictions(Reason r) const { return evictions_by_reason[static_cast<size_t>(r)]; }
};

// What a load would do, without doing it.
struct LoadPlan {
  std::string model;
  std::string device;           // where the load would go
  bool resident = false;        // nothing to do
  Tier from = Tier::kDisk;
  uint64_t bytes_to_move = 0;   // the weights
  uint64_t needed_bytes = 0;    // weights + workspace
  uint64_t free_bytes = 0;      // usable now (free minus headroom, within the budget)
  std::vector<Eviction> evictions;
  uint64_t bytes_evicted = 0;
  bool fits = false;            // true when the evictions make room
  std::string explanation;      // one line, for people
};

struct UnloadReport {
  Tier from = Tier::kDevice;
  Tier to = Tier::kDisk;
  uint64_t bytes = 0;
  int64_t bytes_returned = 0;   // measured device free-memory delta
};

struct AcquireOptions {
  // Set from another thread to cancel a load this acquire started or waits
  // for, its wait in the admission queue included (seen within ~10 ms).
  const std::atomic<bool>* cancel = nullptr;
  // Device bytes this use needs beside the weights: the pipeline's estimate
  // of the request's peak activations on this network. Admission reserves
  // the weights plus the larger of this and the model's configured
  // workspace_bytes; for a model already resident it makes sure this much is
  // free on the model's device (emptying the cache, then evicting unleased
  // models, as for a load) before handing out the lease. Default: 0.
  uint64_t workspace_bytes = 0;
};

class ModelRegistry;

// A lease on a resident model. While it lives the model stays on the device.
// Move-only; release() or destruction ends it.
class TP_EXPORT ModelLease {
 public:
  ModelLease() = default;
  ModelLease(ModelLease&& other) noexcept;
  ModelLease& operator=(ModelLease&& other) noexcept;
  ModelLease(const ModelLease&) = delete;
  ModelLease& operator=(const ModelLease&) = delete;
  ~ModelLease();

  explicit operator bool() const { return slot_ != nullptr; }
  const std::string& name() const;
  // REQUIRES: *this is a live lease.
  ModelWeights& weights() const;
  void release();

 private:
  friend class ModelRegistry;
  ModelLease(std::shared_ptr<detail::RegistryState> state, detail::ModelSlot* slot);

  std::shared_ptr<detail::RegistryState> state_;
  detail::ModelSlot* slot_ = nullptr;
};

// One device a registry places models on: its weights, its memory truth and
// its cache clean-up (as RegistryOptions' single-device fields).
struct RegistryDevice {
  std::string name;                        // "cuda:1"; what ModelConfig::device names
  std::shared_ptr<WeightBackend> backend;  // required
  std::shared_ptr<DeviceMonitor> monitor;  // required
  std::function<void()> clean_caches;      // default: none
};

struct RegistryOptions {
  // Several devices: each has its own budget (RegistryConfig::devices),
  // monitor, headroom, admission queue, LRU limits and pressure; a model goes
  // to the device its config names (ModelConfig::device), or "auto" picks.
  // Names must be unique and non-empty. Empty: the one device made of backend,
  // monitor and clean_caches below, named by the monitor. With `devices`,
  // backend and monitor may only repeat devices[0]'s (for code that reads
  // them back), and clean_caches must be left unset (give it per device).
  std::vector<RegistryDevice> devices;
  std::shared_ptr<WeightBackend> backend;  // required unless `devices` is given
  std::shared_ptr<DeviceMonitor> monitor;  // required unless `devices` is given
  std::shared_ptr<Clock> clock;            // default: SteadyClock
  // The host's own policies, consulted before the built-ins.
  std::vector<std::shared_ptr<MemoryPolicy>> policies;
  // Run idle timeouts and pressure checks on a background thread every
  // config.monitor_interval. Off: the host (or a test) calls tick().
  bool background_thread = true;
  // Hands the device's cached, unused allocator blocks back to the driver
  // (the torch layer empties its caching allocator here; default_registry_options
  // installs it). Run with the registry's lock released: after unloads and
  // by release_caches() when config.policy.clean_caches is set, and by
  // admission, whatever the policy, before it evicts a model to make room.
  // The registry measures what came back (the device's free-memory increase).
  // Must not call into the registry. Default: none.
  std::function<void()> clean_caches;
  // Progress of weight transfers (loads, reloads, offloads to the host): the
  // model, the tiers, bytes done and total. Called on the transferring thread
  // without the registry lock, possibly from several threads at once; must not
  // call into the registry. Default: none.
  std::function<void(const std::string& model, Tier from, Tier to, uint64_t done, uint64_t total)> on_transfer;
};

class TP_EXPORT ModelRegistry {
 public:
  // Validates the config, builds the policy chain, and loads the eager
  // models (failures are logged and left as kFailed, not fatal).
  static Expected<std::unique_ptr<ModelRegistry>> create(RegistryConfig config, RegistryOptions options);
  ~ModelRegistry();
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;

  std::vector<ModelInfo> list() const;
  Expected<ModelInfo> info(std::string_view name) const;

  // A lease on `name`, loading or reloading it first when needed.
  // kNotFound for an unknown name; kResourceExhausted when it cannot fit;
  // the backend's error when the load fails; kCancelled when cancelled.
  Expected<ModelLease> acquire(std::string_view name, const AcquireOptions& options = {});
  // Loads `name` without taking a lease (reason: explicit).
  Status preload(std::string_view name);
  // Moves `name` off the device to `to` (kHost keeps a pinned copy, kDisk
  // drops all). Unloading to disk a model already on the host drops its
  // copy. kFailedPrecondition while it is leased.
  Expected<UnloadReport> unload(std::string_view name, Tier to);
  // Unloads every unleased model; reports the leased ones as kFailedPrecondition.
  Status unload_all(Tier to);

  // A dry run of acquire(name)'s admission.
  Expected<LoadPlan> plan(std::string_view name) const;

  // Hands the allocator's cached blocks back to the driver
  // (RegistryOptions::clean_caches) when config.policy.clean_caches is set
  // (max_gpu_availability, balanced) or `force`; returns the measured bytes
  // that came back (0 without a hook, or when the policy keeps the cache).
  // The pipelines call it after each generation.
  uint64_t release_caches(bool force = false);

  // Applies idle timeouts, the pressure headroom and LRU limits now. Returns
  // the next time something expires, if any.
  std::optional<TimePoint> tick();

  RegistryStats stats() const;
  const RegistryConfig& config() const;

  // Returns an id for unsubscribe().
  int subscribe(EventCallback callback);
  // After it returns, the callback is never called again: it waits for a
  // delivery in flight on another thread (not for one on the calling thread,
  // so a callback may unsubscribe itself). kNotFound for an unknown id.
  Status unsubscribe(int id);

 private:
  explicit ModelRegistry(std::shared_ptr<detail::RegistryState> state);
  std::shared_ptr<detail::RegistryState> state_;
};

}  // namespace v0
}  // namespace tp
