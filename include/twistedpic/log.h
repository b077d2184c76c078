// twistedpic: the logging facade.
//
// All of twistedpic logs through this facade. The host chooses where lines go
// by installing a sink (a callback and a minimum level); without one, lines at
// kWarn and above go to stderr. The implementation sits on a private spdlog
// logger that is never registered in spdlog's global registry, so a host that
// uses spdlog itself is unaffected.
//
// The facade exposes no fmt types: torch ships fmt 12 headers and Debian's
// spdlog is built on fmt 9, so a translation unit must never see both. Messages
// are composed with iostreams through TP_LOG:
//
//   TP_LOG(kInfo, "registry", "loaded " << name << " in " << ms << " ms");
//
// Threading: every function here is safe to call from any thread. set_sink()
// swaps the sink atomically and waits for a line in flight, so the previous
// sink is never called after it returns. Sinks are called from any library
// thread, one line at a time, and must not call set_sink().
#pragma once

#include <functional>
#include <sstream>
#include <string_view>

#include "twistedpic/export.h"

namespace tp {
inline namespace v0 {

// Values equal spdlog's levels and the C ABI's TP_LOG_* constants.
enum class LogLevel : int { kTrace = 0, kDebug = 1, kInfo = 2, kWarn = 3, kError = 4, kCritical = 5, kOff = 6 };

// `logger` names the component ("registry", "weights", ...). `message` is one
// whole line without a trailing newline; both views are valid only during the call.
using LogSink = std::function<void(LogLevel level, std::string_view logger, std::string_view message)>;

namespace log {

// Installs `sink` for lines at `min_level` and above. An empty sink restores
// the default: stderr at kWarn.
TP_EXPORT void set_sink(LogSink sink, LogLevel min_level);

// True when a line at `level` would reach the sink.
TP_EXPORT bool enabled(LogLevel level) noexcept;

// Sends one line. Never throws: a sink that throws has its exception swallowed.
TP_EXPORT void write(LogLevel level, std::string_view logger, std::string_view message) noexcept;

}  // namespace log
}  // namespace v0
}  // namespace tp

#define TP_LOG(level, logger, stream_expr)                                          \
  do {                                                                              \
    if (::tp::log::enabled(::tp::LogLevel::level)) {                                \
      std::ostringstream tp_log_stream_;                                            \
      tp_log_stream_ << stream_expr;                                                \
      ::tp::log::write(::tp::LogLevel::level, (logger), tp_log_stream_.str());      \
    }                                                                               \
  } while (0)
