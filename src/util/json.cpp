#include "util/json.h"

#include <algorithm>
#include <new>
#include <unordered_set>
#include <vector>

#include "util/file.h"

namespace tp::detail {
namespace {

using nlohmann::json;

// Maximum [ / { nesting outside strings. A cheap pre-pass: on invalid JSON the
// count may be off, but then the parse that follows fails anyway.
int max_nesting(std::string_view text) {
  int depth = 0, max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max_depth;
}

// One open object or array while parsing; objects remember their keys.
struct Frame {
  bool is_object = false;
  std::string name;  // the key this value sits under, "" at the top or in arrays
  std::string last_key;
  std::unordered_set<std::string> keys;
};

}  // namespace

std::string quote(std::string_view s) {
  constexpr size_t kMaxBytes = 128;
  size_t n = std::min(s.size(), kMaxBytes);
  while (n < s.size() && n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;  // whole UTF-8 characters
  std::string out = "'";
  for (char c : s.substr(0, n)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += {'\\', 'x', kHex[u >> 4], kHex[u & 15]};
    } else {
      out += c;
    }
  }
  return out + (n < s.size() ? "...'" : "'");
}

std::string json_type_phrase(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::string:
      return "a string";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_float:
      return "a non-integer number";
    case json::value_t::number_integer:
      return "a negative integer";  // the parser stores non-negatives as unsigned
    case json::value_t::number_unsigned:
      return "an unsigned integer";
    default:
      return "an unsupported value";
  }
}

Expected<json> parse_json(std::string_view text, std::string_view what, std::string_view top_key_label) {
  const std::string w(what);
  if (max_nesting(text) > kMaxJsonDepth)
    return invalid_argument(w + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");

  std::vector<Frame> stack;
  std::string duplicate;  // the first duplicate-key message, if any
  auto callback = [&](int /*depth*/, json::parse_event_t event, json& parsed) -> bool {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start: {
        Frame frame;
        frame.is_object = event == json::parse_event_t::object_start;
        if (!stack.empty() && stack.back().is_object) frame.name = stack.back().last_key;
        stack.push_back(std::move(frame));
        break;
      }
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!stack.empty()) stack.pop_back();
        break;
      case json::parse_event_t::key: {
        if (stack.empty() || !parsed.is_string()) break;
        Frame& top = stack.back();
        top.last_key = parsed.get<std::string>();
        if (!top.keys.insert(top.last_key).second && duplicate.empty()) {
          duplicate = stack.size() == 1 ? "duplicate " + std::string(top_key_label) + " " + quote(top.last_key)
                                        : "duplicate key " + quote(top.last_key) +
                                              (top.name.empty() ? std::string() : " in " + quote(top.name));
        }
        break;
      }
      case json::parse_event_t::value:
        break;
    }
    return true;
  };

  json value;
  try {
    value = json::parse(text.begin(), text.end(), callback);
  } catch (const json::parse_error& e) {
    return invalid_argument(w + ": invalid JSON at byte " + std::to_string(e.byte) + ": " + e.what());
  } catch (const json::exception& e) {  // e.g. out_of_range: a number beyond a double ("1e999")
    return invalid_argument(w + ": invalid JSON: " + e.what());
  } catch (const std::bad_alloc&) {
    return resource_exhausted(w + ": out of memory while parsing JSON");
  } catch (const std::exception& e) {
    return internal_error(w + ": cannot parse JSON: " + e.what());
  }
  if (!duplicate.empty()) return invalid_argument(w + ": " + duplicate);
  return value;
}

Expected<json> read_json_object_file(const std::filesystem::path& path, uint64_t max_bytes) {
  TP_ASSIGN_OR_RETURN(std::string text, read_text_file(path, max_bytes));
  TP_ASSIGN_OR_RETURN(json value, parse_json(text, path.string()));
  if (!value.is_object())
    return invalid_argument(path.string() + ": JSON is " + json_type_phrase(value) + ", not an object");
  return value;
}

}  // namespace tp::detail
