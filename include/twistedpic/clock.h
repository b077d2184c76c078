// twistedpic: the time source of the registry, injectable so that idle
// timeouts and last-use ordering are tested without sleeping (a ManualClock,
// twistedpic/testing/manual_clock.h).
//
// Threading: SteadyClock is safe to use from any thread; a Clock passed to
// the registry must be too.
#pragma once

#include <chrono>

namespace tp {
inline namespace v0 {

using TimePoint = std::chrono::steady_clock::time_point;
using Duration = std::chrono::steady_clock::duration;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
  // True when now() follows real time, so the registry may sleep until a
  // deadline; a ManualClock only moves when a test advances it.
  virtual bool is_real_time() const { return true; }
};

class SteadyClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
};

}  // namespace v0
}  // namespace tp
