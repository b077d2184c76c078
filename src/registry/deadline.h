// Private (registry): a deadline on the registry's injected Clock, and how
// long a thread may sleep towards it.
//
// The registry's time is its Clock (RegistryOptions::clock): a deadline is
// clock.now() + timeout and has passed once clock.now() reaches it, so a
// ManualClock drives it (a test advances the clock past the deadline). A
// thread can only sleep in real time, though:
//   - on a real-time clock (SteadyClock, Clock::is_real_time()), wait_time()
//     is the time left on that clock;
//   - on a clock that is not real time (ManualClock), nothing tells a sleeper
//     that the clock moved, so waiters that must see it move sleep in slices,
//     min(wait_time(), slice), and re-check passed(). Such a clock also gets a
//     real-time backstop of the same length: the deadline passes at whichever
//     comes first, so a wait for which nobody advances the clock still ends
//     after `timeout`, as it did before the clock drove it (tests that hold a
//     lease and wait for an admission timeout rely on it).
//
// Threading: a value owned by one thread; the Clock it reads is thread-safe.
// It must not outlive the Clock.
#pragma once

#include <algorithm>
#include <optional>

#include "twistedpic/clock.h"

namespace tp::detail {

class Deadline {
 public:
  Deadline(const Clock& clock, Duration timeout) : clock_(clock), at_(clock.now() + timeout) {
    if (!clock.is_real_time()) backstop_ = real_time().now() + timeout;
  }

  bool passed() const {
    if (clock_.now() >= at_) return true;
    return backstop_ && real_time().now() >= *backstop_;
  }

  // How long to sleep for the deadline to pass (>= 0), were nothing to wake
  // the sleeper; see the file comment for a clock that is not real time.
  Duration wait_time() const {
    const Duration left = backstop_ ? *backstop_ - real_time().now() : at_ - clock_.now();
    return std::max(left, Duration::zero());
  }

 private:
  // The real time that sleeping threads live in, for the backstop.
  static const Clock& real_time() {
    static const SteadyClock clock;
    return clock;
  }

  const Clock& clock_;
  TimePoint at_;                      // on clock_
  std::optional<TimePoint> backstop_;  // on real_time(), when clock_ is not real time
};

}  // namespace tp::detail
