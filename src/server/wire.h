// Private (server): what goes over the wire: OpenAI-shaped errors, base64,
// Ollama's keep_alive durations, timestamps. Pure functions; any thread.
#pragma once

#include <httplib.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "twistedpic/error.h"

namespace tp::server {

using json = nlohmann::json;
using Steady = std::chrono::steady_clock;

// Compact JSON; invalid UTF-8 replaced rather than thrown.
std::string dump(const json& j);

// An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
struct HttpError {
  int status = 400;
  std::string type = "invalid_request_error";
  std::string code;  // empty: null
  std::string message;
  std::string param;  // empty: null
  int retry_after_s = 0;
};

HttpError bad_request(std::string message, std::string param = "", std::string code = "invalid_value");
void send_error(httplib::Response& res, const HttpError& e);
// A library error as an HTTP error: the caller's mistakes are 4xx, the rest 5xx.
HttpError from_error(const Error& e);

// `text` for an error message: at most 64 bytes of what a client sent.
std::string clip(const std::string& text);
std::string lower(std::string s);
// RFC 4648 base64 with padding.
std::string base64(const std::vector<uint8_t>& in);
// Ollama's keep_alive: a number of seconds, or a Go duration ("5m", "1h30m",
// "250ms", "-1"). Negative: keep (-1); nullopt for a malformed value.
std::optional<double> parse_keep_alive(const json& v);
// "2026-12-05T21:40:00.123Z" for a steady-clock time point.
std::string iso8601(Steady::time_point t);

}  // namespace tp::server
