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

DeviceMemoryInfo RegistryState::device_info() const {
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

RegistryView RegistryState::view() const {
  RegistryView v;
  v.models.reserve(slots.size());
  for (const auto& s : slots) {
    v.models.push_back(view_of(*s));
    v.device_bytes += s->device_bytes;
    v.host_bytes += s->host_bytes;
  }
  v.device = device_info();
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

Expected<Admission> RegistryState::admit(const ModelSlot& s) const {
  const RegistryView v = view();
  const ModelView incoming = view_of(s);
  TP_ASSIGN_OR_RETURN(const std::vector<Eviction> limit, enforce_limits(v, &incoming));
  AdmissionBudget budget;
  budget.reserved_bytes = reserved_bytes;
  budget.min_free_bytes = config.policy.headroom_bytes(v.device.total_bytes);
  budget.device_budget_bytes = config.device_budget_bytes;
  return decide_admission(v, incoming, budget, limit, [&](const RegistryView& rest, uint64_t shortfall) TP_REQUIRES(mu) {
    return select_victims(rest, shortfall, Reason::kPressure);
  });
}

std::string RegistryState::exhausted_message(const ModelSlot& s, const Admission& a) const {
  return detail::exhausted_message(view_of(s), a);
}

}  // namespace tp::detail
