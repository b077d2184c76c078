#include "server/wire.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace tp::server {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }



HttpError bad_request(std::string message, std::string param, std::string code) {
  return {400, "invalid_request_error", std::move(code), std::move(message), std::move(param)};
}

void send_error(httplib::Response& res, const HttpError& e) {
  json body = {{"error",
                {{"message", e.message},
                 {"type", e.type},
                 {"param", e.param.empty() ? json(nullptr) : json(e.param)},
                 {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
  res.status = e.status;
  if (e.retry_after_s > 0) res.set_header("Retry-After", std::to_string(e.retry_after_s));
  res.set_content(dump(body), "application/json");
}

// A library error as an HTTP error: the caller's mistakes are 4xx, the rest 5xx.
HttpError from_error(const Error& e) {
  switch (e.code) {
    case ErrorCode::kInvalidArgument:
      return bad_request(e.message);
    case ErrorCode::kUnimplemented:
      return bad_request(e.message, "", "unsupported");
    case ErrorCode::kNotFound:
      return {404, "invalid_request_error", "not_found", e.message, ""};
    case ErrorCode::kFailedPrecondition:
      return {409, "invalid_request_error", "conflict", e.message, ""};
    case ErrorCode::kResourceExhausted:
      return {503, "server_error", "resource_exhausted", e.message, "", 5};
    case ErrorCode::kCancelled:
      return {503, "server_error", "cancelled", e.message, ""};
    case ErrorCode::kUnavailable:
      return {503, "server_error", "unavailable", e.message, ""};
    default:
      return {500, "server_error", error_code_name(e.code), e.message, ""};
  }
}


// `text` for an error message: at most 64 bytes of what a client sent.
std::string clip(const std::string& text) { return text.size() <= 64 ? text : text.substr(0, 61) + "..."; }

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// RFC 4648 base64 with padding.
std::string base64(const std::vector<uint8_t>& in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint32_t{in[i]} << 16) | (uint32_t{in[i + 1]} << 8) | in[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < in.size()) {
    const bool two = i + 1 < in.size();
    const uint32_t v = (uint32_t{in[i]} << 16) | (two ? uint32_t{in[i + 1]} << 8 : 0);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += two ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// Ollama's keep_alive: a number of seconds, or a Go duration ("5m", "1h30m",
// "250ms", "-1"). Negative: keep (nullopt is a malformed value).
std::optional<double> parse_keep_alive(const json& v) {
  if (v.is_number()) {
    const double s = v.get<double>();
    if (!std::isfinite(s)) return std::nullopt;
    return s < 0 ? -1.0 : s;
  }
  if (!v.is_string()) return std::nullopt;
  const std::string text = v.get<std::string>();
  if (text.empty() || text.size() > 64) return std::nullopt;
  size_t pos = 0;
  bool negative = false;
  if (text[0] == '-' || text[0] == '+') {
    negative = text[0] == '-';
    pos = 1;
  }
  double total = 0;
  bool any = false;
  while (pos < text.size()) {
    size_t start = pos;
    while (pos < text.size() && (std::isdigit(static_cast<unsigned char>(text[pos])) || text[pos] == '.')) ++pos;
    if (pos == start) return std::nullopt;
    double number = 0;
    try {
      number = std::stod(text.substr(start, pos - start));
    } catch (...) {
      return std::nullopt;
    }
    start = pos;
    while (pos < text.size() && std::isalpha(static_cast<unsigned char>(text[pos]))) ++pos;
    const std::string unit = text.substr(start, pos - start);
    double scale = 0;
    if (unit.empty()) {
      if (any || pos != text.size()) return std::nullopt;  // a bare number: seconds
      scale = 1;
    } else if (unit == "h") {
      scale = 3600;
    } else if (unit == "m") {
      scale = 60;
    } else if (unit == "s") {
      scale = 1;
    } else if (unit == "ms") {
      scale = 1e-3;
    } else if (unit == "us") {
      scale = 1e-6;
    } else if (unit == "ns") {
      scale = 1e-9;
    } else {
      return std::nullopt;
    }
    total += number * scale;
    any = true;
  }
  if (!any || !std::isfinite(total)) return std::nullopt;
  return negative && total > 0 ? -1.0 : total;
}

// "2026-12-05T21:40:00.123Z" for a steady-clock time point.
std::string iso8601(Steady::time_point t) {
  const auto wall = std::chrono::system_clock::now() +
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(t - Steady::now());
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(wall.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

}  // namespace tp::server
