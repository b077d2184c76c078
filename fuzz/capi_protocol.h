// What every C ABI call must do, for the C ABI fuzzers (capi_fuzz,
// capi_generate_fuzz): return a known code and follow the error protocol (an
// error object exactly when requested and failed, carrying the same code and a
// message). TP_INTERNAL (an exception caught at the boundary) is a bug.
// A broken rule aborts, which the fuzzer reports with its input.
#ifndef TWISTEDPIC_FUZZ_CAPI_PROTOCOL_H_
#define TWISTEDPIC_FUZZ_CAPI_PROTOCOL_H_

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "twistedpic/tp.h"

namespace tp_fuzz {

// The caller's file and line come from builtins that GCC and clang 14 share
// (clang 14 has no std::source_location over libstdc++).
inline void check(bool ok, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  if (ok) return;
  std::fprintf(stderr, "check failed at %s:%d\n", file, line);
  std::abort();
}

inline bool known_code(tp_code c) {
  switch (c) {
    case TP_OK: case TP_CANCELLED: case TP_UNKNOWN: case TP_INVALID_ARGUMENT: case TP_NOT_FOUND:
    case TP_ALREADY_EXISTS: case TP_RESOURCE_EXHAUSTED: case TP_FAILED_PRECONDITION: case TP_ABORTED:
    case TP_UNIMPLEMENTED: case TP_INTERNAL: case TP_UNAVAILABLE: case TP_DATA_LOSS:
      return true;
  }
  return false;
}

// One call's optional error object; done() checks the protocol and frees it.
class Err {
 public:
  explicit Err(bool requested) : requested_(requested) {}
  Err(const Err&) = delete;
  Err& operator=(const Err&) = delete;
  ~Err() { tp_error_free(err_); }

  tp_error** ptr() { return requested_ ? &err_ : nullptr; }
  tp_code done(tp_code code) {
    check(known_code(code));
    check(std::strcmp(tp_code_name(code), "") != 0);
    if (code == TP_OK) {
      check(err_ == nullptr);  // untouched on success
    } else if (requested_) {
      check(err_ != nullptr && tp_error_code(err_) == code);
      const char* message = tp_error_message(err_);
      check(message != nullptr && message[0] != '\0');
    }
    check(code != TP_INTERNAL);
    tp_error_free(err_);
    err_ = nullptr;
    return code;
  }

 private:
  bool requested_;
  tp_error* err_ = nullptr;
};

}  // namespace tp_fuzz

#endif  // TWISTEDPIC_FUZZ_CAPI_PROTOCOL_H_
