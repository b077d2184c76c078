// Internal helpers shared by the C shims: the tp_error object, mapping a C++
// Error onto it, and the TP_CAPI_BEGIN/END guard that keeps every exception
// on this side of the boundary.
#pragma once

#include <exception>
#include <new>
#include <string>

#include "twistedpic/expected.h"
#include "twistedpic/tp.h"

struct tp_error {
  tp_code code;
  std::string message;
};

namespace tp::capi {

// Stores `code`/`message` into *out_err when out_err is non-NULL; returns code.
inline tp_code fail(tp_error** out_err, tp_code code, std::string message) noexcept {
  if (out_err) {
    try {
      *out_err = new tp_error{code, std::move(message)};
    } catch (...) {
      *out_err = nullptr;  // out of memory while reporting: the code still says it all
    }
  }
  return code;
}

inline tp_code fail(tp_error** out_err, const Error& e) noexcept {
  return fail(out_err, static_cast<tp_code>(e.code), e.message);
}

}  // namespace tp::capi

// Wraps a shim body: any exception becomes TP_INTERNAL (or
// TP_RESOURCE_EXHAUSTED for bad_alloc) instead of unwinding into C.
#define TP_CAPI_BEGIN try {
#define TP_CAPI_END(out_err)                                                                   \
  }                                                                                            \
  catch (const std::bad_alloc&) {                                                              \
    return ::tp::capi::fail(out_err, TP_RESOURCE_EXHAUSTED, "out of host memory");             \
  }                                                                                            \
  catch (const std::exception& e) {                                                            \
    return ::tp::capi::fail(out_err, TP_INTERNAL, std::string("internal error: ") + e.what()); \
  }                                                                                            \
  catch (...) {                                                                                \
    return ::tp::capi::fail(out_err, TP_INTERNAL, "internal error: unknown exception");        \
  }

#define TP_CAPI_REQUIRE(arg, out_err)                                                           \
  do {                                                                                          \
    if (!(arg)) return ::tp::capi::fail(out_err, TP_INVALID_ARGUMENT, #arg " must not be NULL"); \
  } while (0)
