// Must NOT pass Clang's thread-safety analysis: the ctest
// core.thread_safety_analysis_catches_violations expects these errors, which
// shows that src/core/thread_annotations.h's macros are live under clang (and
// that the core.thread_safety_analysis check has teeth).
#include "util/thread_annotations.h"

namespace {

struct Books {
  tp::detail::Mutex mu;
  int bytes TP_GUARDED_BY(mu) = 0;
  void add_locked() TP_REQUIRES(mu) { ++bytes; }
};

}  // namespace

int main() {
  Books b;
  ++b.bytes;       // error: writing 'bytes' requires holding mutex 'b.mu'
  b.add_locked();  // error: calling 'add_locked' requires holding mutex 'b.mu'
  {
    tp::detail::MutexLock lock(b.mu);
    lock.unlock();
    ++b.bytes;  // error: released above
  }
  return 0;
}
