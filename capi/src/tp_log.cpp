// C shim: the log callback.
#include "tp_internal.h"
#include "twistedpic/log.h"

// Every TP_LOG_* equals its tp::LogLevel.
#define TP_SAME(c, e) static_assert((c) == static_cast<int32_t>(tp::LogLevel::e), #c " != " #e)
TP_SAME(TP_LOG_TRACE, kTrace);
TP_SAME(TP_LOG_DEBUG, kDebug);
TP_SAME(TP_LOG_INFO, kInfo);
TP_SAME(TP_LOG_WARN, kWarn);
TP_SAME(TP_LOG_ERROR, kError);
TP_SAME(TP_LOG_CRITICAL, kCritical);
TP_SAME(TP_LOG_OFF, kOff);
#undef TP_SAME

extern "C" tp_code tp_set_log_callback(tp_log_fn fn, void* user_data, int32_t min_level, tp_error** out_err) {
  TP_CAPI_BEGIN
  if (min_level < TP_LOG_TRACE || min_level > TP_LOG_OFF)
    return tp::capi::fail(out_err, TP_INVALID_ARGUMENT,
                          "min_level " + std::to_string(min_level) + " is outside TP_LOG_TRACE..TP_LOG_OFF");
  if (!fn) {
    tp::log::set_sink(nullptr, tp::LogLevel::kWarn);
    return TP_OK;
  }
  tp::log::set_sink(
      [fn, user_data](tp::LogLevel level, std::string_view logger, std::string_view msg) {
        // logger views are not NUL-terminated; msg is (the facade guarantees it).
        std::string name(logger);
        fn(static_cast<int32_t>(level), name.c_str(), msg.data(), msg.size(), user_data);
      },
      static_cast<tp::LogLevel>(min_level));
  return TP_OK;
  TP_CAPI_END(out_err)
}
