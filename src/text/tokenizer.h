// Private (text): the tokenizers of Stable Diffusion 3's text encoders, torch-free.
//
// ClipTokenizer reads a CLIP BPE folder (tokenizer/ and tokenizer_2/ of a
// diffusers SD3 folder: vocab.json, merges.txt, tokenizer_config.json);
// T5Tokenizer reads a T5 sentencepiece folder (tokenizer_3/: spiece.model,
// tokenizer_config.json). Where those files are missing, both read
// tokenizer.json instead (the tokenizers library's format, all that
// transformers 5's save_pretrained writes besides tokenizer_config.json):
// a BPE model for CLIP, a Unigram model for T5. Both give the ids that diffusers'
// StableDiffusion3Pipeline gets from transformers (5.x):
//
//   tokenizer(prompt, padding="max_length", max_length=N, truncation=True, add_special_tokens=True).input_ids
//
// with CLIPTokenizer and T5TokenizerFast loaded from the same folder, and
// tests/unit/text/clip_tokenizer_test.cpp and t5_tokenizer_test.cpp checks every id against transformers on
// tests/data/tokenizer_corpus.txt.
//
//   auto clip = tp::ClipTokenizer::load(model / "tokenizer");   // tp::Expected<ClipTokenizer>
//   if (!clip) return tl::unexpected(clip.error());
//   tp::TokenizedText t = clip->encode("a red circle on a white background");
//   // t.ids.size() == 77: <|startoftext|> a red ... <|endoftext|> <pad>...
//
// Prompts are UTF-8. Invalid UTF-8 is not an error: each maximal invalid
// subsequence becomes U+FFFD, as Python's bytes.decode("utf-8",
// errors="replace") does, so the ids equal transformers' for that decoded
// text. Unicode properties (NFC, case, letters, graphemes) come from utf8proc
// (Unicode 13 in Debian 12's 2.6): characters assigned after Unicode 13 may
// tokenize differently from transformers.
//
// Errors from load(): kNotFound naming a missing file ("<folder>/vocab.json:
// ..."); kInvalidArgument naming the file and the problem for malformed
// vocab.json, merges.txt ("<folder>/merges.txt:12: ..."), tokenizer.json
// ("<folder>/tokenizer.json: model.merges[3]: ..."), tokenizer_config.json
// or spiece.model; kUnimplemented for a valid file that uses a feature these
// tokenizers do not support (a BPE sentencepiece model, byte fallback, a
// single_word added token).
//
// Threading: immutable after construction; encode is safe from any thread, on
// one object from many threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string_view>
#include <vector>

#include "twistedpic/expected.h"
#include "twistedpic/export.h"

namespace tp {
inline namespace v0 {

struct TokenizedText {
  // Exactly max_length ids: the special tokens, the prompt's tokens (cut to
  // fit), then padding.
  std::vector<int64_t> ids;
  // The ids before padding, specials included (the attention mask's ones).
  size_t length = 0;
  // Whether the prompt had more tokens than fit.
  bool truncated = false;
};

// CLIP's byte-level BPE: NFC, whitespace runs to one space, lowercase, CLIP's
// split ('s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+), bytes to
// CLIP's printable characters, merges by rank with "</w>" ending each word;
// then <|startoftext|> tokens <|endoftext|>, padded with the pad token.
// Special tokens written in the prompt ("<|endoftext|>", and "!" where it is
// the pad token as in SD3's tokenizer_2) are matched as transformers matches
// its added tokens.
class TP_EXPORT ClipTokenizer {
 public:
  // Reads folder/vocab.json and folder/merges.txt, or, when either is
  // missing, folder/tokenizer.json (its model's vocab and merges, and its
  // added_tokens with their ids and flags; like transformers' CLIPTokenizer,
  // the file's normalizer, pre-tokenizer and post-processor are taken to be
  // CLIP's). The special tokens' names (bos, eos, unk, pad) and any
  // added_tokens_decoder come from folder/tokenizer_config.json, else
  // folder/special_tokens_map.json; both are optional. Defaults: bos
  // <|startoftext|>, eos/unk/pad <|endoftext|>.
  static Expected<ClipTokenizer> load(const std::filesystem::path& folder);

  ClipTokenizer(ClipTokenizer&&) noexcept;
  ClipTokenizer& operator=(ClipTokenizer&&) noexcept;
  ~ClipTokenizer();

  // ids has max_length entries: bos, at most max_length - 2 prompt tokens,
  // eos, then pad ids. A max_length below 2 is taken as 2.
  TokenizedText encode(std::string_view utf8, size_t max_length = 77) const;

  int64_t bos_id() const;
  int64_t eos_id() const;
  int64_t pad_id() const;
  size_t vocab_size() const;  // entries in vocab.json (or tokenizer.json's model.vocab)

 private:
  struct Impl;
  struct Loader;
  explicit ClipTokenizer(std::unique_ptr<const Impl> impl);
  std::unique_ptr<const Impl> impl_;
};

// T5's sentencepiece unigram model, run as transformers' T5TokenizerFast
// runs it: the model's precompiled normalization (applied per grapheme, as
// the tokenizers library does), a split at whitespace, "▁" before each word,
// then the unigram model; then </s>, padded with <pad>. Special tokens in the
// prompt (</s>, <pad>, <unk>, <extra_id_0> ... <extra_id_99>) are matched
// first, as transformers does.
class TP_EXPORT T5Tokenizer {
 public:
  // Reads folder/spiece.model, or, without it, folder/tokenizer.json (a
  // Unigram model's [piece, score] vocab, the Precompiled normalizer's map and
  // the added tokens; like transformers' T5Tokenizer, the pre-tokenizer is
  // T5's whitespace split + Metaspace and the unknown id 2, whatever the
  // file says), and, when present, folder/tokenizer_config.json (eos_token,
  // pad_token, unk_token, extra_ids; defaults </s>, <pad>, <unk>, 100).
  static Expected<T5Tokenizer> load(const std::filesystem::path& folder);

  T5Tokenizer(T5Tokenizer&&) noexcept;
  T5Tokenizer& operator=(T5Tokenizer&&) noexcept;
  ~T5Tokenizer();

  // ids has max_length entries: at most max_length - 1 prompt tokens, eos,
  // then pad ids. A max_length of 0 is taken as 1.
  TokenizedText encode(std::string_view utf8, size_t max_length = 256) const;

  int64_t eos_id() const;
  int64_t pad_id() const;
  size_t vocab_size() const;  // the model's pieces plus the extra ids and added tokens

 private:
  struct Impl;
  explicit T5Tokenizer(std::unique_ptr<const Impl> impl);
  std::unique_ptr<const Impl> impl_;
};

}  // namespace v0
}  // namespace tp
