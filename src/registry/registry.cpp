// ModelRegistry: leases, single-flight loads, admission, tiers and policies.
//
// Locking: one mutex (Core::mu) guards every Entry's bookkeeping, the stats
// and the pending events. Clang checks it (src/core/thread_annotations.h;
// the ctest core.thread_safety_analysis): Core's own fields are GUARDED_BY
// their mutex and every method that reads the books REQUIRES mu. (An Entry's
// fields cannot name their Core's mutex; the REQUIRES on the methods that
// touch them stand in.) Methods that move weights release and retake mu
// themselves (mu.unlock() / mu.lock()) and return with it held. Weights move with the mutex released: the entry's
// state (kLoading or kUnloading) gives the moving thread exclusive use of its
// ModelWeights, and other threads wait on Core::cv for the state to settle.
// Events and the cache clean-up run with the mutex released (flush()).
// Lock order: registry -> device monitor (docs/threading.md).
//
// Host code never unwinds through the registry: every call into a memory
// policy, the weight backend and its weights, the device monitor, an event
// callback or the clean-up step goes through call_host() or a try/catch. An
// exception from a decision on a request's path (admission, preload, plan)
// fails that request with kInternal "policy '<name>' threw: <what>" after
// rolling the transition back; one on a path with no caller to tell (a
// release, tick(), the background thread, a notification) is logged at error
// level and that policy's answer is ignored.
#include "twistedpic/registry.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <type_traits>
#include <unistd.h>
#include <utility>

#include "util/bytes.h"
#include "util/system.h"
#include "util/thread_annotations.h"
#include "twistedpic/log.h"

