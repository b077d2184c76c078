// Private (registry): the state a ModelRegistry shares with its leases, and
// the books of each model (ModelSlot).
//
// RegistryState is what ModelRegistry and every ModelLease hold a shared_ptr
// to; it outlives the registry while leases live. Its methods are defined by
// job, one file each:
//   registry.cpp          lookups, leases (acquire/release), tick, the
//                         background thread, flush() of events and clean-up;
//   policy_chain.cpp      snapshots of the books for policies (RegistryView),
//                         the policy chain's answers, and admit(), which feeds
//                         admission (admission.h, pure) from the books;
//   tier_transitions.cpp  weights moving between tiers: load to the device,
//                         evict to host or disk, drop a host copy, make room
//                         in the host tier;
// events go out through the EventBus (event_bus.h) and counters through
// stats.h.
//
// Devices: a registry has one or more devices (DeviceBooks: the backend,
// monitor and cache clean-up of RegistryOptions::devices, its budget, and its
// own admission queue and in-flight reservations). Each model's slot names
// its device by index; a model configured "auto" has none (-1) until a load
// from disk places it, and loses it again when it drops to disk. Admission,
// LRU limits and pressure work per device, on a RegistryView of that device's
// models (view(d)).
//
// Locking: one mutex (mu) guards every ModelSlot's and DeviceBooks' bookkeeping, the stats and
// the pending events. Clang checks it (src/util/thread_annotations.h; the
// ctest core.thread_safety_analysis): RegistryState's own fields are
// GUARDED_BY mu and every method that reads the books REQUIRES mu. (A
// ModelSlot's fields cannot name their RegistryState's mutex; the REQUIRES on
// the methods that touch them stand in.) Methods that move weights release
// and retake mu themselves (mu.unlock() / mu.lock()) and return with it held.
// Weights move with the mutex released: the slot's state (kLoading or
// kUnloading) gives the moving thread exclusive use of its ModelWeights, and
// other threads wait on cv for the state to settle. Events and the cache
// clean-up run with the mutex released (flush()). Lock order: registry ->
// device monitor -> simulated backend state; the event bus's mutex and mu
// are never held together (docs/threading.md).
//
// Time: every time and deadline comes from options.clock (deadline.h).
//
// Host code never unwinds through the registry (host_call.h): an exception
// from a decision on a request's path (admission, preload, plan) fails that
// request with kInternal "policy '<name>' threw: <what>" after rolling the
// transition back; one on a path with no caller to tell (a release, tick(),
// the background thread, a notification) is logged at error level and that
// policy's answer is ignored.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "registry/admission.h"
#include "registry/event_bus.h"
#include "twistedpic/registry.h"
#include "util/thread_annotations.h"

namespace tp::detail {

// The books of one device of the registry. `name` to `budget_bytes` are set
// by create(), then read-only; the rest is guarded by the owning
// RegistryState's mu.
struct DeviceBooks {
  std::string name;
  std::shared_ptr<WeightBackend> backend;
  std::shared_ptr<DeviceMonitor> monitor;
  std::function<void()> clean_caches;
  uint64_t budget_bytes = 0;  // 0: none

  uint64_t reserved_bytes = 0;  // admitted loads in flight (weights + workspace + load scratch)
  // Loads (and workspace requests of resident models) waiting for this
  // device's memory, first come first served: only the front one may be
  // admitted (wait_for_admission). A load is single-flight, so a slot appears
  // once for a load; concurrent workspace requests of one resident model may
  // add it more than once.
  std::deque<const ModelSlot*> admission_queue;
  uint64_t peak_bytes = 0;
  bool clean_pending = false;  // models left it since its cache was last handed back
};

// One configured model: its effective policy and its books. The fields are
// guarded by the owning RegistryState's mu, except `weights`, which the
// thread that put the slot in transition uses without it.
struct ModelSlot {
  ModelConfig config;
  Tier unload_after = Tier::kDevice;
  double idle_timeout_s = -1;
  Tier idle_unload_to = Tier::kHost;
  bool auto_device = false;  // configured "auto": placed at each load from disk

