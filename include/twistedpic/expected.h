// twistedpic: Expected<T>, the return type of every fallible function.
//
// Expected<T> is tl::expected<T, Error> (C++20: nvcc 13 has no std::expected).
// Status is Expected<void>. Helpers build the unexpected side:
//
//   if (steps <= 0) return tp::invalid_argument("steps must be positive, got " + std::to_string(steps));
//   TP_TRY(registry.preload("sd3"));
//   TP_ASSIGN_OR_RETURN(auto lease, registry.acquire("sd3"));
//
// Threading: value types; see error.h.
#pragma once

#include <string>
#include <utility>

#include <tl/expected.hpp>

#include "twistedpic/error.h"

namespace tp {
inline namespace v0 {

template <class T>
using Expected = tl::expected<T, Error>;
using Status = Expected<void>;

inline tl::unexpected<Error> make_error(ErrorCode code, std::string message) {
  return tl::unexpected<Error>(Error{code, std::move(message)});
}
inline tl::unexpected<Error> invalid_argument(std::string m) { return make_error(ErrorCode::kInvalidArgument, std::move(m)); }
inline tl::unexpected<Error> not_found(std::string m) { return make_error(ErrorCode::kNotFound, std::move(m)); }
inline tl::unexpected<Error> already_exists(std::string m) { return make_error(ErrorCode::kAlreadyExists, std::move(m)); }
inline tl::unexpected<Error> resource_exhausted(std::string m) { return make_error(ErrorCode::kResourceExhausted, std::move(m)); }
inline tl::unexpected<Error> failed_precondition(std::string m) { return make_error(ErrorCode::kFailedPrecondition, std::move(m)); }
inline tl::unexpected<Error> cancelled(std::string m) { return make_error(ErrorCode::kCancelled, std::move(m)); }
inline tl::unexpected<Error> aborted(std::string m) { return make_error(ErrorCode::kAborted, std::move(m)); }
inline tl::unexpected<Error> unimplemented(std::string m) { return make_error(ErrorCode::kUnimplemented, std::move(m)); }
inline tl::unexpected<Error> internal_error(std::string m) { return make_error(ErrorCode::kInternal, std::move(m)); }
inline tl::unexpected<Error> unavailable(std::string m) { return make_error(ErrorCode::kUnavailable, std::move(m)); }
inline tl::unexpected<Error> data_loss(std::string m) { return make_error(ErrorCode::kDataLoss, std::move(m)); }

inline Status ok_status() { return {}; }

}  // namespace v0
}  // namespace tp

#define TP_CONCAT_INNER_(a, b) a##b
#define TP_CONCAT_(a, b) TP_CONCAT_INNER_(a, b)

// Evaluates `expr` (an Expected<T>); on error returns its Error from the
// enclosing function, which must return some Expected<U>.
#define TP_TRY(expr)                                                 \
  do {                                                               \
    auto&& tp_try_result_ = (expr);                                  \
    if (!tp_try_result_) return ::tl::unexpected(std::move(tp_try_result_).error()); \
  } while (0)

// `TP_ASSIGN_OR_RETURN(auto x, f());` declares x from f()'s value or returns f()'s error.
#define TP_ASSIGN_OR_RETURN(decl, expr) TP_ASSIGN_OR_RETURN_IMPL_(TP_CONCAT_(tp_aor_, __LINE__), decl, expr)
#define TP_ASSIGN_OR_RETURN_IMPL_(tmp, decl, expr)                  \
  auto tmp = (expr);                                                \
  if (!tmp) return ::tl::unexpected(std::move(tmp).error());        \
  decl = std::move(tmp).value()

// Aborts with file:line when an internal invariant is broken. Never used for
// caller input, which gets an Error instead.
#define TP_ASSERT(cond)                                                            \
  do {                                                                             \
    if (!(cond)) ::tp::detail::assert_fail(#cond, __FILE__, __LINE__);           \
  } while (0)

namespace tp::detail {
[[noreturn]] TP_EXPORT void assert_fail(const char* cond, const char* file, int line) noexcept;
}  // namespace tp::detail
