// ModelRegistry and ModelLease over the shared RegistryState: lookups, leases
// (acquire/release), unload, plan, tick and the background thread's wiring.
//
// The books, their lock and the file map of RegistryState's methods are in
// registry_state.h; admission (pure) in admission.h; weights moving between
// tiers in tier_transitions.cpp; the snapshots and policy calls in
// policy_chain.cpp; subscribers in event_bus.h; counters in stats.h.
//
// Threading: ModelRegistry is thread-safe; each public method takes the
// registry's mutex itself (TP_EXCLUDES) and runs events and clean-up with it
// released (flush()). A ModelLease is owned by one thread at a time; its
// release() takes the mutex. The background thread runs tick() under the
// mutex and sleeps on background_cv, waking on a release (kick), at the next
// expiry or after config.monitor_interval, whichever is first.
#include "twistedpic/registry.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <utility>

#include "registry/deadline.h"
#include "registry/host_call.h"
#include "registry/registry_state.h"
#include "registry/stats.h"
#include "twistedpic/log.h"
#include "util/system.h"

namespace tp {
namespace detail {

RegistryState::~RegistryState() {
  for (auto& s : slots) s->weights.reset();  // frees device and host copies
}

// ---- lookups --------------------------------------------------------------------

Expected<ModelSlot*> RegistryState::find(std::string_view name) const {
  auto it = by_name.find(name);
  if (it != by_name.end()) return it->second;
  std::string known;
  for (const auto& [n, s] : by_name) known += (known.empty() ? "" : ", ") + n;
  return not_found("model '" + std::string(name) + "' is not configured (configured: " + known + ")");
}

ModelInfo RegistryState::info_of(const ModelSlot& s) const {
  ModelInfo i;
  i.name = s.config.name;
  i.source = s.config.source;
  i.pipeline_type = s.config.pipeline_type;
  i.dtype = s.config.dtype;
  i.state = s.state;
  i.tier = s.tier;
  i.device_bytes = s.device_bytes;
  i.host_bytes = s.host_bytes;
  i.leases = s.leases;
  i.pinned = s.config.pinned;
  i.priority = s.config.priority;
  if (s.used) i.last_use = s.last_use;
  i.expires_at = expires_at(s);
  i.load_count = s.load_count;
  i.last_load_time = s.last_load_time;
  i.last_error = s.last_error;
  i.admission_position = admission_position(s);
  i.device = device_name_of(s);
  return i;
}

std::string RegistryState::device_name_of(const ModelSlot& s) const {
  return s.device >= 0 ? devices[static_cast<size_t>(s.device)].name : std::string(kAutoModelDevice);
}

uint32_t RegistryState::admission_position(const ModelSlot& s) const {
  if (s.device < 0) return 0;
  const auto& q = devices[static_cast<size_t>(s.device)].admission_queue;
  auto it = std::find(q.begin(), q.end(), &s);
  return it == q.end() ? 0 : static_cast<uint32_t>(it - q.begin() + 1);
}

// ---- leases, tick, background ------------------------------------------------------

Status RegistryState::ensure_resident(ModelSlot& s, Reason reason, bool allow_evict, const std::atomic<bool>* cancel,
                                      bool* loaded_here, uint64_t workspace) {
  for (;;) {
    if (closed) return failed_precondition("the registry is shutting down");
    if (s.state == ModelState::kResident) return ok_status();
    if (s.in_transition()) {
      if (loaded_here) *loaded_here = true;  // waited for a load: a miss
      wait_stable(s);
      continue;
    }
    if (loaded_here) *loaded_here = true;
    TP_TRY(load(s, reason, allow_evict, cancel, workspace));
  }
}

void RegistryState::release(ModelSlot& s) {
  MutexLock lk(mu);
  TP_ASSERT(s.leases > 0);
  --s.leases;
  s.last_use = options.clock->now();
  if (s.leases == 0 && s.state == ModelState::kResident && !closed) {
    RegistryView v = view(static_cast<size_t>(s.device));
    const ModelView* mv = v.find(s.config.name);
    std::optional<Eviction> act;
    for (const auto& p : chain) {
      auto answer = call_host(policy_label(*p), [&] { return p->on_idle(v, *mv); });
      if (!answer) {
        log_host_error(answer.error(), "in on_idle(" + s.config.name + "); its answer is ignored");
        continue;
      }
      if ((act = std::move(*answer))) break;
    }
    if (act && act->to != Tier::kDevice) {
      evict(s, act->to, act->reason);
    } else if (s.idle_timeout_s == 0) {
      evict(s, s.idle_unload_to, Reason::kTtl);
    }
  }
  cv.notify_all();
  kick = true;
  background_cv.notify_all();
  flush();
}

std::optional<TimePoint> RegistryState::tick() {
  // Idle timeouts.
  TimePoint now = options.clock->now();
  for (auto& s : slots) {
    if (s->state != ModelState::kResident || s->leases > 0) continue;
    if (auto t = expires_at(*s); t && *t <= now) evict(*s, s->idle_unload_to, Reason::kTtl);
  }
  for (size_t d = 0; d < devices.size(); ++d) {
    // LRU limits, per device.
    {
      RegistryView v = view(d);
      std::vector<Eviction> evs;
      for (const auto& p : chain) {
        auto answer = call_host(policy_label(*p), [&] { return p->enforce_limits(v, nullptr); });
        if (!answer) {
          log_host_error(answer.error(), "in enforce_limits(); its answer is ignored");
          continue;
        }
        for (auto& ev : *answer) evs.push_back(std::move(ev));
      }
      evict_all(d, evs, nullptr);
    }
    // Pressure: keep the device's headroom free, counting other processes.
    if (config.policy.min_free_bytes > 0 || config.policy.min_free_fraction > 0) {
      RegistryView v = view(d);
      const uint64_t headroom = config.policy.headroom_bytes(v.device.total_bytes);
      if (v.device.total_bytes > 0 && v.device.free_bytes < headroom) {
        uint64_t need = headroom - v.device.free_bytes;
        auto victims = select_victims(v, need, Reason::kPressure);
        if (!victims) log_host_error(victims.error(), "in select_victims(); no eviction for pressure this time");
        int n = victims ? evict_all(d, *victims, nullptr, &v.device) : 0;
        if (victims && n == 0)
          TP_LOG(kDebug, "registry", devices[d].name << " under pressure (" << v.device.free_bytes
                                                     << " bytes free) but nothing is evictable");
      }
    }
  }
  std::optional<TimePoint> next;
  for (const auto& s : slots)
    if (auto t = expires_at(*s); t && (!next || *t < *next)) next = t;
  flush();
  return next;
}

void RegistryState::background_loop() {
  MutexLock lk(mu);
  while (!stop) {
    std::optional<TimePoint> next = tick();
    if (stop) break;
    Duration wait = config.monitor_interval;
    if (next && options.clock->is_real_time())
      wait = std::clamp<Duration>(*next - options.clock->now(), std::chrono::milliseconds(1), wait);
    const Deadline until(*options.clock, wait);
    while (!stop && !kick && !until.passed()) background_cv.wait_for(mu, until.wait_time());
    kick = false;
  }
}

int64_t RegistryState::release_cache(size_t d) {
  const DeviceBooks& dev = devices[d];
  if (!dev.clean_caches) return 0;
  mu.unlock();
  const uint64_t before = device_info(d).free_bytes;
  try {
    dev.clean_caches();
  } catch (...) {
    TP_LOG(kError, "registry", "the clean-up step of " << dev.name << " threw; the exception was dropped");
  }
  const uint64_t after = device_info(d).free_bytes;
  mu.lock();
  const int64_t back = static_cast<int64_t>(after) - static_cast<int64_t>(before);
  ++stats.cache_releases;
  if (back > 0) stats.cache_bytes_returned += static_cast<uint64_t>(back);
  return back;
}

void RegistryState::flush() {
  for (size_t d = 0; d < devices.size(); ++d) {
    DeviceBooks& dev = devices[d];
    const bool clean = dev.clean_pending && config.policy.clean_caches && dev.clean_caches;
    dev.clean_pending = false;
    if (!clean) continue;
    const int64_t back = release_cache(d);  // before publishing: the events carry what it returned
    for (auto it = pending.rbegin(); it != pending.rend(); ++it)
      if (it->from == Tier::kDevice && !it->failed && it->device == dev.name) {
        it->cache_bytes_returned = back;
        break;
      }
  }
  if (pending.empty()) return;
  std::vector<ResidencyEvent> out;
  out.swap(pending);
  mu.unlock();
  events.publish(out);
  mu.lock();
}

}  // namespace detail

inline namespace v0 {

using detail::ModelSlot;
using detail::MutexLock;
using detail::RegistryState;

// ---- ModelLease -------------------------------------------------------------

ModelLease::ModelLease(std::shared_ptr<RegistryState> state, ModelSlot* slot)
    : state_(std::move(state)), slot_(slot) {}

ModelLease::ModelLease(ModelLease&& other) noexcept
    : state_(std::move(other.state_)), slot_(std::exchange(other.slot_, nullptr)) {}

ModelLease& ModelLease::operator=(ModelLease&& other) noexcept {
  if (this != &other) {
    release();
    state_ = std::move(other.state_);
    slot_ = std::exchange(other.slot_, nullptr);
  }
  return *this;
}

ModelLease::~ModelLease() { release(); }

const std::string& ModelLease::name() const {
  TP_ASSERT(slot_);
  return slot_->config.name;
}

ModelWeights& ModelLease::weights() const {
  TP_ASSERT(slot_ && slot_->weights);
  return *slot_->weights;
}

void ModelLease::release() {
  if (!slot_) return;
  ModelSlot* s = std::exchange(slot_, nullptr);
  std::shared_ptr<RegistryState> state = std::move(state_);
  state->release(*s);
}  // the last lease of a destroyed registry frees it here

// ---- ModelRegistry ------------------------------------------------------------

ModelRegistry::ModelRegistry(std::shared_ptr<RegistryState> state) : state_(std::move(state)) {}

namespace {

// RegistryOptions' devices: `devices`, or the one made of the single-device fields.
Expected<std::vector<RegistryDevice>> devices_of(const RegistryOptions& options) {
  if (options.devices.empty()) {
    if (!options.backend) return invalid_argument("RegistryOptions.backend is required");
    if (!options.monitor) return invalid_argument("RegistryOptions.monitor is required");
    return std::vector<RegistryDevice>{{options.monitor->name(), options.backend, options.monitor, options.clean_caches}};
  }
  const RegistryDevice& first = options.devices.front();
  if ((options.backend && options.backend != first.backend) || (options.monitor && options.monitor != first.monitor))
    return invalid_argument(
        "RegistryOptions: backend and monitor may only repeat devices[0]'s when `devices` is given");
  if (options.clean_caches)
    return invalid_argument("RegistryOptions.clean_caches: give it per device (RegistryDevice.clean_caches) "
                            "when `devices` is given");
  std::set<std::string, std::less<>> names;
  for (size_t i = 0; i < options.devices.size(); ++i) {
    const RegistryDevice& d = options.devices[i];
    const std::string where = "RegistryOptions.devices[" + std::to_string(i) + "]";
    if (d.name.empty()) return invalid_argument(where + ".name is required");
    if (d.name == kAutoModelDevice) return invalid_argument(where + ".name: 'auto' is reserved");
    if (!names.insert(d.name).second) return invalid_argument(where + ".name: '" + d.name + "' is given twice");
    if (!d.backend) return invalid_argument(where + ".backend is required ('" + d.name + "')");
    if (!d.monitor) return invalid_argument(where + ".monitor is required ('" + d.name + "')");
  }
  return options.devices;
}

// The index of the device `name` names among `devices`: "" the first; "cuda:0"
// the only one of a single-device registry, whatever its name (configs
// written for one GPU run on the CPU device); -1 for "auto". kInvalidArgument
// for a name the registry lacks, listing those it has.
Expected<int> resolve_device(const std::vector<RegistryDevice>& devices, std::string_view name,
                             const std::string& what) {
  if (name.empty()) return 0;
  if (name == kAutoModelDevice) return -1;
  for (size_t i = 0; i < devices.size(); ++i)
    if (devices[i].name == name) return static_cast<int>(i);
  if (name == "cuda:0" && devices.size() == 1) return 0;
  std::string have;
  for (const auto& d : devices) have += (have.empty() ? "" : ", ") + d.name;
  return invalid_argument(what + ": no device '" + std::string(name) + "' in this registry (its devices: " + have +
                          "; or 'auto', or nothing for " + devices.front().name + ")");
}

}  // namespace

Expected<std::unique_ptr<ModelRegistry>> ModelRegistry::create(RegistryConfig config, RegistryOptions options) {
  TP_ASSIGN_OR_RETURN(std::vector<RegistryDevice> devices, devices_of(options));
  TP_TRY(validate_registry_config(config));
  if (!options.clock) options.clock = std::make_shared<SteadyClock>();
  for (const auto& p : options.policies)
    if (!p) return invalid_argument("RegistryOptions.policies holds a null policy");

  auto state = std::make_shared<RegistryState>();
  state->devices.resize(devices.size());
  for (size_t i = 0; i < devices.size(); ++i) {
    detail::DeviceBooks& b = state->devices[i];
    b.name = devices[i].name;
    b.backend = devices[i].backend;
    b.monitor = devices[i].monitor;
    b.clean_caches = devices[i].clean_caches;
    b.budget_bytes = config.device_budget_bytes;
  }
  for (const auto& [name, dc] : config.devices) {
    TP_ASSIGN_OR_RETURN(int d, resolve_device(devices, name, "devices." + name));
    if (d < 0) return invalid_argument("devices.auto: 'auto' is not a device");
    if (dc.budget_bytes) state->devices[static_cast<size_t>(d)].budget_bytes = *dc.budget_bytes;
  }
  state->host_budget = config.host_budget_bytes.value_or(detail::physical_ram_bytes() / 2);
  state->chain = options.policies;
  for (auto& p : make_builtin_policies(config)) state->chain.push_back(std::move(p));
  for (const auto& m : config.models) {
    auto s = std::make_unique<ModelSlot>();
    s->config = m;
    s->unload_after = m.policy.unload_after.value_or(config.policy.unload_after);
    s->idle_timeout_s = m.policy.idle_timeout_s.value_or(config.policy.idle_timeout_s);
    s->idle_unload_to = m.policy.idle_unload_to.value_or(config.policy.idle_unload_to);
    TP_ASSIGN_OR_RETURN(s->device, resolve_device(devices, m.device, "models." + m.name + ".device: model '" + m.name + "'"));
    s->auto_device = s->device < 0;
    state->by_name.emplace(m.name, s.get());
    state->slots.push_back(std::move(s));
  }
  state->config = std::move(config);
  state->options = std::move(options);

  std::unique_ptr<ModelRegistry> registry(new ModelRegistry(state));
  {
    MutexLock lk(state->mu);
    RegistryView v = state->view_all();
    std::vector<std::string> eager;
    for (const auto& p : state->chain) {
      auto names = detail::call_host(detail::policy_label(*p), [&] { return p->preload(v); });
      if (!names) return tl::unexpected(names.error());  // before any load: nothing to roll back
      for (auto& n : *names) eager.push_back(std::move(n));
    }
    for (const auto& name : eager) {
      auto s = state->find(name);
      if (!s || (*s)->state == ModelState::kResident) continue;
      if (auto st = state->ensure_resident(**s, Reason::kEager, /*allow_evict=*/false, nullptr, nullptr); !st)
        TP_LOG(kWarn, "registry", "eager load of '" << name << "' skipped: " << st.error().message);
    }
    state->flush();
  }
  if (state->options.background_thread)
    state->background = std::thread([s = state.get()] { s->background_loop(); });
  return registry;
}

ModelRegistry::~ModelRegistry() {
  {
    MutexLock lk(state_->mu);
    state_->closed = true;
    state_->stop = true;
  }
  state_->background_cv.notify_all();
  state_->cv.notify_all();
  if (state_->background.joinable()) state_->background.join();
  // No callback runs after the registry is gone, even from a lease released on another thread.
  state_->events.close();
  // Live leases keep state_ alive; the last one frees the models.
}

std::vector<ModelInfo> ModelRegistry::list() const {
  MutexLock lk(state_->mu);
  std::vector<ModelInfo> out;
  out.reserve(state_->slots.size());
  for (const auto& s : state_->slots) out.push_back(state_->info_of(*s));
  return out;
}

Expected<ModelInfo> ModelRegistry::info(std::string_view name) const {
  MutexLock lk(state_->mu);
  TP_ASSIGN_OR_RETURN(auto* s, state_->find(name));
  return state_->info_of(*s);
}

Expected<ModelLease> ModelRegistry::acquire(std::string_view name, const AcquireOptions& options) {
  MutexLock lk(state_->mu);
  TP_ASSIGN_OR_RETURN(ModelSlot * s, state_->find(name));
  bool missed = false;
  for (;;) {
    Status st = state_->ensure_resident(*s, Reason::kLazy, true, options.cancel, &missed, options.workspace_bytes);
    // The workspace beside resident weights: made usable before the lease
    // (a check, not a reservation: the activations count as used on the
    // device once allocated).
    if (st && options.workspace_bytes > 0) st = state_->make_workspace(*s, options.workspace_bytes, options.cancel);
    if (!st) {
      state_->flush();
      return tl::unexpected(st.error());
    }
    if (s->state == ModelState::kResident) break;  // else it left while we waited: load it again
  }
  ++s->leases;  // taken under the same lock hold that saw the model resident
  s->used = true;
  s->last_use = state_->options.clock->now();
  ++(missed ? state_->stats.misses : state_->stats.hits);
  ModelView v = state_->view_of(*s);
  for (const auto& p : state_->chain)  // a notification: the lease stands whatever it does
    if (auto st = detail::call_host(detail::policy_label(*p), [&] { p->on_access(v); }); !st)
      detail::log_host_error(st.error(), "in on_access(" + s->config.name + "); ignored");
  state_->flush();
  return ModelLease(state_, s);
}

Status ModelRegistry::preload(std::string_view name) {
  MutexLock lk(state_->mu);
  TP_ASSIGN_OR_RETURN(ModelSlot * s, state_->find(name));
  Status st = state_->ensure_resident(*s, Reason::kExplicit, true, nullptr, nullptr);
  state_->flush();
  return st;
}

Expected<UnloadReport> ModelRegistry::unload(std::string_view name, Tier to) {
  if (to == Tier::kDevice) return invalid_argument("unload: the target tier must be host or disk");
  MutexLock lk(state_->mu);
  TP_ASSIGN_OR_RETURN(ModelSlot * s, state_->find(name));
  state_->wait_stable(*s);
  if (s->leases > 0)
    return failed_precondition("model '" + s->config.name + "' has " + std::to_string(s->leases) +
                               " live lease(s); it cannot be unloaded until they are released");
  UnloadReport report{s->tier, s->tier, 0, 0};
  if (s->state == ModelState::kResident) {
    report = state_->evict(*s, to, Reason::kExplicit);
  } else if (to == Tier::kDisk && s->host_bytes > 0) {
    report = {Tier::kHost, Tier::kDisk, state_->drop_host_copy(*s, Reason::kExplicit), 0};
    // An explicit drop counts as an eviction (make_host_room's LRU drops do not).
    ++state_->stats.evictions_by_reason[static_cast<size_t>(Reason::kExplicit)];
  }
  state_->flush();
  return report;
}

Status ModelRegistry::unload_all(Tier to) {
  std::vector<std::string> leased;
  for (const auto& s : state_->slots) {
    auto r = unload(s->config.name, to);
    if (!r) {
      if (r.error().code != ErrorCode::kFailedPrecondition) return tl::unexpected(r.error());
      leased.push_back(s->config.name);
    }
  }
  if (!leased.empty()) {
    std::string names;
    for (const auto& n : leased) names += (names.empty() ? "" : ", ") + n;
    return failed_precondition("unload_all: still leased, left on the device: " + names);
  }
  return ok_status();
}

Expected<LoadPlan> ModelRegistry::plan(std::string_view name) const {
  MutexLock lk(state_->mu);
  TP_ASSIGN_OR_RETURN(ModelSlot * s, state_->find(name));
  LoadPlan p;
  p.model = s->config.name;
  p.device = state_->device_name_of(*s);
  if (s->state == ModelState::kResident) {
    p.resident = p.fits = true;
    p.from = Tier::kDevice;
    p.explanation = "'" + p.model + "' is already on " + p.device;
    return p;
  }
  // Admission needs the weights' size: ask the backend when not opened yet
  // (the first device's for an unplaced "auto" model).
  ModelSlot probe;
  const ModelSlot* subject = s;
  const bool at_rest = !s->in_transition();
  std::unique_ptr<ModelWeights> probe_weights;
  if (!s->weights) {
    ModelConfig cfg = s->config;
    const size_t open_on = s->device >= 0 ? static_cast<size_t>(s->device) : 0;
    lk.unlock();
    auto opened = state_->open_weights(cfg, open_on);
    lk.lock();
    if (!opened) return tl::unexpected(opened.error());
    probe.config = cfg;
    probe.weight_bytes = opened->second;
    probe.device = s->device;
    probe_weights = std::move(opened->first);
    subject = &probe;
  }
  detail::AdmissionRequest req = state_->load_request(*subject, 0, at_rest);
  if (probe_weights) req.scratch_bytes = probe_weights->load_scratch_bytes();
  size_t d = 0;
  if (subject->device >= 0) {
    d = static_cast<size_t>(subject->device);
  } else {
    TP_ASSIGN_OR_RETURN(d, state_->pick_device(*subject, req));
    p.device = state_->devices[d].name;
  }
  detail::Admission a;
  {
    auto admitted = state_->admit(*subject, d, req);
    if (!admitted) return tl::unexpected(admitted.error());
    a = std::move(*admitted);
  }
  p.from = s->host_bytes > 0 ? Tier::kHost : Tier::kDisk;
  p.bytes_to_move = subject->weight_bytes;
  p.needed_bytes = a.need;
  p.free_bytes = a.avail;
  p.evictions = a.evictions;
  p.bytes_evicted = a.evicted_bytes;
  p.fits = a.fits;
  p.explanation = a.fits ? "load '" + p.model + "' from " + std::string(tier_name(p.from)) + " to " + p.device + ": " +
                               std::to_string(p.bytes_to_move) + " bytes, evicting " +
                               std::to_string(p.evictions.size()) + " model(s) (" + std::to_string(p.bytes_evicted) +
                               " bytes)"
                         : state_->exhausted_message(*subject, a);
  return p;
}

std::optional<TimePoint> ModelRegistry::tick() {
  MutexLock lk(state_->mu);
  return state_->tick();
}

uint64_t ModelRegistry::release_caches(bool force) {
  MutexLock lk(state_->mu);
  if (state_->closed || !(force || state_->config.policy.clean_caches)) return 0;
  uint64_t back = 0;
  for (size_t d = 0; d < state_->devices.size(); ++d)
    if (const int64_t b = state_->release_cache(d); b > 0) back += static_cast<uint64_t>(b);
  state_->flush();
  return back;
}

RegistryStats ModelRegistry::stats() const {
  MutexLock lk(state_->mu);
  RegistryStats out = detail::snapshot(state_->stats, state_->device_bytes_held(), state_->host_bytes_held());
  for (size_t i = 0; i < state_->devices.size(); ++i) {
    const detail::DeviceBooks& dev = state_->devices[i];
    const DeviceMemoryInfo d = state_->device_info(i);
    DeviceStats ds;
    ds.name = dev.name;
    ds.total_bytes = d.total_bytes;
    ds.free_bytes = d.free_bytes;
    ds.process_bytes = d.process_bytes;
    ds.other_process_bytes = d.other_bytes;
    ds.headroom_bytes = state_->config.policy.headroom_bytes(d.total_bytes);
    ds.budget_bytes = dev.budget_bytes;
    ds.held_bytes = state_->device_bytes_held(i);
    ds.peak_bytes = dev.peak_bytes;
    ds.reserved_bytes = dev.reserved_bytes;
    ds.scratch_bytes = dev.backend->scratch_bytes_held();
    ds.admission_queue = dev.admission_queue.size();
    for (const auto& s : state_->slots)
      if (s->device == static_cast<int>(i) && s->state == ModelState::kResident) ++ds.resident_models;
    out.device_total_bytes += ds.total_bytes;
    out.device_free_bytes += ds.free_bytes;
    out.process_bytes += ds.process_bytes;
    out.other_process_bytes += ds.other_process_bytes;
    out.headroom_bytes += ds.headroom_bytes;
    out.admission_queue += ds.admission_queue;
    for (const ModelSlot* q : dev.admission_queue)
      out.admission_queue_bytes += q->weight_bytes + q->config.workspace_bytes;
    out.devices.push_back(std::move(ds));
  }
  return out;
}

const RegistryConfig& ModelRegistry::config() const { return state_->config; }

int ModelRegistry::subscribe(EventCallback callback) { return state_->events.subscribe(std::move(callback)); }

Status ModelRegistry::unsubscribe(int id) { return state_->events.unsubscribe(id); }

}  // namespace v0
}  // namespace tp
