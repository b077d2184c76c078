// Private (text): what the CLIP and T5 tokenizers share when they encode a
// prompt: collecting ids up to the room the special tokens leave, and the walk
// over added tokens (matched before normalization, then after it) with the
// text between them handed to the model's own word splitter.
//
// Threading: a TokenCollector belongs to one encode() call.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "text/unicode.h"

namespace tp::detail {

// Collects a prompt's tokens until `room` of them; one more sets truncated().
class TokenCollector {
 public:
  explicit TokenCollector(size_t room) : room_(room) {}
  bool truncated() const { return truncated_; }
  void add(int64_t id) {
    if (ids_.size() == room_) {
      truncated_ = true;
      return;
    }
    ids_.push_back(id);
  }
  const std::vector<int64_t>& ids() const { return ids_; }

 private:
  size_t room_;
  std::vector<int64_t> ids_;
  bool truncated_ = false;
};

// Tokenizes `text` (valid UTF-8) into `out` until it is full: `raw` added
// tokens are matched first, the rest is normalized by `normalize`, then
// `normalized` added tokens are matched, and what lies between them goes to
// `words`.
void collect_tokens(std::string_view text, const AddedTokens& raw, const AddedTokens& normalized,
                    const std::function<std::string(std::string_view)>& normalize,
                    const std::function<void(std::string_view, TokenCollector*)>& words, TokenCollector* out);

}  // namespace tp::detail
