// Private (registry): running host code without letting it unwind through the
// registry.
//
// Every call the registry makes into code the host supplies (a memory policy,
// the weight backend and its weights, the device monitor, an event callback,
// the clean-up step, the transfer progress callback) goes through call_host()
// or a try/catch. An exception from a decision on a request's path fails that
// request with kInternal "<who> threw: <what>"; one on a path with no caller
// to tell is logged with log_host_error() and that answer ignored
// (docs/threading.md).
//
// Threading: stateless functions; call from any thread, with or without the
// registry's lock (the host code they run decides what it may do then).
#pragma once

#include <exception>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "twistedpic/expected.h"
#include "twistedpic/log.h"
#include "twistedpic/memory_policy.h"

namespace tp::detail {

// What the exception being handled says. Call only inside a catch block.
inline std::string current_exception_text() {
  try {
    throw;
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

// Runs host code: its result, or kInternal "<who> threw: <what>".
template <class F>
auto call_host(const std::string& who, F&& f) -> Expected<std::invoke_result_t<F&>> {
  try {
    if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
      f();
      return {};
    } else {
      return f();
    }
  } catch (...) {
    return internal_error(who + " threw: " + current_exception_text());
  }
}

// "policy '<name>'", for messages; name() is host code too.
inline std::string policy_label(const MemoryPolicy& p) {
  try {
    return "policy '" + std::string(p.name()) + "'";
  } catch (...) {
    return "a policy (whose name() threw)";
  }
}

// For host code on a path that cannot return an error: logs and drops it.
inline void log_host_error(const Error& e, std::string_view what_next) {
  TP_LOG(kError, "registry", e.message << "; " << what_next);
}

}  // namespace tp::detail