namespace tp {
inline namespace v0 {

struct ModelLease::Entry {
  ModelConfig config;
  Tier unload_after = Tier::kDevice;
  double idle_timeout_s = -1;
  Tier idle_unload_to = Tier::kHost;

  std::unique_ptr<ModelWeights> weights;  // set once, by the thread that first loads
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

namespace {

double to_ms(Duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

ResidencyEvent make_event(const std::string& model, Tier from, Tier to, Reason reason, uint64_t bytes = 0, double ms = 0) {
  ResidencyEvent ev;
  ev.model = model;
  ev.from = from;
  ev.to = to;
  ev.reason = reason;
  ev.bytes = bytes;
  ev.ms = ms;
  return ev;
}

uint64_t sub_sat(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

// What the exception being handled says. Call only inside a catch block.
std::string current_exception_text() {
  try {
    throw;
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

// Runs host code: its result, or kInternal "<who> threw: <what>".
template <class F>
auto call_host(const std::string& who, F&& f) -> Expected<std::invoke_result_t<F&>> {
  try {
    if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
      f();
      return {};
    } else {
      return f();
    }
  } catch (...) {
    return internal_error(who + " threw: " + current_exception_text());
  }
}

// "policy '<name>'", for messages; name() is host code too.
std::string policy_label(const MemoryPolicy& p) {
  try {
    return "policy '" + std::string(p.name()) + "'";
  } catch (...) {
    return "a policy (whose name() threw)";
  }
}

// For host code on a path that cannot return an error: logs and drops it.
void log_host_error(const Error& e, std::string_view what_next) {
  TP_LOG(kError, "registry", e.message << "; " << what_next);
}


}  // namespace

void Histogram::record(double ms) {
  size_t i = 0;
  while (i < kBoundsMs.size() && ms > kBoundsMs[i]) ++i;
  ++buckets[i];
  ++count;
  sum_ms += ms;
  max_ms = std::max(max_ms, ms);
}

double Histogram::quantile(double q) const {
  if (count == 0) return 0;
  auto target = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count)));
  if (target == 0) target = 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets.size(); ++i) {
    seen += buckets[i];
    if (seen >= target) return i < kBoundsMs.size() ? std::min(kBoundsMs[i], max_ms) : max_ms;
  }
  return max_ms;
}

// What admission found: whether the model fits, and the evictions that make it fit.
struct Admission {
  uint64_t need = 0;
  uint64_t avail = 0;
  std::vector<Eviction> evictions;
  uint64_t evicted_bytes = 0;
  uint64_t evictable_bytes = 0;
  uint64_t leased_bytes = 0;
  bool busy = false;  // other loads or unloads in flight: waiting may help
  bool fits = false;
};

struct ModelLease::Core {
  using Mutex = detail::Mutex;
  using MutexLock = detail::MutexLock;

  // Set by create(), then read-only: no lock.
  RegistryConfig config;
  RegistryOptions options;
  std::vector<std::shared_ptr<MemoryPolicy>> chain;
  uint64_t host_budget = 0;
  std::vector<std::unique_ptr<Entry>> entries;  // the vector; each Entry's fields are guarded by mu
  std::map<std::string, Entry*, std::less<>> by_name;

  mutable Mutex mu;
  detail::CondVar cv;                              // entry states and leases changed (waits on mu)
  uint64_t reserved_bytes TP_GUARDED_BY(mu) = 0;  // admitted loads in flight
  uint64_t host_inflight TP_GUARDED_BY(mu) = 0;   // host copies being made by evictions in flight
  RegistryStats stats TP_GUARDED_BY(mu);
  std::vector<ResidencyEvent> pending TP_GUARDED_BY(mu);  // emitted by flush()
  bool clean_pending TP_GUARDED_BY(mu) = false;
  bool closed TP_GUARDED_BY(mu) = false;

  Mutex subscribers_mu;  // never held while taking mu
  detail::CondVar dispatch_done;
  std::map<int, std::shared_ptr<EventCallback>> subscribers TP_GUARDED_BY(subscribers_mu);
  int next_subscriber TP_GUARDED_BY(subscribers_mu) = 1;
  int dispatching TP_GUARDED_BY(subscribers_mu) = 0;  // flush() calls delivering events now

  // Set on a thread while it delivers events, so that unsubscribe() from
  // inside a callback does not wait for itself.
  static thread_local bool in_callback;

  // Waits until no event is being delivered (unless called from a callback).
  void wait_dispatch() TP_REQUIRES(subscribers_mu) {
    if (in_callback) return;
    while (dispatching != 0) dispatch_done.wait(subscribers_mu);
  }

  std::thread background;
  detail::CondVar background_cv;  // waits on mu
  bool stop TP_GUARDED_BY(mu) = false;
  bool kick TP_GUARDED_BY(mu) = false;

  ~Core() {
    for (auto& e : entries) e->weights.reset();  // frees device and host copies
  }

  // ---- lookups and views -------------------------------------------------

  Expected<Entry*> find(std::string_view name) const {
    auto it = by_name.find(name);
    if (it != by_name.end()) return it->second;
    std::string known;
    for (const auto& [n, e] : by_name) known += (known.empty() ? "" : ", ") + n;
    return not_found("model '" + std::string(name) + "' is not configured (configured: " + known + ")");
  }

  ModelView view_of(const Entry& e) const TP_REQUIRES(mu) {
    ModelView v;
    v.config = &e.config;
    v.name = e.config.name;
    v.state = e.state;
    v.tier = e.tier;
    v.device_bytes = e.device_bytes;
    v.host_bytes = e.host_bytes;
    v.weight_bytes = e.weight_bytes;
    v.leases = e.leases;
    v.last_use = e.last_use;
    v.load_count = e.load_count;
    v.last_load_time = e.last_load_time;
    v.unload_after = e.unload_after;
    v.idle_timeout_s = e.idle_timeout_s;
    v.idle_unload_to = e.idle_unload_to;
    return v;
  }

  DeviceMemoryInfo device_info() const {
    auto queried = call_host("device monitor", [&] { return options.monitor->query(); });
    if (!queried) {
      log_host_error(queried.error(), "taken as no information");
      return {};
    }
    auto& info = *queried;
    if (!info) {
      TP_LOG(kWarn, "registry", "device monitor " << options.monitor->name() << ": " << info.error().message);
      return {};
    }
    return *info;
  }

  RegistryView view() const TP_REQUIRES(mu) {
    RegistryView v;
    v.models.reserve(entries.size());
    for (const auto& e : entries) {
      v.models.push_back(view_of(*e));
      v.device_bytes += e->device_bytes;
      v.host_bytes += e->host_bytes;
    }
    v.device = device_info();
    v.host_budget_bytes = host_budget;
    v.now = options.clock->now();
    return v;
  }

  uint64_t host_bytes_held() const TP_REQUIRES(mu) {
    uint64_t sum = 0;
    for (const auto& e : entries) sum += e->host_bytes;
    return sum;
  }

  std::optional<TimePoint> expires_at(const Entry& e) const TP_REQUIRES(mu) {
    ModelView v = view_of(e);
    std::optional<TimePoint> best;
    for (const auto& p : chain) {
      auto t = call_host(policy_label(*p), [&] { return p->expires_at(v); });
      if (!t) {
        log_host_error(t.error(), "its expiry for '" + e.config.name + "' is ignored");
        continue;
      }
      if (*t && (!best || **t < *best)) best = *t;
    }
    return best;
  }

  // A policy may evict only resident, unleased, unpinned models.
  Entry* legal_victim(const Eviction& ev, const Entry* incoming) const TP_REQUIRES(mu) {
    auto it = by_name.find(ev.model);
    if (it == by_name.end()) return nullptr;
    Entry* v = it->second;
    if (v == incoming || v->state != ModelState::kResident || v->leases > 0 || v->config.pinned) return nullptr;
    if (ev.to == Tier::kDevice) return nullptr;
    return v;
  }

  Expected<std::vector<Eviction>> select_victims(const RegistryView& v, uint64_t need, Reason reason) const TP_REQUIRES(mu) {
    for (const auto& p : chain) {
      TP_ASSIGN_OR_RETURN(auto r, call_host(policy_label(*p), [&] { return p->select_victims(v, need, reason); }));
      if (!r.empty()) return r;
    }
    return rank_victims(v, need, reason);
  }

  // Every policy's enforce_limits() answer, in chain order.
  Expected<std::vector<Eviction>> enforce_limits(const RegistryView& v, const ModelView* incoming) const TP_REQUIRES(mu) {
    std::vector<Eviction> out;
    for (const auto& p : chain) {
      TP_ASSIGN_OR_RETURN(auto evs, call_host(policy_label(*p), [&] { return p->enforce_limits(v, incoming); }));
      for (auto& ev : evs) out.push_back(std::move(ev));
    }
    return out;
  }

  // ---- admission ----------------------------------------------------------

  // kInternal when a policy throws.
  Expected<Admission> admit(const Entry& e) const TP_REQUIRES(mu) {
    Admission a;
    a.need = e.weight_bytes + e.config.workspace_bytes;
    RegistryView v = view();
    uint64_t free = sub_sat(v.device.free_bytes, reserved_bytes);
    a.avail = sub_sat(free, config.policy.min_free_bytes);
    if (config.device_budget_bytes)
      a.avail = std::min(a.avail, sub_sat(config.device_budget_bytes, v.device_bytes + reserved_bytes));
    for (const auto& m : entries) {
      if (m->state == ModelState::kResident && m->leases > 0) a.leased_bytes += m->device_bytes;
      if (m->state == ModelState::kResident && m->leases == 0 && !m->config.pinned) a.evictable_bytes += m->device_bytes;
      if (m.get() != &e && m->in_transition()) a.busy = true;
    }

    ModelView incoming = view_of(e);
    TP_ASSIGN_OR_RETURN(const std::vector<Eviction> limit, enforce_limits(v, &incoming));
    auto take = [&](const Eviction& ev) TP_REQUIRES(mu) {
      Entry* victim = legal_victim(ev, &e);
      if (!victim) return;
      for (const auto& x : a.evictions)
        if (x.model == ev.model) return;
      a.evictions.push_back(ev);
      a.evicted_bytes += victim->device_bytes;
    };
    for (const auto& ev : limit) take(ev);
    if (a.avail + a.evicted_bytes < a.need) {
      // Victims are chosen among the models the limits leave.
      RegistryView rest = v;
      for (auto& m : rest.models)
        for (const auto& ev : a.evictions)
          if (m.name == ev.model) m.state = ModelState::kUnloading;
      TP_ASSIGN_OR_RETURN(auto victims, select_victims(rest, a.need - a.avail - a.evicted_bytes, Reason::kPressure));
      for (const auto& ev : victims) take(ev);
    }
    a.fits = a.avail + a.evicted_bytes >= a.need;
    return a;
  }

  std::string exhausted_message(const Entry& e, const Admission& a) const TP_REQUIRES(mu) {
    return "cannot load '" + e.config.name + "': needs " + detail::format_bytes(a.need) + " (weights " + detail::format_bytes(e.weight_bytes) +
           " + workspace " + detail::format_bytes(e.config.workspace_bytes) + "), free " + detail::format_bytes(a.avail) +
           " (after a headroom of " + detail::format_bytes(config.policy.min_free_bytes) + "), evictable " +
           detail::format_bytes(a.evictable_bytes) + ", held by leased models " + detail::format_bytes(a.leased_bytes);
  }

  // ---- transitions (all called and returning with mu held) ----------------

  void wait_stable(Entry& e) TP_REQUIRES(mu) {
    while (e.in_transition()) cv.wait(mu);
  }

  void record_event(ResidencyEvent ev) TP_REQUIRES(mu) { pending.push_back(std::move(ev)); }

  // The context of one transfer of `e`'s weights, reporting to options.on_transfer.
  TransferContext transfer_context(const Entry& e, Tier from, Tier to, const std::atomic<bool>* cancel) const {
    TransferContext ctx;
    ctx.cancel = cancel;
    if (options.on_transfer)
      ctx.progress = [this, name = e.config.name, from, to](uint64_t done, uint64_t total) {
        (void)call_host("the transfer progress callback", [&] { options.on_transfer(name, from, to, done, total); });
      };
    return ctx;
  }

  // "the weights of '<model>'", for messages about host weight code.
  static std::string weights_label(const Entry& e) { return "the weights of '" + e.config.name + "'"; }

  // drop_device() and/or drop_host() on host weights; an exception is logged
  // (the registry then counts the bytes as gone, as the weights promise).
  static void drop_weights(Entry& e, bool device, bool host) {
    if (device)
      if (auto st = call_host(weights_label(e), [&] { e.weights->drop_device(); }); !st)
        log_host_error(st.error(), "in drop_device(); the device copy is taken as dropped");
    if (host)
      if (auto st = call_host(weights_label(e), [&] { e.weights->drop_host(); }); !st)
        log_host_error(st.error(), "in drop_host(); the host copy is taken as dropped");
  }

  // Emits pending events and runs the cache clean-up, with the lock released.
  void flush() TP_REQUIRES(mu) {
    if (pending.empty() && !clean_pending) return;
    std::vector<ResidencyEvent> events;
    events.swap(pending);
    bool clean = clean_pending && config.policy.clean_caches && options.clean_caches;
    clean_pending = false;
    mu.unlock();
    if (clean) {
      try {
        options.clean_caches();
      } catch (...) {
        TP_LOG(kError, "registry", "the clean-up step threw; the exception was dropped");
      }
    }
    std::vector<std::pair<int, std::shared_ptr<EventCallback>>> subs;
    {
      MutexLock g(subscribers_mu);
      for (const auto& sub : subscribers) subs.push_back(sub);
      ++dispatching;
    }
    bool nested = in_callback;
    in_callback = true;
    for (const auto& ev : events) {
      TP_LOG(kInfo, "registry",
             ev.model << ": " << tier_name(ev.from) << " -> " << tier_name(ev.to) << " (" << reason_name(ev.reason) << ", "
                      << ev.bytes << " bytes, " << ev.ms << " ms" << (ev.failed ? ", failed: " + ev.error : "") << ")");
      for (const auto& [id, cb] : subs) {
        {
          MutexLock g(subscribers_mu);
          if (!subscribers.count(id)) continue;  // unsubscribed meanwhile
        }
        try {
          (*cb)(ev);
        } catch (...) {
          TP_LOG(kError, "registry", "an event callback threw; the exception was dropped");
        }
      }
    }
    in_callback = nested;
    {
      MutexLock g(subscribers_mu);
      --dispatching;
    }
    dispatch_done.notify_all();
    mu.lock();
  }

  // Drops host copies, least recently used first, until `bytes` more fit in
  // the host budget. Never touches `keep` or entries in transition.
  bool make_host_room(uint64_t bytes, const Entry* keep) TP_REQUIRES(mu) {
    uint64_t held = host_bytes_held() + host_inflight;  // copies being made count already
    if (held + bytes <= host_budget) return true;
    std::vector<Entry*> copies;
    for (auto& e : entries)
      if (e.get() != keep && e->host_bytes > 0 && !e->in_transition()) copies.push_back(e.get());
    uint64_t droppable = 0;
    for (Entry* c : copies) droppable += c->host_bytes;
    if (held - droppable + bytes > host_budget) return false;  // would drop copies in vain
    std::sort(copies.begin(), copies.end(), [](Entry* a, Entry* b) { return a->last_use < b->last_use; });
    for (Entry* c : copies) {
      if (held + bytes <= host_budget) break;
      held -= c->host_bytes;
      ResidencyEvent ev = make_event(c->config.name, Tier::kHost, Tier::kDisk, Reason::kLru, c->host_bytes);
      drop_weights(*c, false, true);
      c->host_bytes = 0;
      if (c->state == ModelState::kOffloaded || c->state == ModelState::kFailed) {
        c->tier = Tier::kDisk;
        if (c->state == ModelState::kOffloaded) c->state = ModelState::kUnloaded;
        record_event(std::move(ev));
      }
    }
    return held + bytes <= host_budget;
  }

  // Moves a resident, unleased model off the device.
  UnloadReport evict(Entry& e, Tier to, Reason reason) TP_REQUIRES(mu) {
    TP_ASSERT(e.state == ModelState::kResident && e.leases == 0 && to != Tier::kDevice);
    if (to == Tier::kHost && !make_host_room(e.host_bytes ? 0 : e.device_bytes, &e)) to = Tier::kDisk;
    e.state = ModelState::kUnloading;
    uint64_t bytes = e.device_bytes;
    const uint64_t host_reserved = to == Tier::kHost && e.host_bytes == 0 ? bytes : 0;
    host_inflight += host_reserved;
    uint64_t free_before = device_info().free_bytes;
    TimePoint t0 = options.clock->now();
    bool had_host = e.host_bytes > 0;

    mu.unlock();
    Status moved = ok_status();
    if (to == Tier::kHost) {
      auto offloaded = call_host(weights_label(e), [&] { return e.weights->offload_to_host(transfer_context(e, Tier::kDevice, Tier::kHost, nullptr)); });
      moved = offloaded ? std::move(*offloaded) : Status(tl::unexpected(offloaded.error()));
      if (!moved) {
        TP_LOG(kWarn, "registry", e.config.name << ": no host copy (" << moved.error().message << "); dropping to disk");
        drop_weights(e, true, true);
        to = Tier::kDisk;
      }
    } else {
      drop_weights(e, true, true);
    }
    mu.lock();

    host_inflight -= host_reserved;
    uint64_t free_after = device_info().free_bytes;
    UnloadReport report{Tier::kDevice, to, bytes, static_cast<int64_t>(free_after) - static_cast<int64_t>(free_before)};
    e.state = to == Tier::kHost ? ModelState::kOffloaded : ModelState::kUnloaded;
    e.tier = to;
    e.device_bytes = 0;
    e.host_bytes = e.weights->host_bytes();
    stats.evictions_by_reason[static_cast<size_t>(reason)]++;
    if (to == Tier::kHost && !had_host) stats.bytes_to_host += e.host_bytes;
    if (report.bytes_returned > 0) stats.bytes_returned += static_cast<uint64_t>(report.bytes_returned);
    ResidencyEvent ev = make_event(e.config.name, Tier::kDevice, to, reason, bytes, to_ms(options.clock->now() - t0));
    ev.bytes_returned = report.bytes_returned;
    record_event(std::move(ev));
    clean_pending = true;
    cv.notify_all();
    return report;
  }

  // Evicts the legal ones among `evs`; returns how many it evicted.
  int evict_all(const std::vector<Eviction>& evs, const Entry* incoming) TP_REQUIRES(mu) {
    int n = 0;
    for (const auto& ev : evs) {
      if (Entry* v = legal_victim(ev, incoming)) {
        evict(*v, ev.to, ev.reason);
        ++n;
      }
    }
    return n;
  }

  // The backend's weights for `config` and their device size, or its error;
  // kInternal when the backend or the weights throw.
  Expected<std::pair<std::unique_ptr<ModelWeights>, uint64_t>> open_weights(const ModelConfig& config) const
      TP_EXCLUDES(mu) {
    auto opened = call_host("the weight backend opening '" + config.name + "'",
                            [&]() -> Expected<std::pair<std::unique_ptr<ModelWeights>, uint64_t>> {
                              TP_ASSIGN_OR_RETURN(auto weights, options.backend->open(config));
                              const uint64_t bytes = weights->device_bytes();
                              return std::make_pair(std::move(weights), bytes);
                            });
    if (!opened) return tl::unexpected(opened.error());
    return std::move(*opened);
  }

  // Admits and loads `e` (not resident, not in transition).
  Status load(Entry& e, Reason reason, bool allow_evict, const std::atomic<bool>* cancel) TP_REQUIRES(mu) {
    TP_ASSERT(!e.in_transition() && e.state != ModelState::kResident);
    const ModelState prev_state = e.state;
    e.state = ModelState::kLoading;  // claims the single flight
    auto give_up = [&](Error err, bool failed) TP_REQUIRES(mu) -> Status {
      e.state = failed ? ModelState::kFailed : prev_state;
      if (failed) {
        e.last_error = err.message;
        ++stats.load_failures;
        ResidencyEvent ev = make_event(e.config.name, e.tier, Tier::kDevice, reason);
        ev.failed = true;
        ev.error = err.message;
        record_event(std::move(ev));
      }
      cv.notify_all();
      return tl::unexpected(std::move(err));
    };

    if (!e.weights) {
      mu.unlock();
      auto opened = open_weights(e.config);
      mu.lock();
      if (!opened) return give_up(opened.error(), true);
      e.weight_bytes = opened->second;
      e.weights = std::move(opened->first);
    }

    const auto deadline = std::chrono::steady_clock::now() + config.admission_timeout;
    bool waited = false;
    for (;;) {
      if (closed) return give_up({ErrorCode::kFailedPrecondition, "the registry is shutting down"}, false);
      if (cancel && cancel->load()) return give_up({ErrorCode::kCancelled, "loading '" + e.config.name + "' was cancelled"}, false);
      auto admitted = admit(e);
      if (!admitted) return give_up(admitted.error(), false);  // a policy threw: nothing moved yet
      Admission& a = *admitted;
      if (a.fits && a.evictions.empty()) break;
      if (a.fits && allow_evict) {
        if (evict_all(a.evictions, &e) > 0) continue;
      }
      bool may_wait = a.leased_bytes > 0 || a.busy || reserved_bytes > 0;
      if (may_wait && std::chrono::steady_clock::now() < deadline) {
        if (!waited) ++stats.admission_waits;
        waited = true;
        // In slices, so that a cancel (which does not notify cv) is seen promptly.
        cv.wait_until(mu, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(10)));
        continue;
      }
      ++stats.admission_failures;
      return give_up({ErrorCode::kResourceExhausted, exhausted_message(e, a)}, false);
    }

    const uint64_t need = e.weight_bytes + e.config.workspace_bytes;
    reserved_bytes += need;
    const Tier from = e.host_bytes > 0 ? Tier::kHost : Tier::kDisk;
    const TimePoint t0 = options.clock->now();
    mu.unlock();
    TransferContext ctx = transfer_context(e, from, Tier::kDevice, cancel);
    auto called = call_host(weights_label(e), [&] { return e.weights->load_to_device(ctx); });
    Status loaded = called ? std::move(*called) : Status(tl::unexpected(called.error()));
    if (!loaded) drop_weights(e, true, false);  // a failed load leaves nothing on the device
    mu.lock();
    reserved_bytes -= need;
    if (!loaded) {
      bool was_cancel = loaded.error().code == ErrorCode::kCancelled;
      e.host_bytes = e.weights->host_bytes();
      return give_up(loaded.error(), !was_cancel);
    }
    const Duration took = options.clock->now() - t0;
    e.state = ModelState::kResident;
    e.tier = Tier::kDevice;
    e.device_bytes = e.weight_bytes;
    e.host_bytes = e.weights->host_bytes();
    e.last_error.clear();
    e.used = true;
    e.last_use = options.clock->now();
    ++e.load_count;
    e.last_load_time = took;
    if (from == Tier::kHost) {
      ++stats.reloads;
      stats.reload_ms.record(to_ms(took));
    } else {
      ++stats.loads;
      stats.load_ms.record(to_ms(took));
    }
    stats.bytes_to_device += e.device_bytes;
    uint64_t held = 0;  // resident models only: those leaving have freed or are freeing theirs
    for (const auto& m : entries)
      if (m->state == ModelState::kResident) held += m->device_bytes;
    stats.peak_device_bytes = std::max(stats.peak_device_bytes, held);
    record_event(make_event(e.config.name, from, Tier::kDevice, reason, e.device_bytes, to_ms(took)));
    cv.notify_all();
    return ok_status();
  }

  // Makes `e` resident (waiting out or performing a load).
  Status ensure_resident(Entry& e, Reason reason, bool allow_evict, const std::atomic<bool>* cancel,
                         bool* loaded_here) TP_REQUIRES(mu) {
    for (;;) {
      if (closed) return failed_precondition("the registry is shutting down");
      if (e.state == ModelState::kResident) return ok_status();
      if (e.in_transition()) {
        if (loaded_here) *loaded_here = true;  // waited for a load: a miss
        wait_stable(e);
        continue;
      }
      if (loaded_here) *loaded_here = true;
      TP_TRY(load(e, reason, allow_evict, cancel));
    }
  }

  void release(Entry& e) TP_EXCLUDES(mu) {
    MutexLock lk(mu);
    TP_ASSERT(e.leases > 0);
    --e.leases;
    e.last_use = options.clock->now();
    if (e.leases == 0 && e.state == ModelState::kResident && !closed) {
      RegistryView v = view();
      const ModelView* mv = v.find(e.config.name);
      std::optional<Eviction> act;
      for (const auto& p : chain) {
        auto answer = call_host(policy_label(*p), [&] { return p->on_idle(v, *mv); });
        if (!answer) {
          log_host_error(answer.error(), "in on_idle(" + e.config.name + "); its answer is ignored");
          continue;
        }
        if ((act = std::move(*answer))) break;
      }
      if (act && act->to != Tier::kDevice) {
        evict(e, act->to, act->reason);
      } else if (e.idle_timeout_s == 0) {
        evict(e, e.idle_unload_to, Reason::kTtl);
      }
    }
    cv.notify_all();
    kick = true;
    background_cv.notify_all();
    flush();
  }

  std::optional<TimePoint> tick() TP_REQUIRES(mu) {
    // Idle timeouts.
    TimePoint now = options.clock->now();
    for (auto& e : entries) {
      if (e->state != ModelState::kResident || e->leases > 0) continue;
      if (auto t = expires_at(*e); t && *t <= now) evict(*e, e->idle_unload_to, Reason::kTtl);
    }
    // LRU limits.
    {
      RegistryView v = view();
      std::vector<Eviction> evs;
      for (const auto& p : chain) {
        auto answer = call_host(policy_label(*p), [&] { return p->enforce_limits(v, nullptr); });
        if (!answer) {
          log_host_error(answer.error(), "in enforce_limits(); its answer is ignored");
          continue;
        }
        for (auto& ev : *answer) evs.push_back(std::move(ev));
      }
      evict_all(evs, nullptr);
    }
    // Pressure: keep min_free_bytes free, counting other processes.
    if (config.policy.min_free_bytes > 0) {
      RegistryView v = view();
      if (v.device.total_bytes > 0 && v.device.free_bytes < config.policy.min_free_bytes) {
        uint64_t need = config.policy.min_free_bytes - v.device.free_bytes;
        auto victims = select_victims(v, need, Reason::kPressure);
        if (!victims) log_host_error(victims.error(), "in select_victims(); no eviction for pressure this time");
        int n = victims ? evict_all(*victims, nullptr) : 0;
        if (victims && n == 0)
          TP_LOG(kDebug, "registry", "under pressure (" << v.device.free_bytes << " bytes free) but nothing is evictable");
      }
    }
    std::optional<TimePoint> next;
    for (const auto& e : entries)
      if (auto t = expires_at(*e); t && (!next || *t < *next)) next = t;
    flush();
    return next;
  }

  void background_loop() TP_EXCLUDES(mu) {
    MutexLock lk(mu);
    while (!stop) {
      std::optional<TimePoint> next = tick();
      if (stop) break;
      Duration wait = config.monitor_interval;
      if (next && options.clock->is_real_time())
        wait = std::clamp<Duration>(*next - options.clock->now(), std::chrono::milliseconds(1), wait);
      const auto until = std::chrono::steady_clock::now() + wait;
      while (!stop && !kick)
        if (background_cv.wait_until(mu, until) == std::cv_status::timeout) break;
      kick = false;
    }
  }

  ModelInfo info_of(const Entry& e) const TP_REQUIRES(mu) {
    ModelInfo i;
    i.name = e.config.name;
    i.source = e.config.source;
    i.pipeline_type = e.config.pipeline_type;
    i.dtype = e.config.dtype;
    i.state = e.state;
    i.tier = e.tier;
    i.device_bytes = e.device_bytes;
    i.host_bytes = e.host_bytes;
    i.leases = e.leases;
    i.pinned = e.config.pinned;
    i.priority = e.config.priority;
    if (e.used) i.last_use = e.last_use;
    i.expires_at = expires_at(e);
    i.load_count = e.load_count;
    i.last_load_time = e.last_load_time;
    i.last_error = e.last_error;
    return i;
  }
};

thread_local bool ModelLease::Core::in_callback = false;

// ---- ModelLease -------------------------------------------------------------

ModelLease::ModelLease(std::shared_ptr<Core> core, Entry* entry) : core_(std::move(core)), entry_(entry) {}

ModelLease::ModelLease(ModelLease&& other) noexcept
    : core_(std::move(other.core_)), entry_(std::exchange(other.entry_, nullptr)) {}

ModelLease& ModelLease::operator=(ModelLease&& other) noexcept {
  if (this != &other) {
    release();
    core_ = std::move(other.core_);
    entry_ = std::exchange(other.entry_, nullptr);
  }
  return *this;
}

ModelLease::~ModelLease() { release(); }

const std::string& ModelLease::name() const {
  TP_ASSERT(entry_);
  return entry_->config.name;
}

ModelWeights& ModelLease::weights() const {
  TP_ASSERT(entry_ && entry_->weights);
  return *entry_->weights;
}

void ModelLease::release() {
  if (!entry_) return;
  Entry* e = std::exchange(entry_, nullptr);
  std::shared_ptr<Core> core = std::move(core_);
  core->release(*e);
}  // the last lease of a destroyed registry frees it here

// ---- ModelRegistry ------------------------------------------------------------

ModelRegistry::ModelRegistry(std::shared_ptr<ModelLease::Core> core) : core_(std::move(core)) {}

Expected<std::unique_ptr<ModelRegistry>> ModelRegistry::create(RegistryConfig config, RegistryOptions options) {
  if (!options.backend) return invalid_argument("RegistryOptions.backend is required");
  if (!options.monitor) return invalid_argument("RegistryOptions.monitor is required");
  TP_TRY(validate_registry_config(config));
  if (!options.clock) options.clock = std::make_shared<SteadyClock>();
  for (const auto& p : options.policies)
    if (!p) return invalid_argument("RegistryOptions.policies holds a null policy");

  auto core = std::make_shared<ModelLease::Core>();
  core->host_budget = config.host_budget_bytes.value_or(detail::physical_ram_bytes() / 2);
  core->chain = options.policies;
  for (auto& p : make_builtin_policies(config)) core->chain.push_back(std::move(p));
  for (const auto& m : config.models) {
    auto e = std::make_unique<ModelLease::Entry>();
    e->config = m;
    e->unload_after = m.policy.unload_after.value_or(config.policy.unload_after);
    e->idle_timeout_s = m.policy.idle_timeout_s.value_or(config.policy.idle_timeout_s);
    e->idle_unload_to = m.policy.idle_unload_to.value_or(config.policy.idle_unload_to);
    core->by_name.emplace(m.name, e.get());
    core->entries.push_back(std::move(e));
  }
  core->config = std::move(config);
  core->options = std::move(options);

  std::unique_ptr<ModelRegistry> registry(new ModelRegistry(core));
  {
    ModelLease::Core::MutexLock lk(core->mu);
    RegistryView v = core->view();
    std::vector<std::string> eager;
    for (const auto& p : core->chain) {
      auto names = call_host(policy_label(*p), [&] { return p->preload(v); });
      if (!names) return tl::unexpected(names.error());  // before any load: nothing to roll back
      for (auto& n : *names) eager.push_back(std::move(n));
    }
    for (const auto& name : eager) {
      auto e = core->find(name);
      if (!e || (*e)->state == ModelState::kResident) continue;
      if (auto st = core->ensure_resident(**e, Reason::kEager, /*allow_evict=*/false, nullptr, nullptr); !st)
        TP_LOG(kWarn, "registry", "eager load of '" << name << "' skipped: " << st.error().message);
    }
    core->flush();
  }
  if (core->options.background_thread) core->background = std::thread([c = core.get()] { c->background_loop(); });
  return registry;
}

ModelRegistry::~ModelRegistry() {
  {
    ModelLease::Core::MutexLock lk(core_->mu);
    core_->closed = true;
    core_->stop = true;
  }
  core_->background_cv.notify_all();
  core_->cv.notify_all();
  if (core_->background.joinable()) core_->background.join();
  {
    // No callback runs after the registry is gone, even from a lease released on another thread.
    ModelLease::Core::MutexLock g(core_->subscribers_mu);
    core_->subscribers.clear();
    core_->wait_dispatch();
  }
  // Live leases keep core_ alive; the last one frees the models.
}

std::vector<ModelInfo> ModelRegistry::list() const {
  ModelLease::Core::MutexLock lk(core_->mu);
  std::vector<ModelInfo> out;
  out.reserve(core_->entries.size());
  for (const auto& e : core_->entries) out.push_back(core_->info_of(*e));
  return out;
}

Expected<ModelInfo> ModelRegistry::info(std::string_view name) const {
  ModelLease::Core::MutexLock lk(core_->mu);
  TP_ASSIGN_OR_RETURN(auto* e, core_->find(name));
  return core_->info_of(*e);
}

Expected<ModelLease> ModelRegistry::acquire(std::string_view name, const AcquireOptions& options) {
  ModelLease::Core::MutexLock lk(core_->mu);
  TP_ASSIGN_OR_RETURN(ModelLease::Entry * e, core_->find(name));
  bool missed = false;
  Status st = core_->ensure_resident(*e, Reason::kLazy, true, options.cancel, &missed);
  if (!st) {
    core_->flush();
    return tl::unexpected(st.error());
  }
  ++e->leases;  // taken under the same lock hold that saw the model resident
  e->used = true;
  e->last_use = core_->options.clock->now();
  ++(missed ? core_->stats.misses : core_->stats.hits);
  ModelView v = core_->view_of(*e);
  for (const auto& p : core_->chain)  // a notification: the lease stands whatever it does
    if (auto st = call_host(policy_label(*p), [&] { p->on_access(v); }); !st)
      log_host_error(st.error(), "in on_access(" + e->config.name + "); ignored");
  core_->flush();
  return ModelLease(core_, e);
}

Status ModelRegistry::preload(std::string_view name) {
  ModelLease::Core::MutexLock lk(core_->mu);
  TP_ASSIGN_OR_RETURN(ModelLease::Entry * e, core_->find(name));
  Status st = core_->ensure_resident(*e, Reason::kExplicit, true, nullptr, nullptr);
  core_->flush();
  return st;
}

Expected<UnloadReport> ModelRegistry::unload(std::string_view name, Tier to) {
  if (to == Tier::kDevice) return invalid_argument("unload: the target tier must be host or disk");
  ModelLease::Core::MutexLock lk(core_->mu);
  TP_ASSIGN_OR_RETURN(ModelLease::Entry * e, core_->find(name));
  core_->wait_stable(*e);
  if (e->leases > 0)
    return failed_precondition("model '" + e->config.name + "' has " + std::to_string(e->leases) +
                               " live lease(s); it cannot be unloaded until they are released");
  UnloadReport report{e->tier, e->tier, 0, 0};
  if (e->state == ModelState::kResident) {
    report = core_->evict(*e, to, Reason::kExplicit);
  } else if (to == Tier::kDisk && e->host_bytes > 0) {
    report = {Tier::kHost, Tier::kDisk, e->host_bytes, 0};
    ModelLease::Core::drop_weights(*e, false, true);
    core_->record_event(make_event(e->config.name, Tier::kHost, Tier::kDisk, Reason::kExplicit, e->host_bytes));
    e->host_bytes = 0;
    e->tier = Tier::kDisk;
    if (e->state == ModelState::kOffloaded) e->state = ModelState::kUnloaded;
    ++core_->stats.evictions_by_reason[static_cast<size_t>(Reason::kExplicit)];
  }
  core_->flush();
  return report;
}

Status ModelRegistry::unload_all(Tier to) {
  std::vector<std::string> leased;
  for (const auto& e : core_->entries) {
    auto r = unload(e->config.name, to);
    if (!r) {
      if (r.error().code != ErrorCode::kFailedPrecondition) return tl::unexpected(r.error());
      leased.push_back(e->config.name);
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
  ModelLease::Core::MutexLock lk(core_->mu);
  TP_ASSIGN_OR_RETURN(ModelLease::Entry * e, core_->find(name));
  LoadPlan p;
  p.model = e->config.name;
  if (e->state == ModelState::kResident) {
    p.resident = p.fits = true;
    p.from = Tier::kDevice;
    p.explanation = "'" + p.model + "' is already on the device";
    return p;
  }
  // Admission needs the weights' size: ask the backend when not opened yet.
  ModelLease::Entry probe_entry;
  const ModelLease::Entry* subject = e;
  if (!e->weights) {
    ModelConfig cfg = e->config;
    lk.unlock();
    auto opened = core_->open_weights(cfg);
    lk.lock();
    if (!opened) return tl::unexpected(opened.error());
    probe_entry.config = cfg;
    probe_entry.weight_bytes = opened->second;
    subject = &probe_entry;
  }
  TP_ASSIGN_OR_RETURN(Admission a, core_->admit(*subject));
  p.from = e->host_bytes > 0 ? Tier::kHost : Tier::kDisk;
  p.bytes_to_move = subject->weight_bytes;
  p.needed_bytes = a.need;
  p.free_bytes = a.avail;
  p.evictions = a.evictions;
  p.bytes_evicted = a.evicted_bytes;
  p.fits = a.fits;
  p.explanation = a.fits ? "load '" + p.model + "' from " + std::string(tier_name(p.from)) + ": " +
                               std::to_string(p.bytes_to_move) + " bytes, evicting " + std::to_string(p.evictions.size()) +
                               " model(s) (" + std::to_string(p.bytes_evicted) + " bytes)"
                         : core_->exhausted_message(*subject, a);
  return p;
}

std::optional<TimePoint> ModelRegistry::tick() {
  ModelLease::Core::MutexLock lk(core_->mu);
  return core_->tick();
}

RegistryStats ModelRegistry::stats() const {
  ModelLease::Core::MutexLock lk(core_->mu);
  RegistryStats s = core_->stats;
  s.device_bytes = 0;
  for (const auto& e : core_->entries) s.device_bytes += e->device_bytes;
  s.host_bytes = core_->host_bytes_held();
  return s;
}

const RegistryConfig& ModelRegistry::config() const { return core_->config; }

int ModelRegistry::subscribe(EventCallback callback) {
  ModelLease::Core::MutexLock g(core_->subscribers_mu);
  int id = core_->next_subscriber++;
  core_->subscribers.emplace(id, std::make_shared<EventCallback>(std::move(callback)));
  return id;
}

Status ModelRegistry::unsubscribe(int id) {
  ModelLease::Core::MutexLock g(core_->subscribers_mu);
  if (!core_->subscribers.erase(id)) return not_found("no event subscription with id " + std::to_string(id));
  core_->wait_dispatch();
  return ok_status();
}

}  // namespace v0
}  // namespace tp
