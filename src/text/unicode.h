// Private: the Unicode and added-token pieces shared by the tokenizers
// (clip_tokenizer.cpp, t5_tokenizer.cpp), each matching what transformers'
// tokenizers library does.
//
// Threading: pure functions, and AddedTokens is immutable after construction:
// safe from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tp::detail {

inline constexpr char32_t kReplacementChar = 0xFFFD;

// `s` with every maximal invalid UTF-8 subsequence replaced by U+FFFD, as
// Python's bytes.decode("utf-8", errors="replace") does (surrogates and
// overlong forms are invalid).
std::string sanitize_utf8(std::string_view s);

// Decodes the code point at s[*pos] and advances *pos.
// REQUIRES: s is valid UTF-8 (from sanitize_utf8) and *pos < s.size().
char32_t next_code_point(std::string_view s, size_t* pos);

// Appends `c` to `out` as UTF-8.
void append_utf8(std::string* out, char32_t c);

// Unicode's White_Space property: what both Rust's char::is_whitespace and
// Oniguruma's \s (the tokenizers library's regexes) match.
bool is_white_space(char32_t c);

// General categories L* and N*, as \p{L} and \p{N} match them.
bool is_letter(char32_t c);
bool is_number(char32_t c);

// Canonical composition (NFC).
std::string nfc(std::string_view s);

// Splits `s` into extended grapheme clusters (UAX #29) and calls f(cluster)
// for each, in order.
template <class F>
void for_each_grapheme(std::string_view s, F&& f);

// Tokens that transformers matches in the text before (or, for normalized
// ones, right after) normalization: the tokenizers library's AddedVocabulary,
// leftmost-longest, without lstrip/rstrip/single_word.
class AddedTokens {
 public:
  struct Piece {
    std::string_view text;  // a span of the searched string
    int64_t id = -1;        // the token's id, or -1 for text between tokens
  };

  // A later add() of the same content replaces the earlier one's id.
  void add(std::string content, int64_t id);
  bool empty() const { return tokens_.empty(); }

  // `s` cut into tokens and the text between them (empty spans left out).
  std::vector<Piece> split(std::string_view s) const;

 private:
  struct Token {
    std::string content;
    int64_t id;
  };
  std::vector<Token> tokens_;  // sorted longest first, so the first match is the longest
  std::array<bool, 256> first_byte_{};  // bytes that start some token
};

// ---- implementation -----------------------------------------------------------

bool grapheme_break(char32_t before, char32_t after, int32_t* state);

template <class F>
void for_each_grapheme(std::string_view s, F&& f) {
  size_t start = 0, pos = 0;
  int32_t state = 0;
  char32_t prev = 0;
  while (pos < s.size()) {
    const size_t at = pos;
    const char32_t c = next_code_point(s, &pos);
    if (at > 0 && grapheme_break(prev, c, &state)) {
      f(s.substr(start, at - start));
      start = at;
    }
    prev = c;
  }
  if (pos > start) f(s.substr(start, pos - start));
}

}  // namespace tp::detail
