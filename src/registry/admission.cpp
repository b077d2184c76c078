// Admission: pure decision over a snapshot (see admission.h).
#include "registry/admission.h"

#include <algorithm>

#include "util/bytes.h"

namespace tp::detail {

namespace {

uint64_t sub_sat(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

bool in_transition(ModelState s) { return s == ModelState::kLoading || s == ModelState::kUnloading; }

}  // namespace

bool is_legal_eviction(ModelState state, uint32_t leases, bool pinned, Tier to) {
  return state == ModelState::kResident && leases == 0 && !pinned && to != Tier::kDevice;
}

std::vector<Eviction> take_ranked(const RegistryView& view, const std::vector<Eviction>& ranking, uint64_t need) {
  std::vector<Eviction> out;
  uint64_t freed = 0;
  for (const auto& ev : ranking) {
    if (freed >= need) break;
    const ModelView* m = view.find(ev.model);
    if (!m || !is_legal_eviction(m->state, m->leases, m->config->pinned, ev.to)) continue;
    if (std::any_of(out.begin(), out.end(), [&](const Eviction& x) { return x.model == ev.model; })) continue;
    out.push_back(ev);
    freed += m->device_bytes;
  }
  return out;
}

Expected<Admission> decide_admission(const RegistryView& view, const ModelView& incoming, const AdmissionBudget& budget,
                                     const std::vector<Eviction>& limit_evictions, const VictimOrder& victims) {
  AdmissionRequest request;
  request.weight_bytes = incoming.weight_bytes;
  request.workspace_bytes = incoming.config->workspace_bytes;
  return decide_admission(view, incoming, budget, request, limit_evictions, victims);
}

Expected<Admission> decide_admission(const RegistryView& view, const ModelView& incoming, const AdmissionBudget& budget,
                                     const AdmissionRequest& request, const std::vector<Eviction>& limit_evictions,
                                     const VictimOrder& victims) {
  Admission a;
  a.headroom = budget.min_free_bytes;
  a.device = view.device;
  a.device_name = budget.device_name;
  a.request = request;
  a.need = request.total();
  const uint64_t free = sub_sat(view.device.free_bytes, budget.reserved_bytes);
  a.avail = sub_sat(free, budget.min_free_bytes);
  if (budget.device_budget_bytes)
    a.avail = std::min(a.avail, sub_sat(budget.device_budget_bytes,
                                        view.device_bytes + budget.reserved_bytes + budget.scratch_bytes));
  for (const auto& m : view.models) {
    if (m.name == incoming.name) continue;  // its own bytes free nothing for it
    if (m.state == ModelState::kResident && m.leases > 0) a.leased_bytes += m.device_bytes;
    if (m.state == ModelState::kResident && m.leases == 0 && !m.config->pinned) a.evictable_bytes += m.device_bytes;
    if (m.name != incoming.name && in_transition(m.state)) a.busy = true;
  }

  // Legality is judged on the snapshot's states, whatever view a policy saw.
  auto take = [&](const Eviction& ev) {
    const ModelView* victim = view.find(ev.model);
    if (!victim || victim->name == incoming.name) return;
    if (!is_legal_eviction(victim->state, victim->leases, victim->config->pinned, ev.to)) return;
    for (const auto& x : a.evictions)
      if (x.model == ev.model) return;
    a.evictions.push_back(ev);
    a.evicted_bytes += victim->device_bytes;
  };
  for (const auto& ev : limit_evictions) take(ev);
  if (a.avail + a.evicted_bytes < a.need) {
    // Victims are chosen among the models the limits leave, the incoming
    // model excepted (resident, it asks for workspace: as good as leased).
    RegistryView rest = view;
    for (auto& m : rest.models) {
      if (m.name == incoming.name && m.state == ModelState::kResident) ++m.leases;
      for (const auto& ev : a.evictions)
        if (m.name == ev.model) m.state = ModelState::kUnloading;
    }
    TP_ASSIGN_OR_RETURN(auto chosen, victims(rest, a.need - a.avail - a.evicted_bytes));
    for (const auto& ev : chosen) take(ev);
  }
  a.fits = a.avail + a.evicted_bytes >= a.need;
  a.could_fit = a.avail + a.evictable_bytes + a.leased_bytes >= a.need;
  return a;
}

std::string exhausted_message(const ModelView& incoming, const Admission& a) {
  const std::string on = a.device_name.empty() ? "" : " on " + a.device_name;
  std::string head;
  if (a.request.weight_bytes == 0 && a.request.workspace_bytes > 0) {
    head = "cannot run '" + std::string(incoming.name) + "': needs " + format_bytes(a.need) +
           " of workspace beside its loaded weights" + on;
  } else {
    head = "cannot load '" + std::string(incoming.name) + "': needs " + format_bytes(a.need) + " (weights " +
           format_bytes(a.request.weight_bytes) + " + workspace " + format_bytes(a.request.workspace_bytes) +
           (a.request.scratch_bytes ? " + load scratch " + format_bytes(a.request.scratch_bytes) : "") + ")" + on;
  }
  return head + ", free " + format_bytes(a.avail) +  " (after a headroom of " + format_bytes(a.headroom) +
         "), evictable " + format_bytes(a.evictable_bytes) + ", held by leased models " +
         format_bytes(a.leased_bytes);
}

}  // namespace tp::detail
