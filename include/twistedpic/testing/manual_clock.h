// twistedpic testing: ManualClock, a Clock (twistedpic/clock.h) that moves
// only when a test advances it, so that idle timeouts and last-use ordering
// are tested without sleeping. Pass it as RegistryOptions::clock.
//
// Installed for users' own tests; not for production use.
//
// Threading: safe from any thread (now() and advance() are atomic).
#pragma once

#include <atomic>
#include <chrono>

#include "twistedpic/clock.h"

namespace tp {
inline namespace v0 {

// Starts at an arbitrary fixed point well after the epoch.
class ManualClock final : public Clock {
 public:
  TimePoint now() const override { return TimePoint(Duration(ticks_.load(std::memory_order_acquire))); }
  bool is_real_time() const override { return false; }
  void advance(Duration d) { ticks_.fetch_add(d.count(), std::memory_order_acq_rel); }

 private:
  std::atomic<Duration::rep> ticks_{std::chrono::duration_cast<Duration>(std::chrono::hours(1)).count()};
};

}  // namespace v0
}  // namespace tp
