// Private: the special and added tokens of a transformers tokenizer folder,
// read the way transformers 5 reads them.
//
//   tokenizer_config.json    bos_token, eos_token, unk_token, pad_token (a
//                            string, or an object with "content" and flags),
//                            added_tokens_decoder {"<id>": {"content": ..., "normalized": ...}},
//                            extra_ids (T5)
//   special_tokens_map.json  read only when tokenizer_config.json has no
//                            added_tokens_decoder (transformers' legacy path);
//                            its entries override the config's
//
// Both files are optional. Flags: "normalized" decides whether the token is
// matched before or after normalization (default: false for the special
// tokens, and !special for added_tokens_decoder entries); lstrip and rstrip
// are accepted and change no id (whitespace makes no token in these
// tokenizers); single_word is refused with kUnimplemented.
//
// Threading: a pure function; safe from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "twistedpic/expected.h"

namespace tp::detail {

struct AddedTokenSpec {
  std::string content;
  int64_t id = -1;  // from added_tokens_decoder; -1: a special token listed only by name (its id is the vocabulary's)
  bool normalized = false;
};

// Special token contents used when neither file names them; empty: none.
struct SpecialTokenDefaults {
  std::string bos, eos, unk, pad;
};

struct TokenizerConfig {
  std::filesystem::path origin;  // tokenizer_config.json, for messages
  std::string bos, eos, unk, pad;
  // added_tokens_decoder's entries, then the special tokens not among them.
  std::vector<AddedTokenSpec> added_tokens;
  std::optional<int64_t> extra_ids;
};

Expected<TokenizerConfig> read_tokenizer_config(const std::filesystem::path& folder,
                                                const SpecialTokenDefaults& defaults);

}  // namespace tp::detail
