// twistedpic: the time source of the registry, injectable so that idle
// timeouts and last-use ordering are tested without sleeping.
//
// Threading: SteadyClock and ManualClock are safe to use from any thread.
#pragma once

#include <atomic>
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

// A clock that moves only when advance() is called. Starts at an arbitrary
// fixed point well after the epoch.
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
