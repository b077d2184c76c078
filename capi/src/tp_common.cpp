// C shims: codes, errors and version.
#include "tp_internal.h"

// Every TP_* code equals its tp::ErrorCode.
#define TP_SAME(c, e) static_assert((c) == static_cast<tp_code>(tp::ErrorCode::e), #c " != " #e)
TP_SAME(TP_OK, kOk);
TP_SAME(TP_CANCELLED, kCancelled);
TP_SAME(TP_UNKNOWN, kUnknown);
TP_SAME(TP_INVALID_ARGUMENT, kInvalidArgument);
TP_SAME(TP_NOT_FOUND, kNotFound);
TP_SAME(TP_ALREADY_EXISTS, kAlreadyExists);
TP_SAME(TP_RESOURCE_EXHAUSTED, kResourceExhausted);
TP_SAME(TP_FAILED_PRECONDITION, kFailedPrecondition);
TP_SAME(TP_ABORTED, kAborted);
TP_SAME(TP_UNIMPLEMENTED, kUnimplemented);
TP_SAME(TP_INTERNAL, kInternal);
TP_SAME(TP_UNAVAILABLE, kUnavailable);
TP_SAME(TP_DATA_LOSS, kDataLoss);
#undef TP_SAME

extern "C" {

const char* tp_code_name(tp_code code) { return tp::error_code_name(static_cast<tp::ErrorCode>(code)); }

tp_code tp_error_code(const tp_error* err) { return err ? err->code : TP_OK; }

const char* tp_error_message(const tp_error* err) { return err ? err->message.c_str() : ""; }

void tp_error_free(tp_error* err) { delete err; }

uint32_t tp_version_number(void) { return TP_VERSION_NUMBER; }

const char* tp_version_string(void) { return TP_VERSION_STRING; }

}  // extern "C"
