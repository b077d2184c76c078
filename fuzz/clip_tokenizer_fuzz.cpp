// libFuzzer target for tp::ClipTokenizer::encode: arbitrary bytes (invalid
// UTF-8, NULs, combining marks, special-token text) as the prompt.
//
// The first input byte picks the tokenizer and max_length; the rest is the
// prompt. Two tokenizers share the committed tests/data/tokenizer/clip
// vocabulary: as committed (SD3's CLIP-L, pad <|endoftext|>), and with "!" as
// the pad and an added token (SD3's CLIP-G), written to a scratch folder once.
// Every result must keep encode()'s promises: max_length ids (at least 2),
// <|startoftext|> first, <|endoftext|> last before the padding, padding only
// pad ids, every id in the vocabulary, and the same tokens as an encoding long
// enough not to truncate, cut to fit.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string_view>

#include "text/tokenizer.h"

namespace {

namespace fs = std::filesystem;

void check(bool ok) {
  if (!ok) std::abort();
}

tp::ClipTokenizer load(const fs::path& folder) {
  auto t = tp::ClipTokenizer::load(folder);
  check(static_cast<bool>(t));
  return std::move(*t);
}

// tokenizer_2 of an SD3 folder: the same files, "!" as the pad and an added
// token (1498 and 1499 are the committed vocabulary's specials).
fs::path write_bang_pad_folder() {
  const fs::path src = TP_FUZZ_CLIP_DIR;
  const fs::path dst = fs::temp_directory_path() / ("tp-clip-fuzz-" + std::to_string(::getpid()));
  fs::create_directories(dst);
  for (const char* f : {"vocab.json", "merges.txt"})
    fs::copy_file(src / f, dst / f, fs::copy_options::overwrite_existing);
  std::ofstream(dst / "tokenizer_config.json")
      << R"({"pad_token": "!", "added_tokens_decoder": {"0": {"content": "!", "special": true},
            "1498": {"content": "<|startoftext|>", "normalized": true, "special": true},
            "1499": {"content": "<|endoftext|>", "special": true}}})";
  return dst;
}

void check_result(const tp::ClipTokenizer& tok, const tp::TokenizedText& t, size_t max_length) {
  const size_t n = std::max<size_t>(max_length, 2);
  check(t.ids.size() == n);
  check(t.length >= 2 && t.length <= n);
  check(t.ids[0] == tok.bos_id() && t.ids[t.length - 1] == tok.eos_id());
  for (size_t i = t.length; i < n; ++i) check(t.ids[i] == tok.pad_id());
  for (int64_t id : t.ids) check(id >= 0 && static_cast<size_t>(id) < tok.vocab_size());
  check(!t.truncated || t.length == n);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const tp::ClipTokenizer clip_l = load(TP_FUZZ_CLIP_DIR);
  static const tp::ClipTokenizer clip_g = [] {
    const fs::path folder = write_bang_pad_folder();
    tp::ClipTokenizer t = load(folder);
    fs::remove_all(folder);
    return t;
  }();
  if (size == 0) return 0;
  const tp::ClipTokenizer& tok = (data[0] & 0x80) ? clip_g : clip_l;
  const size_t max_length = data[0] & 0x7F;  // 0..127; below 2 is taken as 2
  const std::string_view prompt(reinterpret_cast<const char*>(data + 1), size - 1);

  const tp::TokenizedText t = tok.encode(prompt, max_length);
  check_result(tok, t, max_length);
  // A length no prompt of this size can fill: each byte makes at most 3 (a
  // U+FFFD) and NFC or lowercasing at most triples that.
  const size_t long_enough = 16 * prompt.size() + 16;
  const tp::TokenizedText full = tok.encode(prompt, long_enough);
  check_result(tok, full, long_enough);
  check(!full.truncated);
  check(t.truncated == (full.length > t.ids.size()));
  const size_t kept = t.length - 1;  // the cut encoding's tokens, bos included
  check(std::equal(t.ids.begin(), t.ids.begin() + kept, full.ids.begin()));
  return 0;
}
