#include "text/token_collector.h"

namespace tp::detail {

void collect_tokens(std::string_view text, const AddedTokens& raw, const AddedTokens& normalized,
                    const std::function<std::string(std::string_view)>& normalize,
                    const std::function<void(std::string_view, TokenCollector*)>& words, TokenCollector* out) {
  for (const auto& piece : raw.split(text)) {
    if (out->truncated()) return;
    if (piece.id >= 0) {
      out->add(piece.id);
      continue;
    }
    const std::string n = normalize(piece.text);
    for (const auto& inner : normalized.split(n)) {
      if (out->truncated()) return;
      if (inner.id >= 0)
        out->add(inner.id);
      else
        words(inner.text, out);
    }
  }
}

}  // namespace tp::detail
