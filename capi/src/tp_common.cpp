// C shims: codes, errors and version.
#include "tp_internal.h"

extern "C" {

const char* tp_code_name(tp_code code) { return tp::error_code_name(static_cast<tp::ErrorCode>(code)); }

tp_code tp_error_code(const tp_error* err) { return err ? err->code : TP_OK; }

const char* tp_error_message(const tp_error* err) { return err ? err->message.c_str() : ""; }

void tp_error_free(tp_error* err) { delete err; }

uint32_t tp_version_number(void) { return TP_VERSION_NUMBER; }

const char* tp_version_string(void) { return TP_VERSION_STRING; }

}  // extern "C"
