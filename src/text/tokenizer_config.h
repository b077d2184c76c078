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
// tokenizer.json, the tokenizers library's file (all that transformers 5's
// save_pretrained writes beside tokenizer_config.json), is read by
// read_tokenizer_json: its model section (left to the tokenizer to interpret),
// its added_tokens (with ids and flags, as above) and the precompiled
// normalization map of a Precompiled normalizer, found as transformers finds it
// (the normalizer itself, or the first Precompiled one of a Sequence).
//
// Threading: pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <nlohmann/json.hpp>
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

struct TokenizerJson {
  std::filesystem::path origin;     // folder/tokenizer.json, for messages
  nlohmann::json model;             // the "model" object
  std::vector<AddedTokenSpec> added_tokens;  // "added_tokens", each with its id
  std::string precompiled_charsmap;  // decoded from base64; empty: no Precompiled normalizer
};

// Reads folder/tokenizer.json (at most 64 MiB). Errors: kNotFound without the
// file; kInvalidArgument naming the file and the entry for malformed JSON, a
// missing model object, bad added tokens or bad base64; kUnimplemented for a
// single_word added token.
Expected<TokenizerJson> read_tokenizer_json(const std::filesystem::path& folder);

// Whether a tokenizer should read folder/tokenizer.json: it exists and one of
// the `legacy` files (vocab.json, merges.txt / spiece.model) does not.
bool use_tokenizer_json(const std::filesystem::path& folder, std::initializer_list<const char*> legacy);

// `json` with the entries of `config` whose content it lacks appended: the
// tokens a tokenizer.json lists keep its ids and flags.
std::vector<AddedTokenSpec> merge_added_tokens(std::vector<AddedTokenSpec> json,
                                               const std::vector<AddedTokenSpec>& config);

}  // namespace tp::detail
