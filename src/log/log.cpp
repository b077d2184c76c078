// The logging facade's implementation: private spdlog loggers, never
// registered, all writing to one dispatching sink that forwards whole lines
// to the host's callback or, by default, to stderr.
//
// This is the only translation unit that includes spdlog. It must never see
// torch's include path (torch ships fmt 12, Debian's spdlog uses fmt 9).
#include "twistedpic/log.h"

#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <spdlog/logger.h>
#include <spdlog/sinks/base_sink.h>

namespace tp {
inline namespace v0 {
namespace {

class DispatchSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  // Waits for a line in flight (sink_it_ runs under base_sink's mutex_), so
  // the previous sink is never called after this returns.
  void set(LogSink sink) {
    std::lock_guard<std::mutex> in_flight(mutex_);
    host_ = std::move(sink);
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string_view logger(msg.logger_name.data(), msg.logger_name.size());
    std::string_view payload(msg.payload.data(), msg.payload.size());
    if (host_) {
      // A NUL-terminated copy, so C hosts can treat it as a C string.
      line_.assign(payload.data(), payload.size());
      try {
        host_(static_cast<LogLevel>(msg.level), logger, std::string_view(line_.c_str(), line_.size()));
      } catch (...) {
        // A host sink must not unwind into the library; the line is dropped.
      }
      return;
    }
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    std::fwrite(formatted.data(), 1, formatted.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }

 private:
  LogSink host_;      // empty: stderr; guarded by base_sink's mutex_
  std::string line_;  // guarded by base_sink's mutex_
};

struct Facade {
  std::shared_ptr<DispatchSink> sink = std::make_shared<DispatchSink>();
  std::atomic<int> min_level{static_cast<int>(LogLevel::kWarn)};
  std::mutex loggers_mu;
  std::map<std::string, std::shared_ptr<spdlog::logger>, std::less<>> loggers;

  Facade() { sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [twistedpic:%n] [%l] %v"); }

  std::shared_ptr<spdlog::logger> logger_for(std::string_view name) {
    std::lock_guard<std::mutex> lock(loggers_mu);
    auto it = loggers.find(name);
    if (it != loggers.end()) return it->second;
    auto logger = std::make_shared<spdlog::logger>(std::string(name), sink);
    logger->set_level(spdlog::level::trace);  // the facade filters
    return loggers.emplace(std::string(name), std::move(logger)).first->second;
  }
};

Facade& facade() {
  static Facade* f = new Facade();  // never destroyed: logging may happen during static destruction
  return *f;
}

}  // namespace

namespace log {

void set_sink(LogSink sink, LogLevel min_level) {
  Facade& f = facade();
  if (sink) {
    f.sink->set(std::move(sink));
    f.min_level.store(static_cast<int>(min_level), std::memory_order_relaxed);
  } else {
    f.sink->set(nullptr);
    f.min_level.store(static_cast<int>(LogLevel::kWarn), std::memory_order_relaxed);
  }
}

bool enabled(LogLevel level) noexcept {
  int l = static_cast<int>(level);
  return l < static_cast<int>(LogLevel::kOff) && l >= facade().min_level.load(std::memory_order_relaxed);
}

void write(LogLevel level, std::string_view logger, std::string_view message) noexcept {
  if (!enabled(level)) return;
  try {
    facade().logger_for(logger)->log(static_cast<spdlog::level::level_enum>(level), "{}", message);
  } catch (...) {
    // Logging never fails the caller.
  }
}

}  // namespace log
}  // namespace v0
}  // namespace tp
