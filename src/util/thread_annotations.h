// Private: Clang thread-safety annotations and an annotated mutex, shaped like
// absl/base/thread_annotations.h and absl::Mutex / absl::MutexLock.
//
//   class Cache {
//     tp::detail::Mutex mu_;
//     uint64_t bytes_ TP_GUARDED_BY(mu_) = 0;
//     void evict() TP_REQUIRES(mu_);          // callers hold mu_
//     void add(uint64_t n) TP_EXCLUDES(mu_) {
//       tp::detail::MutexLock lock(mu_);
//       bytes_ += n;
//     }
//   };
//
// Clang checks them with -Wthread-safety (the ctest core.thread_safety_analysis
// compiles the annotated sources with -Werror=thread-safety); other compilers
// see no-ops. Waiting: CondVar (std::condition_variable_any) waits on the
// Mutex itself, `while (!ready_) cv_.wait(mu_);`, inside a function that
// REQUIRES it, so the analysis sees the guarded reads with the lock held.
//
// Threading: Mutex is a std::mutex; MutexLock is a scoped lock owned by one
// thread, which may unlock() and lock() it again before its scope ends.
#pragma once

#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define TP_THREAD_ANNOTATION_(x) __attribute__((x))
#else
#define TP_THREAD_ANNOTATION_(x)
#endif

#define TP_CAPABILITY(x) TP_THREAD_ANNOTATION_(capability(x))
#define TP_SCOPED_CAPABILITY TP_THREAD_ANNOTATION_(scoped_lockable)
#define TP_GUARDED_BY(x) TP_THREAD_ANNOTATION_(guarded_by(x))
#define TP_PT_GUARDED_BY(x) TP_THREAD_ANNOTATION_(pt_guarded_by(x))
#define TP_ACQUIRED_BEFORE(...) TP_THREAD_ANNOTATION_(acquired_before(__VA_ARGS__))
#define TP_ACQUIRED_AFTER(...) TP_THREAD_ANNOTATION_(acquired_after(__VA_ARGS__))
#define TP_REQUIRES(...) TP_THREAD_ANNOTATION_(requires_capability(__VA_ARGS__))
#define TP_EXCLUDES(...) TP_THREAD_ANNOTATION_(locks_excluded(__VA_ARGS__))
#define TP_ACQUIRE(...) TP_THREAD_ANNOTATION_(acquire_capability(__VA_ARGS__))
#define TP_RELEASE(...) TP_THREAD_ANNOTATION_(release_capability(__VA_ARGS__))
#define TP_RETURN_CAPABILITY(x) TP_THREAD_ANNOTATION_(lock_returned(x))
#define TP_NO_THREAD_SAFETY_ANALYSIS TP_THREAD_ANNOTATION_(no_thread_safety_analysis)

namespace tp::detail {

// A std::mutex the analysis knows about.
class TP_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() TP_ACQUIRE() { mu_.lock(); }
  void unlock() TP_RELEASE() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

// Holds a Mutex for its scope (std::lock_guard / absl::MutexLock); unlock()
// and lock() release and retake it within the scope.
class TP_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) TP_ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() TP_RELEASE() {
    if (held_) mu_.unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void unlock() TP_RELEASE() {
    mu_.unlock();
    held_ = false;
  }
  void lock() TP_ACQUIRE() {
    mu_.lock();
    held_ = true;
  }

 private:
  Mutex& mu_;
  bool held_ = true;
};

// Waits on a Mutex (any BasicLockable): cv.wait(mu), cv.wait_for(mu, d), ...
using CondVar = std::condition_variable_any;

}  // namespace tp::detail
