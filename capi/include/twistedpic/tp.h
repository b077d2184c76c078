/*
 * twistedpic C ABI.
 *
 * The one header through which C, Python, Rust and Go hosts embed twistedpic.
 * Conventions (docs/conventions.md):
 *   - Every function returns a tp_code (TP_OK == 0) unless documented
 *     otherwise, and takes an optional `tp_error** out_err` last among its
 *     parameters (before user_data). On failure *out_err receives an error
 *     object the caller frees with tp_error_free(); on success it is left
 *     untouched. Other out-parameters are written only on success.
 *   - Out-parameters come first and are named out / out_<x>.
 *   - A NULL required argument returns TP_INVALID_ARGUMENT.
 *   - No C++ exception ever crosses this boundary.
 *   - Strings are UTF-8, NUL-terminated, and copied before the call returns.
 */
#ifndef TWISTEDPIC_TP_H
#define TWISTEDPIC_TP_H

#include <stddef.h>
#include <stdint.h>

#include "twistedpic/version.h"

#if defined(_WIN32)
#define TP_API
#elif defined(__GNUC__)
#define TP_API __attribute__((visibility("default")))
#else
#define TP_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Codes. Values are fixed forever and only appended to; they equal tp::ErrorCode. */

typedef int32_t tp_code;
#define TP_OK 0
#define TP_CANCELLED 1
#define TP_UNKNOWN 2
#define TP_INVALID_ARGUMENT 3
#define TP_NOT_FOUND 5
#define TP_ALREADY_EXISTS 6
#define TP_RESOURCE_EXHAUSTED 8
#define TP_FAILED_PRECONDITION 9
#define TP_ABORTED 10
#define TP_UNIMPLEMENTED 12
#define TP_INTERNAL 13
#define TP_UNAVAILABLE 14
#define TP_DATA_LOSS 15

/**
 * The stable upper-snake name of a code ("INVALID_ARGUMENT"); "UNKNOWN" for a
 * value this library does not know.
 * @return a static string; never NULL, never freed.
 * @threadsafety safe.
 * @since 0.1
 */
TP_API const char* tp_code_name(tp_code code);

/* ------------------------------------------------------------------------ */
/* Errors. */

/** An error: a code and a UTF-8 message. @threadsafety immutable. */
typedef struct tp_error tp_error;

/**
 * @param[in] err an error, or NULL.
 * @return its code; TP_OK for NULL.
 * @threadsafety safe.
 */
TP_API tp_code tp_error_code(const tp_error* err);

/**
 * @param[in] err an error, or NULL.
 * @return its message, borrowed: valid until tp_error_free(err). "" for NULL.
 * @threadsafety safe.
 */
TP_API const char* tp_error_message(const tp_error* err);

/**
 * Frees an error. NULL is a no-op.
 * @threadsafety external: not concurrently with other uses of the same error.
 */
TP_API void tp_error_free(tp_error* err);

/* ------------------------------------------------------------------------ */
/* Version. */

/**
 * The library's TP_VERSION_NUMBER, to compare against the header's:
 * `assert(tp_version_number() == TP_VERSION_NUMBER)`.
 * @threadsafety safe.
 */
TP_API uint32_t tp_version_number(void);

/** The library's version string, "MAJOR.MINOR.PATCH". Static. @threadsafety safe. */
TP_API const char* tp_version_string(void);

/* ------------------------------------------------------------------------ */
/* Logging. Levels equal spdlog's. */

#define TP_LOG_TRACE 0
#define TP_LOG_DEBUG 1
#define TP_LOG_INFO 2
#define TP_LOG_WARN 3
#define TP_LOG_ERROR 4
#define TP_LOG_CRITICAL 5
#define TP_LOG_OFF 6

/**
 * Receives one whole log line.
 * @param level   a TP_LOG_* value.
 * @param logger  the component ("registry", "weights"); valid only during the call.
 * @param msg     the line, NUL-terminated, without newline; valid only during the call.
 * @param len     strlen(msg).
 * @param user_data as given to tp_set_log_callback().
 * Called from any library thread, possibly concurrently. Must not unwind and
 * must not call tp_set_log_callback().
 */
typedef void (*tp_log_fn)(int32_t level, const char* logger, const char* msg, size_t len, void* user_data);

/**
 * Routes the library's log lines at `min_level` and above to `fn`. fn == NULL
 * restores the default (stderr, TP_LOG_WARN and above).
 * @return TP_INVALID_ARGUMENT for a level outside TP_LOG_TRACE..TP_LOG_OFF.
 * @threadsafety safe: the callback is swapped atomically; a line being
 *   delivered concurrently may still reach the previous callback.
 */
TP_API tp_code tp_set_log_callback(tp_log_fn fn, void* user_data, int32_t min_level, tp_error** out_err);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TWISTEDPIC_TP_H */
