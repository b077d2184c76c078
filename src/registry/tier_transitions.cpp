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

ResidencyEvent make_event(const std::string& model, Tier from, Tier to, Reason reason, uint64_t bytes = 0,
                          double ms = 0) {
  ResidencyEvent ev;
  ev.model = model;
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
    record_event(make_event(s.config.name, Tier::kHost, Tier::kDisk, reason, bytes));
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
  uint64_t free_before = device_info().free_bytes;
  const uint64_t held_before = device_bytes_held();
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
  uint64_t free_after = device_info().free_bytes;
  UnloadReport report{Tier::kDevice, to, bytes, static_cast<int64_t>(free_after) - static_cast<int64_t>(free_before)};
  s.state = to == Tier::kHost ? ModelState::kOffloaded : ModelState::kUnloaded;
  s.tier = to;
  s.device_bytes = 0;
  s.host_bytes = s.weights->host_bytes();
  count_eviction(stats, reason, to == Tier::kHost && !had_host ? s.host_bytes : 0, report.bytes_returned);
  ResidencyEvent ev = make_event(s.config.name, Tier::kDevice, to, reason, bytes, to_ms(options.clock->now() - t0));
  ev.bytes_returned = report.bytes_returned;
  if (seen && reason == Reason::kPressure) {
    ev.ours_bytes = seen->process_bytes ? seen->process_bytes : held_before;
    ev.others_bytes = seen->other_bytes;
  }
  record_event(std::move(ev));
  clean_pending = true;
  cv.notify_all();
  return report;
}

// A policy may evict only resident, unleased, unpinned models.
ModelSlot* RegistryState::legal_victim(const Eviction& ev, const ModelSlot* incoming) const {
  auto it = by_name.find(ev.model);
  if (it == by_name.end()) return nullptr;
  ModelSlot* v = it->second;
  if (v == incoming || !is_legal_eviction(v->state, v->leases, v->config.pinned, ev.to)) return nullptr;
  return v;
}

int RegistryState::evict_all(const std::vector<Eviction>& evs, const ModelSlot* incoming,
                             const DeviceMemoryInfo* seen) {
  int n = 0;
  for (const auto& ev : evs) {
    if (ModelSlot* v = legal_victim(ev, incoming)) {
      evict(*v, ev.to, ev.reason, seen);
      ++n;
    }
  }
  return n;
}

// ---- onto the device --------------------------------------------------------------

Expected<std::pair<std::unique_ptr<ModelWeights>, uint64_t>> RegistryState::open_weights(
    const ModelConfig& config) const {
  auto opened = call_host("the weight backend opening '" + config.name + "'",
                          [&]() -> Expected<std::pair<std::unique_ptr<ModelWeights>, uint64_t>> {
                            TP_ASSIGN_OR_RETURN(auto weights, options.backend->open(config));
                            const uint64_t bytes = weights->device_bytes();
                            return std::make_pair(std::move(weights), bytes);
                          });
  if (!opened) return tl::unexpected(opened.error());
  return std::move(*opened);
}

Status RegistryState::wait_for_admission(ModelSlot& s, bool allow_evict, const std::atomic<bool>* cancel) {
  const Deadline deadline(*options.clock, config.admission_timeout);
  bool queued = false;
  bool cache_released = false;  // once per admission: the cache first, then evictions
  // Every way out leaves the queue, and wakes the waiter now at its front.
  auto leave = [&](Status st) TP_REQUIRES(mu) -> Status {
    if (queued) {
      admission_queue.erase(std::find(admission_queue.begin(), admission_queue.end(), &s));
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
      return leave(tl::unexpected(Error{ErrorCode::kCancelled, "loading '" + s.config.name + "' was cancelled"}));
    }
    auto admitted = admit(s);
    if (!admitted) return leave(tl::unexpected(admitted.error()));  // a policy threw: nothing moved yet
    const Admission& a = *admitted;
    const bool front = admission_queue.empty() || admission_queue.front() == &s;
    if (front) {
      if (a.fits && a.evictions.empty()) return leave(ok_status());
      if (!cache_released && options.clean_caches) {
        // Cached allocator blocks go back to the driver before any model is
        // evicted for room (with mu released); then admission looks again.
        cache_released = true;
        release_cache();
        continue;
      }
      if (a.fits && allow_evict) {
        if (evict_all(a.evictions, &s, &a.device) > 0) continue;
      }
      // Waiting helps when leases may end or other transitions finish, and
      // the model could fit once they have.
      const bool may_wait = a.busy || reserved_bytes > 0 || (a.leased_bytes > 0 && a.could_fit);
      if (!may_wait || deadline.passed()) return refuse(a, "");
    } else if (deadline.passed()) {
      const size_t ahead = queued ? admission_position(s) - 1 : admission_queue.size();
      return refuse(a, " (behind " + std::to_string(ahead) + " earlier load(s) in the admission queue)");
    }
    if (!queued) {
      admission_queue.push_back(&s);
      queued = true;
      ++stats.admission_waits;
    }
    // In slices, so that a cancel (which does not notify cv) and a clock
    // that is not real time are seen promptly.
    cv.wait_for(mu, std::min(deadline.wait_time(), kAdmissionSlice));
  }
}

Status RegistryState::load(ModelSlot& s, Reason reason, bool allow_evict, const std::atomic<bool>* cancel) {
  TP_ASSERT(!s.in_transition() && s.state != ModelState::kResident);
  const ModelState prev_state = s.state;
  s.state = ModelState::kLoading;  // claims the single flight
  auto give_up = [&](Error err, bool failed) TP_REQUIRES(mu) -> Status {
    s.state = failed ? ModelState::kFailed : prev_state;
    if (failed) {
      s.last_error = err.message;
      ++stats.load_failures;
      ResidencyEvent ev = make_event(s.config.name, s.tier, Tier::kDevice, reason);
      ev.failed = true;
      ev.error = err.message;
      record_event(std::move(ev));
    }
    cv.notify_all();
    return tl::unexpected(std::move(err));
  };

  if (!s.weights) {
    mu.unlock();
    auto opened = open_weights(s.config);
    mu.lock();
    if (!opened) return give_up(opened.error(), true);
    s.weight_bytes = opened->second;
    s.weights = std::move(opened->first);
  }

  if (Status admitted = wait_for_admission(s, allow_evict, cancel); !admitted) return give_up(admitted.error(), false);

  const uint64_t need = s.weight_bytes + s.config.workspace_bytes;
  reserved_bytes += need;
  const Tier from = s.host_bytes > 0 ? Tier::kHost : Tier::kDisk;
  const TimePoint t0 = options.clock->now();
  mu.unlock();
  TransferContext ctx = transfer_context(s, from, Tier::kDevice, cancel);
  auto called = call_host(weights_label(s), [&] { return s.weights->load_to_device(ctx); });
  Status loaded = called ? std::move(*called) : Status(tl::unexpected(called.error()));
  if (!loaded) drop_weights(s, true, false);  // a failed load leaves nothing on the device
  mu.lock();
  reserved_bytes -= need;
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
  uint64_t held = 0;  // resident models only: those leaving have freed or are freeing theirs
  for (const auto& m : slots)
    if (m->state == ModelState::kResident) held += m->device_bytes;
  count_load(stats, from, s.device_bytes, to_ms(took), held);
  record_event(make_event(s.config.name, from, Tier::kDevice, reason, s.device_bytes, to_ms(took)));
  cv.notify_all();
  return ok_status();
}

}  // namespace tp::detail
