// The Unicode pieces of the tokenizers, over utf8proc. See unicode.h.
#include "text/unicode.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>

namespace tp::detail {

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      out += static_cast<char>(b);
      ++i;
      continue;
    }
    // The continuation bytes a lead byte needs, and the range of the first one
    // (narrower after E0, ED, F0 and F4: no overlongs, surrogates or > U+10FFFF).
    int need = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      need = 2;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      need = 3;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    }
    size_t j = i + 1;
    bool ok = need > 0;
    for (int k = 0; ok && k < need; ++k, ++j) {
      if (j >= s.size()) {
        ok = false;
        break;
      }
      const auto c = static_cast<unsigned char>(s[j]);
      ok = c >= (k == 0 ? lo : 0x80) && c <= (k == 0 ? hi : 0xBF);
      if (!ok) break;
    }
    if (ok) {
      out.append(s.substr(i, j - i));
    } else {
      append_utf8(&out, kReplacementChar);  // the lead byte and the valid continuations so far
      if (need == 0) j = i + 1;
    }
    i = j;
  }
  return out;
}

char32_t next_code_point(std::string_view s, size_t* pos) {
  const auto b = static_cast<unsigned char>(s[*pos]);
  const int len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
  char32_t c = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
  for (int k = 1; k < len; ++k) c = (c << 6) | (static_cast<unsigned char>(s[*pos + k]) & 0x3F);
  *pos += len;
  return c;
}

void append_utf8(std::string* out, char32_t c) {
  if (c < 0x80) {
    *out += static_cast<char>(c);
  } else if (c < 0x800) {
    *out += static_cast<char>(0xC0 | (c >> 6));
    *out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    *out += static_cast<char>(0xE0 | (c >> 12));
    *out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (c >> 18));
    *out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_letter(char32_t c) {
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
      return true;
    default:
      return false;
  }
}

bool is_number(char32_t c) {
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

std::string nfc(std::string_view s) {
  if (std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; }))
    return std::string(s);  // ASCII is NFC
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                          static_cast<utf8proc_ssize_t>(s.size()), &out,
                                          static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  // Only invalid UTF-8 (never passed here) or an allocation failure make it fail.
  std::string result = n < 0 ? std::string(s) : std::string(reinterpret_cast<const char*>(out), n);
  std::free(out);
  return result;
}

bool grapheme_break(char32_t before, char32_t after, int32_t* state) {
  return utf8proc_grapheme_break_stateful(static_cast<utf8proc_int32_t>(before),
                                          static_cast<utf8proc_int32_t>(after), state);
}

void AddedTokens::add(std::string content, int64_t id) {
  if (content.empty()) return;
  for (Token& t : tokens_) {
    if (t.content == content) {
      t.id = id;
      return;
    }
  }
  first_byte_[static_cast<unsigned char>(content[0])] = true;
  tokens_.push_back({std::move(content), id});
  std::stable_sort(tokens_.begin(), tokens_.end(),
                   [](const Token& a, const Token& b) { return a.content.size() > b.content.size(); });
}

std::vector<AddedTokens::Piece> AddedTokens::split(std::string_view s) const {
  std::vector<Piece> out;
  size_t start = 0;  // of the text not yet emitted
  for (size_t i = 0; i < s.size();) {
    const Token* match = nullptr;
    if (!first_byte_[static_cast<unsigned char>(s[i])]) {
      ++i;
      continue;
    }
    for (const Token& t : tokens_) {
      if (s.compare(i, t.content.size(), t.content) == 0) {
        match = &t;  // longest first
        break;
      }
    }
    if (match == nullptr) {
      ++i;
      continue;
    }
    if (i > start) out.push_back({s.substr(start, i - start), -1});
    out.push_back({s.substr(i, match->content.size()), match->id});
    i += match->content.size();
    start = i;
  }
  if (start < s.size()) out.push_back({s.substr(start), -1});
  return out;
}

}  // namespace tp::detail
