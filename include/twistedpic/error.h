// twistedpic: error values shared by the C++ API and the C ABI.
//
// Every fallible function returns tp::Expected<T> (see expected.h). An Error is
// a code plus a human message that names the thing that failed ("config.json:
// models.sd3.dtype: unknown dtype 'bf17'"). Codes use Abseil's canonical
// numbering and are the C ABI's tp_code values: they are fixed forever and only
// ever appended to.
//
// Threading: Error is a plain value type; distinct objects may be used from
// distinct threads freely, a single object needs external synchronization.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "twistedpic/export.h"

namespace tp {
inline namespace v0 {

enum class ErrorCode : int32_t {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kNotFound = 5,
  kAlreadyExists = 6,
  kResourceExhausted = 8,  // device or host memory cannot be had
  kFailedPrecondition = 9,
  kAborted = 10,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,  // a file is corrupt or truncated
};

// Returns the stable upper-snake name of `code` ("INVALID_ARGUMENT"), or
// "UNKNOWN" for a value outside the enum. The string is static.
TP_EXPORT const char* error_code_name(ErrorCode code) noexcept;

struct Error {
  ErrorCode code = ErrorCode::kUnknown;
  std::string message;

  // "INVALID_ARGUMENT: <message>"
  TP_EXPORT std::string to_string() const;
};

}  // namespace v0
}  // namespace tp
