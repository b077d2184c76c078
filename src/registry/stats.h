// Private (registry): the registry's statistics, RegistryStats, as the
// transitions count them.
//
// The registry keeps one RegistryStats in its books, guarded by its lock, and
// the transitions count into it through these functions; stats() returns a
// snapshot with the bytes held now. (Histogram's own methods live in
// stats.cpp too.)
//
// Threading: functions over a RegistryStats the caller guards (the registry
// calls them with its lock held).
#pragma once

#include <cstdint>

#include "twistedpic/registry.h"

namespace tp::detail {

// A successful load of `bytes` from `from` (kHost: a reload) that took `ms`;
// `held` is what the resident models hold now, for the peak.
void count_load(RegistryStats& s, Tier from, uint64_t bytes, double ms, uint64_t held);

// A model moved off the device for `reason`: `new_host_bytes` are the bytes of
// a host copy made by the move (0: none made), `bytes_returned` the device's
// measured free-memory increase.
void count_eviction(RegistryStats& s, Reason reason, uint64_t new_host_bytes, int64_t bytes_returned);

// `s` with the bytes held now.
RegistryStats snapshot(const RegistryStats& s, uint64_t device_bytes, uint64_t host_bytes);

}  // namespace tp::detail