  // Its device (an index into RegistryState::devices); -1: an "auto" model
  // not placed (on disk).
  int device = -1;
  // Set by the thread that loads it: opened by devices[weights_device]'s
  // backend. An "auto" model placed on another device is opened again there.
  std::unique_ptr<ModelWeights> weights;
  int weights_device = -1;
  ModelState state = ModelState::kUnloaded;
  Tier tier = Tier::kDisk;
  uint32_t leases = 0;
  uint64_t device_bytes = 0;
  uint64_t host_bytes = 0;
  uint64_t weight_bytes = 0;  // known once opened
  bool used = false;
  TimePoint last_use{};
  uint64_t load_count = 0;
  Duration last_load_time{};
  std::string last_error;

  bool in_transition() const { return state == ModelState::kLoading || state == ModelState::kUnloading; }
};

struct RegistryState {
  // Set by create(), then read-only: no lock.
  RegistryConfig config;
  RegistryOptions options;
  std::vector<std::shared_ptr<MemoryPolicy>> chain;
  uint64_t host_budget = 0;
  std::vector<std::unique_ptr<ModelSlot>> slots;  // the vector; each slot's fields are guarded by mu
  std::map<std::string, ModelSlot*, std::less<>> by_name;

  mutable Mutex mu;
  CondVar cv;                                     // slot states and leases changed (waits on mu)
  // Its devices, in RegistryOptions::devices order (the vector is fixed by
  // create(); each DeviceBooks' mutable fields are guarded by mu).
  std::vector<DeviceBooks> devices;
  uint64_t host_inflight TP_GUARDED_BY(mu) = 0;   // host copies being made by evictions in flight
  RegistryStats stats TP_GUARDED_BY(mu);
  std::vector<ResidencyEvent> pending TP_GUARDED_BY(mu);  // published by flush()
  bool closed TP_GUARDED_BY(mu) = false;

  EventBus events;  // its own lock, never held while taking mu

  std::thread background;
  CondVar background_cv;  // waits on mu
  bool stop TP_GUARDED_BY(mu) = false;
  bool kick TP_GUARDED_BY(mu) = false;

  ~RegistryState();

  // ---- registry.cpp: lookups, leases, tick, background --------------------
  Expected<ModelSlot*> find(std::string_view name) const;
  ModelInfo info_of(const ModelSlot& s) const TP_REQUIRES(mu);
  // The name of `s`'s device, or "auto" while an "auto" model is unplaced.
  std::string device_name_of(const ModelSlot& s) const TP_REQUIRES(mu);
  // 1-based place of `s` in its device's admission queue; 0: not queued.
  uint32_t admission_position(const ModelSlot& s) const TP_REQUIRES(mu);
  // Makes `s` resident (waiting out or performing a load; a load admits
  // max(config workspace, `workspace`) beside the weights).
  Status ensure_resident(ModelSlot& s, Reason reason, bool allow_evict, const std::atomic<bool>* cancel,
                         bool* loaded_here, uint64_t workspace = 0) TP_REQUIRES(mu);
  // Makes `workspace` bytes usable on resident `s`'s device (the cache
  // emptied, then unleased models evicted, waiting in the device's queue as a
  // load does). Ok also when `s` stopped being resident meanwhile (the
  // caller loads it again).
  Status make_workspace(ModelSlot& s, uint64_t workspace, const std::atomic<bool>* cancel) TP_REQUIRES(mu);
  void release(ModelSlot& s) TP_EXCLUDES(mu);
  std::optional<TimePoint> tick() TP_REQUIRES(mu);
  void background_loop() TP_EXCLUDES(mu);
  void record_event(ResidencyEvent ev) TP_REQUIRES(mu) { pending.push_back(std::move(ev)); }
  // Publishes pending events and runs the cache clean-up, with mu released.
  void flush() TP_REQUIRES(mu);
  // Runs device `d`'s clean_caches (when set) with mu released, counts it in
  // the stats, and returns the device's measured free-memory increase.
  int64_t release_cache(size_t d) TP_REQUIRES(mu);

