// RegistryState: weights moving between tiers.
//
// load() admits a model (admission.h, waiting up to the admission timeout on
// the injected clock) and moves it to the device; evict() moves a resident,
// unleased model to the host tier or disk; drop_host_copy() is the one path
// that drops a host copy, used by make_host_room() (the host budget's LRU) and
// by ModelRegistry::unload() (an explicit unload to disk).
//
// Threading: every method is called with the registry's mutex held and
// returns with it held; those that move weights release it meanwhile. The
// slot's transition state (kLoading, kUnloading) makes the moving thread the
// only user of its ModelWeights; others wait on cv (registry_state.h).
#include <algorithm>
#include <chrono>

#include "registry/deadline.h"
#include "registry/host_call.h"
#include "registry/registry_state.h"
#include "registry/stats.h"

namespace tp::detail {

namespace {

// How long an admission waiting for leases sleeps before it looks at the
// clock and its cancel flag again (a cancel does not notify cv).
constexpr Duration kAdmissionSlice = std::chrono::milliseconds(10);

double to_ms(Duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

ResidencyEvent make_event(const std::string& model, const std::string& device, Tier from, Tier to, Reason reason,
                          uint64_t bytes = 0, double ms = 0) {
  ResidencyEvent ev;
  ev.model = model;
  ev.device = device;
  ev.from = from;
  ev.to = to;
  ev.reason = reason;
  ev.bytes = bytes;
  ev.ms = ms;
  return ev;
}

// "the weights of '<model>'", for messages about host weight code.
std::string weights_label(const ModelSlot& s) { return "the weights of '" + s.config.name + "'"; }

// drop_device() and/or drop_host() on host weights; an exception is logged
// (the registry then counts the bytes as gone, as the weights promise).
void drop_weights(ModelSlot& s, bool device, bool host) {
  if (device)
    if (auto st = call_host(weights_label(s), [&] { s.weights->drop_device(); }); !st)
      log_host_error(st.error(), "in drop_device(); the device copy is taken as dropped");
  if (host)
    if (auto st = call_host(weights_label(s), [&] { s.weights->drop_host(); }); !st)
      log_host_error(st.error(), "in drop_host(); the host copy is taken as dropped");
}

}  // namespace

void RegistryState::wait_stable(ModelSlot& s) {
  while (s.in_transition()) cv.wait(mu);
}

TransferContext RegistryState::transfer_context(const ModelSlot& s, Tier from, Tier to,
                                                const std::atomic<bool>* cancel) const {
  TransferContext ctx;
  ctx.cancel = cancel;
  if (options.on_transfer)
    ctx.progress = [this, name = s.config.name, from, to](uint64_t done, uint64_t total) {
      (void)call_host("the transfer progress callback", [&] { options.on_transfer(name, from, to, done, total); });
    };
  return ctx;
}

// ---- host copies --------------------------------------------------------------

uint64_t RegistryState::drop_host_copy(ModelSlot& s, Reason reason) {
  TP_ASSERT(!s.in_transition());
  const uint64_t bytes = s.host_bytes;
  drop_weights(s, false, true);
  s.host_bytes = 0;
  if (s.state != ModelState::kResident) {  // a resident model keeps its tier and just loses the copy
    s.tier = Tier::kDisk;
    if (s.state == ModelState::kOffloaded) s.state = ModelState::kUnloaded;
    record_event(make_event(s.config.name, device_name_of(s), Tier::kHost, Tier::kDisk, reason, bytes));
    if (s.auto_device) s.device = -1;  // on disk: the next load places it afresh
  }
  return bytes;
}

bool RegistryState::make_host_room(uint64_t bytes, const ModelSlot* keep) {
  uint64_t held = host_bytes_held() + host_inflight;  // copies being made count already
  if (held + bytes <= host_budget) return true;
  std::vector<ModelSlot*> copies;
  for (auto& s : slots)
    if (s.get() != keep && s->host_bytes > 0 && !s->in_transition()) copies.push_back(s.get());
  uint64_t droppable = 0;
  for (ModelSlot* c : copies) droppable += c->host_bytes;
  if (held - droppable + bytes > host_budget) return false;  // would drop copies in vain
  std::sort(copies.begin(), copies.end(), [](ModelSlot* a, ModelSlot* b) { return a->last_use < b->last_use; });
  for (ModelSlot* c : copies) {
    if (held + bytes <= host_budget) break;
    held -= drop_host_copy(*c, Reason::kLru);
  }
  return held + bytes <= host_budget;
}

// ---- off the device -------------------------------------------------------------

UnloadReport RegistryState::evict(ModelSlot& s, Tier to, Reason reason, const DeviceMemoryInfo* seen) {
  TP_ASSERT(s.state == ModelState::kResident && s.leases == 0 && to != Tier::kDevice);
  if (to == Tier::kHost && !make_host_room(s.host_bytes ? 0 : s.device_bytes, &s)) to = Tier::kDisk;
  s.state = ModelState::kUnloading;
  uint64_t bytes = s.device_bytes;
  const uint64_t host_reserved = to == Tier::kHost && s.host_bytes == 0 ? bytes : 0;
  host_inflight += host_reserved;
  const auto d = static_cast<size_t>(s.device);
  uint64_t free_before = device_info(d).free_bytes;
  const uint64_t held_before = device_bytes_held(d);
  TimePoint t0 = options.clock->now();
  bool had_host = s.host_bytes > 0;

  mu.unlock();
  Status moved = ok_status();
  if (to == Tier::kHost) {
    auto offloaded = call_host(weights_label(s), [&] {
      return s.weights->offload_to_host(transfer_context(s, Tier::kDevice, Tier::kHost, nullptr));
    });
    moved = offloaded ? std::move(*offloaded) : Status(tl::unexpected(offloaded.error()));
    if (!moved) {
      TP_LOG(kWarn, "registry", s.config.name << ": no host copy (" << moved.error().message << "); dropping to disk");
      drop_weights(s, true, true);
      to = Tier::kDisk;
    }
  } else {
    drop_weights(s, true, true);
  }
  mu.lock();

  host_inflight -= host_reserved;
  uint64_t free_after = device_info(d).free_bytes;
  UnloadReport report{Tier::kDevice, to, bytes, static_cast<int64_t>(free_after) - static_cast<int64_t>(free_before)};
  s.state = to == Tier::kHost ? ModelState::kOffloaded : ModelState::kUnloaded;
  s.tier = to;
  s.device_bytes = 0;
  s.host_bytes = s.weights->host_bytes();
  count_eviction(stats, reason, to == Tier::kHost && !had_host ? s.host_bytes : 0, report.bytes_returned);
  ResidencyEvent ev =
      make_event(s.config.name, devices[d].name, Tier::kDevice, to, reason, bytes, to_ms(options.clock->now() - t0));
  ev.bytes_returned = report.bytes_returned;
  if (seen && reason == Reason::kPressure) {
    ev.ours_bytes = seen->process_bytes ? seen->process_bytes : held_before;
    ev.others_bytes = seen->other_bytes;
  }
  record_event(std::move(ev));
  devices[d].clean_pending = true;
  if (to == Tier::kDisk && s.auto_device) s.device = -1;  // on disk: the next load places it afresh
  cv.notify_all();
  return report;
}

// A policy may evict only resident, unleased, unpinned models, of the device it decides for.
ModelSlot* RegistryState::legal_victim(size_t d, const Eviction& ev, const ModelSlot* incoming) const {
  auto it = by_name.find(ev.model);
  if (it == by_name.end()) return nullptr;
  ModelSlot* v = it->second;
  if (v == incoming || v->device != static_cast<int>(d) ||
      !is_legal_eviction(v->state, v->leases, v->config.pinned, ev.to))
    return nullptr;
  return v;
}

int RegistryState::evict_all(size_t d, const std::vector<Eviction>& evs, const ModelSlot* incoming,
                             const DeviceMemoryInfo* seen) {
  int n = 0;
  for (const auto& ev : evs) {
    if (ModelSlot* v = legal_victim(d, ev, incoming)) {
      evict(*v, ev.to, ev.reason, seen);
      ++n;
    }
  }
  return n;
}

// ---- onto the device --------------------------------------------------------------

Expected<std::pair<std::unique_ptr<ModelWeights>, uint64_t>> RegistryState::open_weights(const ModelConfig& config,
                                                                                       size_t d) const {
  const std::string of = devices.size() > 1 ? " of " + devices[d].name : "";
  auto opened = call_host("the weight backend" + of + " opening '" + config.name + "'",
                          [&]() -> Expected<std::pair<std::unique_ptr<ModelWeights>, uint64_t>> {
                            TP_ASSIGN_OR_RETURN(auto weights, devices[d].backend->open(config));
                            const uint64_t bytes = weights->device_bytes();
                            return std::make_pair(std::move(weights), bytes);
                          });
  if (!opened) return tl::unexpected(opened.error());
  return std::move(*opened);
}

Status RegistryState::open_on(ModelSlot& s, size_t d) {
  std::unique_ptr<ModelWeights> old = std::move(s.weights);  // another backend's: nothing on a device, no host copy
  ModelConfig cfg = s.config;
  mu.unlock();
  old.reset();
  auto opened = open_weights(cfg, d);
  mu.lock();
  s.weights_device = -1;
  if (!opened) return tl::unexpected(opened.error());
  s.weight_bytes = opened->second;
  s.weights = std::move(opened->first);
  s.weights_device = static_cast<int>(d);
  return ok_status();
}

Status RegistryState::wait_for_admission(ModelSlot& s, size_t d, const AdmissionRequest& req, bool allow_evict,
                                         const std::atomic<bool>* cancel) {
  DeviceBooks& dev = devices[d];
  const bool workspace_only = req.weight_bytes == 0;
  const Deadline deadline(*options.clock, config.admission_timeout);
  bool queued = false;
  bool cache_released = false;  // once per admission: the cache first, then evictions
  // Every way out leaves the queue, and wakes the waiter now at its front.
  auto leave = [&](Status st) TP_REQUIRES(mu) -> Status {
    if (queued) {
      dev.admission_queue.erase(std::find(dev.admission_queue.begin(), dev.admission_queue.end(), &s));
      cv.notify_all();
    }
    return st;
  };
  auto refuse = [&](const Admission& a, std::string note) TP_REQUIRES(mu) -> Status {
    ++stats.admission_failures;
    return leave(tl::unexpected(Error{ErrorCode::kResourceExhausted, exhausted_message(s, a) + note}));
  };
  for (;;) {
    if (closed) return leave(failed_precondition("the registry is shutting down"));
    if (cancel && cancel->load()) {
      if (queued) ++stats.admission_cancels;
      return leave(tl::unexpected(Error{ErrorCode::kCancelled, (workspace_only ? "acquiring '" : "loading '") +
                                                                   s.config.name + "' was cancelled"}));
    }
    // A resident model asking for workspace that left the device meanwhile:
    // its caller loads it again, workspace included.
    if (workspace_only && s.state != ModelState::kResident) return leave(ok_status());
    auto admitted = admit(s, d, req);
    if (!admitted) return leave(tl::unexpected(admitted.error()));  // a policy threw: nothing moved yet
    const Admission& a = *admitted;
    const bool front = dev.admission_queue.empty() || dev.admission_queue.front() == &s;
    if (front) {
      if (a.fits && a.evictions.empty()) return leave(ok_status());
      if (!cache_released && dev.clean_caches) {
        // Cached allocator blocks go back to the driver before any model is
        // evicted for room (with mu released); then admission looks again.
        cache_released = true;
        release_cache(d);
        continue;
      }
      if (a.fits && allow_evict) {
        if (evict_all(d, a.evictions, &s, &a.device) > 0) continue;
      }
      // Waiting helps when leases may end or other transitions finish, and
      // the model could fit once they have.
      const bool may_wait = a.busy || dev.reserved_bytes > 0 || (a.leased_bytes > 0 && a.could_fit);
      if (!may_wait || deadline.passed()) return refuse(a, "");
    } else if (deadline.passed()) {
      const size_t ahead = queued ? admission_position(s) - 1 : dev.admission_queue.size();
      return refuse(a, " (behind " + std::to_string(ahead) + " earlier load(s) in the admission queue of " +
                           dev.name + ")");
    }
    if (!queued) {
      dev.admission_queue.push_back(&s);
      queued = true;
      ++stats.admission_waits;
    }
    // In slices, so that a cancel (which does not notify cv) and a clock
    // that is not real time are seen promptly.
    cv.wait_for(mu, std::min(deadline.wait_time(), kAdmissionSlice));
  }
}

Status RegistryState::make_workspace(ModelSlot& s, uint64_t workspace, const std::atomic<bool>* cancel) {
  TP_ASSERT(s.state == ModelState::kResident && s.device >= 0);
  AdmissionRequest req;
  req.workspace_bytes = workspace;
  return wait_for_admission(s, static_cast<size_t>(s.device), req, /*allow_evict=*/true, cancel);
}

Status RegistryState::load(ModelSlot& s, Reason reason, bool allow_evict, const std::atomic<bool>* cancel,
                           uint64_t workspace) {
  TP_ASSERT(!s.in_transition() && s.state != ModelState::kResident);
  const ModelState prev_state = s.state;
  s.state = ModelState::kLoading;  // claims the single flight
  bool placed_here = false;
  auto give_up = [&](Error err, bool failed) TP_REQUIRES(mu) -> Status {
    s.state = failed ? ModelState::kFailed : prev_state;
    if (failed) {
      s.last_error = err.message;
      ++stats.load_failures;
      ResidencyEvent ev = make_event(s.config.name, device_name_of(s), s.tier, Tier::kDevice, reason);
      ev.failed = true;
      ev.error = err.message;
      record_event(std::move(ev));
    }
    if (placed_here && s.host_bytes == 0) s.device = -1;  // not loaded: placed afresh next time
    cv.notify_all();
    return tl::unexpected(std::move(err));
  };

  if (s.device < 0) {
    // An "auto" model on disk: its size from any backend (the one that
    // opened it before, or the first device's), then the device it suits.
    if (!s.weights)
      if (Status st = open_on(s, 0); !st) return give_up(st.error(), true);
    auto picked = pick_device(s, load_request(s, workspace, true));
    if (!picked) return give_up(picked.error(), false);
    s.device = static_cast<int>(*picked);
    placed_here = true;
  }
  const auto d = static_cast<size_t>(s.device);
  if (!s.weights || s.weights_device != s.device)
    if (Status st = open_on(s, d); !st) return give_up(st.error(), true);

  const AdmissionRequest req = load_request(s, workspace, true);
  if (Status admitted = wait_for_admission(s, d, req, allow_evict, cancel); !admitted)
    return give_up(admitted.error(), false);

  DeviceBooks& dev = devices[d];
  const uint64_t need = req.total();
  dev.reserved_bytes += need;
  const Tier from = s.host_bytes > 0 ? Tier::kHost : Tier::kDisk;
  const TimePoint t0 = options.clock->now();
  mu.unlock();
  TransferContext ctx = transfer_context(s, from, Tier::kDevice, cancel);
  auto called = call_host(weights_label(s), [&] { return s.weights->load_to_device(ctx); });
  Status loaded = called ? std::move(*called) : Status(tl::unexpected(called.error()));
  if (!loaded) drop_weights(s, true, false);  // a failed load leaves nothing on the device
  mu.lock();
  dev.reserved_bytes -= need;
  if (!loaded) {
    bool was_cancel = loaded.error().code == ErrorCode::kCancelled;
    s.host_bytes = s.weights->host_bytes();
    return give_up(loaded.error(), !was_cancel);
  }
  const Duration took = options.clock->now() - t0;
  s.state = ModelState::kResident;
  s.tier = Tier::kDevice;
  s.device_bytes = s.weight_bytes;
  s.host_bytes = s.weights->host_bytes();
  s.last_error.clear();
  s.used = true;
  s.last_use = options.clock->now();
  ++s.load_count;
  s.last_load_time = took;
  uint64_t held = 0, held_here = 0;  // resident models only: those leaving have freed or are freeing theirs
  for (const auto& m : slots)
    if (m->state == ModelState::kResident) {
      held += m->device_bytes;
      if (m->device == s.device) held_here += m->device_bytes;
    }
  dev.peak_bytes = std::max(dev.peak_bytes, held_here);
  count_load(stats, from, s.device_bytes, to_ms(took), held);
  record_event(make_event(s.config.name, dev.name, from, Tier::kDevice, reason, s.device_bytes, to_ms(took)));
  cv.notify_all();
  return ok_status();
}

}  // namespace tp::detail
