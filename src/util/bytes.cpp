#include "util/bytes.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>

namespace tp::detail {

Expected<uint64_t> parse_byte_size(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  size_t start = i;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  const std::string_view digits = text.substr(start, i - start);
  const auto not_a_size = [&] {
    return invalid_argument("'" + std::string(text) + "' is not a byte size (e.g. 4GiB, 512MB, 1024)");
  };
  if (digits.empty()) return not_a_size();
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  std::string unit(text.substr(i));
  while (!unit.empty() && std::isspace(static_cast<unsigned char>(unit.back()))) unit.pop_back();
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  uint64_t mult = 0;
  static const std::pair<const char*, uint64_t> kUnits[] = {
      {"", 1},          {"b", 1},          {"k", 1000},          {"kb", 1000},      {"m", 1000000},
      {"mb", 1000000},  {"g", 1000000000}, {"gb", 1000000000},   {"t", 1000000000000},
      {"tb", 1000000000000}, {"kib", 1ull << 10}, {"mib", 1ull << 20}, {"gib", 1ull << 30}, {"tib", 1ull << 40}};
  for (const auto& [u, m] : kUnits)
    if (unit == u) mult = m;
  if (mult == 0) return invalid_argument("'" + std::string(text) + "' has an unknown unit '" + unit + "' (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)");
  const auto too_large = [&] {
    return invalid_argument("'" + std::string(text) + "' is too large (at most " +
                            std::to_string(std::numeric_limits<uint64_t>::max()) + " bytes)");
  };
  if (digits.find('.') == std::string_view::npos) {
    // An integer: exact, up to UINT64_MAX.
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (ec == std::errc::result_out_of_range) return too_large();
    if (ec != std::errc() || end != digits.data() + digits.size()) return not_a_size();
    if (n > std::numeric_limits<uint64_t>::max() / mult) return too_large();
    return n * mult;
  }
  // A fraction: rounded to whole bytes. 2^64 is exact as a double; anything
  // from it up does not fit (a cast would be undefined, llround would wrap).
  double number = 0;
  try {
    size_t used = 0;
    number = std::stod(std::string(digits), &used);
    if (used != digits.size()) return not_a_size();  // "1.2.3"
  } catch (const std::out_of_range&) {
    return too_large();
  } catch (...) {
    return not_a_size();  // "."
  }
  const double bytes = std::round(number * static_cast<double>(mult));
  if (!(bytes < 18446744073709551616.0)) return too_large();
  return static_cast<uint64_t>(bytes);
}

std::string format_bytes(uint64_t b) {
  char buf[64];
  if (b >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(b) / (1ull << 30));
  else if (b >= (1ull << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1ull << 20));
  else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  return std::string(buf) + " (" + std::to_string(b) + ")";
}

}  // namespace tp::detail
