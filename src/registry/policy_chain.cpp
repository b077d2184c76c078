// RegistryState: what the registry shows and asks its memory policies.
//
// Snapshots of the books (ModelView, RegistryView) for the policies, the
// device monitor's report, the policy chain's answers (every call guarded by
// call_host(), host_call.h), and admit(), which feeds the pure admission
// (admission.h) from the books.
//
// Threading: every method here REQUIRES the registry's mutex (except
// device_info(), which only calls the thread-safe monitor) and keeps it held:
// policies run under the lock, one call at a time (docs/threading.md).
#include <algorithm>
#include <optional>

#include "registry/host_call.h"
#include "registry/registry_state.h"

namespace tp::detail {

ModelView RegistryState::view_of(const ModelSlot& s) const {
  ModelView v;
  v.config = &s.config;
  v.name = s.config.name;
  v.state = s.state;
  v.tier = s.tier;
  v.device_bytes = s.device_bytes;
  v.host_bytes = s.host_bytes;
  v.weight_bytes = s.weight_bytes;
  v.leases = s.leases;
  v.last_use = s.last_use;
  v.load_count = s.load_count;
  v.last_load_time = s.last_load_time;
  v.unload_after = s.unload_after;
  v.idle_timeout_s = s.idle_timeout_s;
  v.idle_unload_to = s.idle_unload_to;
  return v;
}

DeviceMemoryInfo RegistryState::device_info(size_t d) const {
  const DeviceBooks& dev = devices[d];
  auto queried = call_host("device monitor", [&] { return dev.monitor->query(); });
  if (!queried) {
    log_host_error(queried.error(), "taken as no information");
    return {};
  }
  auto& info = *queried;
  if (!info) {
    TP_LOG(kWarn, "registry", "device monitor " << dev.monitor->name() << ": " << info.error().message);
    return {};
  }
  return *info;
}

RegistryView RegistryState::view(size_t d) const {
  RegistryView v;
  for (const auto& s : slots) {
    v.host_bytes += s->host_bytes;
    if (s->device != static_cast<int>(d)) continue;
    v.models.push_back(view_of(*s));
    v.device_bytes += s->device_bytes;
  }
  v.device = device_info(d);
  v.device_name = devices[d].name;
  v.host_budget_bytes = host_budget;
  v.now = options.clock->now();
  return v;
}

RegistryView RegistryState::view_all() const {
  RegistryView v;
  v.models.reserve(slots.size());
  for (const auto& s : slots) {
    v.models.push_back(view_of(*s));
    v.device_bytes += s->device_bytes;
    v.host_bytes += s->host_bytes;
  }
  v.device = device_info(0);
  v.device_name = devices[0].name;
  v.host_budget_bytes = host_budget;
  v.now = options.clock->now();
  return v;
}

uint64_t RegistryState::host_bytes_held() const {
  uint64_t sum = 0;
  for (const auto& s : slots) sum += s->host_bytes;
  return sum;
}

uint64_t RegistryState::device_bytes_held() const {
  uint64_t sum = 0;
  for (const auto& s : slots) sum += s->device_bytes;
  return sum;
}

uint64_t RegistryState::device_bytes_held(size_t d) const {
  uint64_t sum = 0;
  for (const auto& s : slots)
    if (s->device == static_cast<int>(d)) sum += s->device_bytes;
  return sum;
}

std::optional<TimePoint> RegistryState::expires_at(const ModelSlot& s) const {
  ModelView v = view_of(s);
  std::optional<TimePoint> best;
  for (const auto& p : chain) {
    auto t = call_host(policy_label(*p), [&] { return p->expires_at(v); });
    if (!t) {
      log_host_error(t.error(), "its expiry for '" + s.config.name + "' is ignored");
      continue;
    }
    if (*t && (!best || **t < *best)) best = *t;
  }
  return best;
}

Expected<std::vector<Eviction>> RegistryState::select_victims(const RegistryView& v, uint64_t need,
                                                              Reason reason) const {
  for (const auto& p : chain) {
    TP_ASSIGN_OR_RETURN(auto r, call_host(policy_label(*p), [&] { return p->select_victims(v, need, reason); }));
    if (!r.empty()) return take_ranked(v, r, need);
  }
  return rank_victims(v, need, reason);
}

Expected<std::vector<Eviction>> RegistryState::enforce_limits(const RegistryView& v, const ModelView* incoming) const {
  std::vector<Eviction> out;
  for (const auto& p : chain) {
    TP_ASSIGN_OR_RETURN(auto evs, call_host(policy_label(*p), [&] { return p->enforce_limits(v, incoming); }));
    for (auto& ev : evs) out.push_back(std::move(ev));
  }
  return out;
}

AdmissionRequest RegistryState::load_request(const ModelSlot& s, uint64_t workspace, bool ask_scratch) const {
  AdmissionRequest req;
  req.weight_bytes = s.weight_bytes;
  req.workspace_bytes = std::max(s.config.workspace_bytes, workspace);
  if (s.weights && ask_scratch) req.scratch_bytes = s.weights->load_scratch_bytes();
  return req;
}

Expected<Admission> RegistryState::admit(const ModelSlot& s, size_t d, const AdmissionRequest& req) const {
  const RegistryView v = view(d);
  const ModelView incoming = view_of(s);
  TP_ASSIGN_OR_RETURN(const std::vector<Eviction> limit, enforce_limits(v, &incoming));
  const DeviceBooks& dev = devices[d];
  AdmissionBudget budget;
  budget.reserved_bytes = dev.reserved_bytes;
  budget.min_free_bytes = config.policy.headroom_bytes(v.device.total_bytes);
  budget.device_budget_bytes = dev.budget_bytes;
  budget.scratch_bytes = dev.backend->scratch_bytes_held();
  budget.device_name = dev.name;
  return decide_admission(v, incoming, budget, req, limit,
                          [&](const RegistryView& rest, uint64_t shortfall) TP_REQUIRES(mu) {
                            return select_victims(rest, shortfall, Reason::kPressure);
                          });
}

Expected<size_t> RegistryState::pick_device(const ModelSlot& s, const AdmissionRequest& req) const {
  // Rank: fits now (nobody queued ahead) before fits after waiting, before
  // cannot fit at all; then the reload cost of the evictions it takes (a
  // victim going to the host tier comes back at PCIe speed, one going to
  // disk is read again), then how many; then the most usable memory.
  struct Score {
    int fit;
    double cost;
    size_t evictions;
    uint64_t avail;
  };
  auto better = [](const Score& a, const Score& b) {
    if (a.fit != b.fit) return a.fit < b.fit;
    if (a.cost != b.cost) return a.cost < b.cost;
    if (a.evictions != b.evictions) return a.evictions < b.evictions;
    return a.avail > b.avail;
  };
  constexpr double kHostToDevice = 20e9, kDiskToDevice = 2e9;  // as rank_victims' nominal bandwidths
  std::optional<Score> best;
  size_t pick = 0;
  for (size_t d = 0; d < devices.size(); ++d) {
    TP_ASSIGN_OR_RETURN(const Admission a, admit(s, d, req));
    Score sc{a.fits && devices[d].admission_queue.empty() ? 0 : a.could_fit ? 1 : 2, 0, a.evictions.size(), a.avail};
    for (const auto& ev : a.evictions)
      if (auto it = by_name.find(ev.model); it != by_name.end())
        sc.cost += static_cast<double>(it->second->device_bytes) / (ev.to == Tier::kHost ? kHostToDevice : kDiskToDevice);
    if (!best || better(sc, *best)) {
      best = sc;
      pick = d;
    }
  }
  return pick;
}

std::string RegistryState::exhausted_message(const ModelSlot& s, const Admission& a) const {
  return detail::exhausted_message(view_of(s), a);
}

}  // namespace tp::detail
