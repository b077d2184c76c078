// twistedpic: the vocabulary of model residency, shared by the registry, the
// memory policies, the events and the C ABI (values equal the C constants).
//
// Threading: value types and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "twistedpic/export.h"

namespace tp {
inline namespace v0 {

// Where a model's weights are. A model on the device may also keep a pinned
// host copy (weights are immutable), which makes its next offload free.
enum class Tier : int32_t { kDevice = 0, kHost = 1, kDisk = 2 };

enum class ModelState : int32_t {
  kUnloaded = 0,   // only on disk
  kLoading = 1,    // moving to the device; acquirers wait for this one load
  kResident = 2,   // on the device, usable
  kOffloaded = 3,  // a pinned host copy, not on the device
  kUnloading = 4,  // leaving the device
  kFailed = 5,     // the last load failed; the next acquire retries
};

// Why a residency transition happened.
enum class Reason : int32_t {
  kLazy = 0,         // first acquire
  kEager = 1,        // loaded at start
  kTtl = 2,          // idle timeout
  kLru = 3,          // LRU count or byte limit
  kPressure = 4,     // free device memory below the headroom, or admission of another model
  kExplicit = 5,     // preload()/unload() by the host
  kUnloadAfter = 6,  // last lease released under unload-after
};

TP_EXPORT std::string_view tier_name(Tier t) noexcept;         // "device" | "host" | "disk"
TP_EXPORT std::string_view state_name(ModelState s) noexcept;  // "unloaded" | "loading" | ...
TP_EXPORT std::string_view reason_name(Reason r) noexcept;     // "lazy" | ... | "unload-after"
TP_EXPORT std::optional<Tier> tier_from_name(std::string_view name) noexcept;

}  // namespace v0
}  // namespace tp
