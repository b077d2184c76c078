#include "twistedpic/residency.h"

namespace tp {
inline namespace v0 {

std::string_view tier_name(Tier t) noexcept {
  switch (t) {
    case Tier::kDevice: return "device";
    case Tier::kHost: return "host";
    case Tier::kDisk: return "disk";
  }
  return "?";
}

std::string_view state_name(ModelState s) noexcept {
  switch (s) {
    case ModelState::kUnloaded: return "unloaded";
    case ModelState::kLoading: return "loading";
    case ModelState::kResident: return "resident";
    case ModelState::kOffloaded: return "offloaded";
    case ModelState::kUnloading: return "unloading";
    case ModelState::kFailed: return "failed";
  }
  return "?";
}

std::string_view reason_name(Reason r) noexcept {
  switch (r) {
    case Reason::kLazy: return "lazy";
    case Reason::kEager: return "eager";
    case Reason::kTtl: return "ttl";
    case Reason::kLru: return "lru";
    case Reason::kPressure: return "pressure";
    case Reason::kExplicit: return "explicit";
    case Reason::kUnloadAfter: return "unload-after";
  }
  return "?";
}

std::optional<Tier> tier_from_name(std::string_view name) noexcept {
  if (name == "device") return Tier::kDevice;
  if (name == "host") return Tier::kHost;
  if (name == "disk") return Tier::kDisk;
  return std::nullopt;
}

}  // namespace v0
}  // namespace tp
