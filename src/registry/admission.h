// Private (registry): admission, the decision whether a model fits on the
// device and which models must leave first.
//
// Pure: a function of the values it is given (a snapshot of the registry's
// books as a RegistryView, the budget numbers, and the memory policies'
// answers), with no locks and no registry state, so that it is unit-tested on
// plain values (tests/unit/registry/admission_test.cpp). The registry builds
// the inputs and acts on the answer with its lock held (RegistryState::admit
// and RegistryState::load).
//
// The registry admits per device: the view holds that device's models and
// its memory, the budget that device's numbers.
//
// The rules:
//   need      = the request: the incoming model's weight bytes + its
//               workspace reserve + the backend's load scratch (a resident
//               model asking for workspace: the workspace alone);
//   available = the device's free bytes, minus the bytes reserved by admitted
//               loads still in flight, minus the min_free headroom; with a
//               device budget, at most the budget minus what the registry
//               holds (weights and the backend's scratch pool) and has reserved;
//   evictions = first the policies' limit evictions (LRU), then, while they
//               leave a shortfall, the victims a VictimOrder names for it
//               (the registry's: the policy chain's select_victims, falling
//               back to rank_victims: lowest priority, cheapest to reload,
//               least recently used first; take_ranked() trims a policy's
//               answer to the shortfall). Only legal ones are kept, each
//               once: resident, unleased, unpinned, not the incoming model,
//               and leaving for the host or disk;
//   fits      = available + evicted >= need.
// Admission also reports the bytes held by leased models and evictable ones,
// whether other models are moving (waiting may then help), and could_fit
// (whether it would fit once every lease ended: if not, waiting is in vain),
// for the wait loop and the kResourceExhausted message (exhausted_message()).
//
// Threading: pure functions over values; call from any thread. A VictimOrder
// runs on the calling thread, during the call.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "twistedpic/expected.h"
#include "twistedpic/memory_policy.h"

namespace tp::detail {

struct AdmissionBudget {
  uint64_t reserved_bytes = 0;       // admitted loads in flight, not on the device yet
  uint64_t min_free_bytes = 0;       // headroom to leave free (PolicyConfig::headroom_bytes)
  uint64_t device_budget_bytes = 0;  // the registry's budget on the device; 0: none
  uint64_t scratch_bytes = 0;        // the backend's scratch pool held there (WeightBackend::scratch_bytes_held)
  std::string device_name;           // for the message
};

// What the incoming model asks for.
struct AdmissionRequest {
  uint64_t weight_bytes = 0;     // 0: the model is resident; only its workspace is asked for
  uint64_t workspace_bytes = 0;  // max(ModelConfig::workspace_bytes, AcquireOptions::workspace_bytes)
  uint64_t scratch_bytes = 0;    // ModelWeights::load_scratch_bytes() of a load
  uint64_t total() const { return weight_bytes + workspace_bytes + scratch_bytes; }
};

// What admission found: whether the model fits, and the evictions that make it fit.
struct Admission {
  uint64_t need = 0;             // weights + workspace + load scratch (request.total())
  AdmissionRequest request;
  uint64_t avail = 0;            // usable now, before evictions
  std::vector<Eviction> evictions;
  uint64_t evicted_bytes = 0;    // device bytes the evictions free
  uint64_t evictable_bytes = 0;  // held by resident, unleased, unpinned models
  uint64_t leased_bytes = 0;     // held by leased models
  bool busy = false;             // other loads or unloads in flight: waiting may help
  // Whether it could fit were every lease to end: need <= available +
  // evictable + leased. False: waiting for leases is in vain.
  bool could_fit = false;
  bool fits = false;
  uint64_t headroom = 0;         // the budget's min_free_bytes, for the message
  DeviceMemoryInfo device;       // the view's device, for the evictions' events
  std::string device_name;       // the budget's, for the message
};

// Victims freeing at least `shortfall` bytes, chosen among `rest`: the view
// with the models the limit evictions take marked kUnloading. An error (a
// policy threw) fails the admission.
using VictimOrder = std::function<Expected<std::vector<Eviction>>(const RegistryView& rest, uint64_t shortfall)>;

// True when a model in `state` with `leases` may be moved to `to` by a
// policy's decision: resident, unleased, unpinned, and off the device.
bool is_legal_eviction(ModelState state, uint32_t leases, bool pinned, Tier to);

// Admits `incoming` (a model of `view`, or one shaped like it) into `view`.
// `limit_evictions` are the policies' enforce_limits() answers; `victims` is
// asked only when they leave a shortfall. Errors: only the VictimOrder's.
// A policy's victims are a ranking, cheapest first: the legal ones
// (is_legal_eviction on `view`), each model once, in that order, until their
// device bytes cover `need`. The registry applies it to every policy's answer,
// for admission and for pressure, so a policy that ranks every candidate costs
// no more models than needed.
std::vector<Eviction> take_ranked(const RegistryView& view, const std::vector<Eviction>& ranking, uint64_t need);

// The incoming model (in `view` when it is resident or loading) is never a
// victim, and its own bytes count as neither evictable nor leased.
Expected<Admission> decide_admission(const RegistryView& view, const ModelView& incoming, const AdmissionBudget& budget,
                                     const AdmissionRequest& request, const std::vector<Eviction>& limit_evictions,
                                     const VictimOrder& victims);
// The same with the request of a load: the incoming's weight bytes and its
// configured workspace.
Expected<Admission> decide_admission(const RegistryView& view, const ModelView& incoming, const AdmissionBudget& budget,
                                     const std::vector<Eviction>& limit_evictions, const VictimOrder& victims);

// The kResourceExhausted message of a refused admission: "cannot load '<m>':
// needs N (weights W + workspace S[ + load scratch C]) on <device>, free F
// (after a headroom of H), evictable E, held by leased models L"; for a
// workspace request "cannot run '<m>': needs N of workspace beside its loaded
// weights on <device>, free F ...".
std::string exhausted_message(const ModelView& incoming, const Admission& a);

}  // namespace tp::detail