  // ---- policy_chain.cpp: views, the policy chain, admission ---------------
  ModelView view_of(const ModelSlot& s) const TP_REQUIRES(mu);
  // Device `d`'s models (its device info, and the host tier's totals).
  RegistryView view(size_t d) const TP_REQUIRES(mu);
  // Every model, with the first device's info (preload()).
  RegistryView view_all() const TP_REQUIRES(mu);
  DeviceMemoryInfo device_info(size_t d) const;
  uint64_t host_bytes_held() const TP_REQUIRES(mu);
  uint64_t device_bytes_held() const TP_REQUIRES(mu);  // on every device
  uint64_t device_bytes_held(size_t d) const TP_REQUIRES(mu);
  std::optional<TimePoint> expires_at(const ModelSlot& s) const TP_REQUIRES(mu);
  Expected<std::vector<Eviction>> select_victims(const RegistryView& v, uint64_t need, Reason reason) const
      TP_REQUIRES(mu);
  // Every policy's enforce_limits() answer, in chain order.
  Expected<std::vector<Eviction>> enforce_limits(const RegistryView& v, const ModelView* incoming) const
      TP_REQUIRES(mu);
  // What a load of `s` asks for: its weights, max(config workspace,
  // `workspace`) and, with `ask_scratch`, its weights' load scratch (asked
  // only by the thread that owns the weights: its own load, or a model at rest).
  AdmissionRequest load_request(const ModelSlot& s, uint64_t workspace, bool ask_scratch) const TP_REQUIRES(mu);
  // Admission of `req` for `s` on device `d` against the books now;
  // kInternal when a policy throws.
  Expected<Admission> admit(const ModelSlot& s, size_t d, const AdmissionRequest& req) const TP_REQUIRES(mu);
  // The device an "auto" model's load from disk goes to: where it fits with
  // the cheapest evictions (reload cost), then the most usable memory.
  Expected<size_t> pick_device(const ModelSlot& s, const AdmissionRequest& req) const TP_REQUIRES(mu);
  std::string exhausted_message(const ModelSlot& s, const Admission& a) const TP_REQUIRES(mu);

  // ---- tier_transitions.cpp (called and returning with mu held) -----------
  void wait_stable(ModelSlot& s) TP_REQUIRES(mu);
  // The backend's weights for `config` and their device size, or its error.
  Expected<std::pair<std::unique_ptr<ModelWeights>, uint64_t>> open_weights(const ModelConfig& config,
                                                                         size_t d) const TP_EXCLUDES(mu);
  // Admits and loads `s` (not resident, not in transition), placing an
  // unplaced "auto" model first.
  Status load(ModelSlot& s, Reason reason, bool allow_evict, const std::atomic<bool>* cancel, uint64_t workspace)
      TP_REQUIRES(mu);
  // Moves a resident, unleased model off the device. `seen`: the device when
  // a pressure eviction was decided, for its event (ours/others bytes).
  UnloadReport evict(ModelSlot& s, Tier to, Reason reason, const DeviceMemoryInfo* seen = nullptr) TP_REQUIRES(mu);
  // Evicts the legal ones among `evs` (those on device `d`); returns how many it evicted.
  int evict_all(size_t d, const std::vector<Eviction>& evs, const ModelSlot* incoming,
                const DeviceMemoryInfo* seen = nullptr) TP_REQUIRES(mu);
  // Drops the host copy of `s` (not in transition), returning its bytes.
  uint64_t drop_host_copy(ModelSlot& s, Reason reason) TP_REQUIRES(mu);
  // Drops host copies, least recently used first, until `bytes` more fit in
  // the host budget; false when they cannot.
  bool make_host_room(uint64_t bytes, const ModelSlot* keep) TP_REQUIRES(mu);

 private:
  // Waits for `s`'s admission, evicting what it names; ok once it fits. A
  // load that must wait joins admission_queue; while the queue is not empty
  // only its front is admitted (FIFO), a newcomer queueing behind it.
  // `req.weight_bytes` == 0: a workspace request of resident `s`.
  Status wait_for_admission(ModelSlot& s, size_t d, const AdmissionRequest& req, bool allow_evict,
                            const std::atomic<bool>* cancel) TP_REQUIRES(mu);
  ModelSlot* legal_victim(size_t d, const Eviction& ev, const ModelSlot* incoming) const TP_REQUIRES(mu);
  // Opens `s`'s weights on device `d`'s backend (mu released meanwhile).
  Status open_on(ModelSlot& s, size_t d) TP_REQUIRES(mu);
  TransferContext transfer_context(const ModelSlot& s, Tier from, Tier to, const std::atomic<bool>* cancel) const;
};

}  // namespace tp::detail
