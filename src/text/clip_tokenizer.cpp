// ClipTokenizer: CLIP's byte-level BPE as transformers' CLIPTokenizer (a
// tokenizers-library pipeline) runs it. See include/twistedpic/tokenizer.h.
//
// The pipeline, step by step as the tokenizers library does it:
//   1. added tokens that are not "normalized" are cut out of the raw text;
//   2. each remaining span is normalized: NFC, runs of whitespace to one
//      space, lowercase (per character, full mapping: U+0130 -> "i" U+0307);
//   3. "normalized" added tokens are cut out of the normalized span;
//   4. CLIP's regex splits the rest into words, and the byte-level
//      pre-tokenizer splits them again with GPT-2's regex (which changes
//      only the words "<|startoftext|>" / "<|endoftext|>" that CLIP's regex
//      keeps whole: they become "<|", the name, "|>");
//   5. each word, as CLIP's byte characters with "</w>" on the last, goes
//      through BPE: the pair of adjacent symbols with the lowest merge rank
//      (then the leftmost) merges first, as tokenizers' Word::merge_all does;
//   6. <|startoftext|> + the first max_length - 2 tokens + <|endoftext|>, padded.
#include <algorithm>
#include <array>
#include <cstdint>
#include <queue>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <utf8proc.h>

#include "text/tokenizer_config.h"
#include "text/token_collector.h"
#include "text/unicode.h"
#include "text/tokenizer.h"
#include "util/file.h"
#include "util/json.h"

namespace tp {
inline namespace v0 {

namespace {

namespace fs = std::filesystem;
using detail::quote;
using nlohmann::json;

constexpr uint64_t kMaxVocabBytes = 64ull << 20;
constexpr uint64_t kMaxMergesBytes = 64ull << 20;
constexpr int64_t kMaxId = (int64_t{1} << 31) - 1;
constexpr std::string_view kEndOfWord = "</w>";

// CLIP's bytes_to_unicode(): printable bytes stand for themselves, the others
// for U+0100 upwards, in byte order.
std::array<std::string, 256> byte_characters() {
  std::array<std::string, 256> out;
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    detail::append_utf8(&out[b], printable ? static_cast<char32_t>(b) : next++);
  }
  return out;
}

// CLIP's normalizer: NFC, whitespace runs to one space, lowercase.
std::string normalize(std::string_view s) {
  const std::string composed = detail::nfc(s);
  std::string out;
  out.reserve(composed.size());
  bool in_space = false;
  for (size_t pos = 0; pos < composed.size();) {
    const char32_t c = detail::next_code_point(composed, &pos);
    if (detail::is_white_space(c)) {
      if (!in_space) out += ' ';
      in_space = true;
      continue;
    }
    in_space = false;
    if (c == 0x130) {  // the one unconditional multi-character lowercase mapping
      out += "i\xCC\x87";
      continue;
    }
    detail::append_utf8(&out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
  }
  return out;
}

struct Merge {
  uint32_t rank;
  int64_t id;  // of the merged symbol
};

uint64_t pair_key(int64_t a, int64_t b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint64_t>(b); }


}  // namespace

struct ClipTokenizer::Impl {
  std::unordered_map<std::string, int64_t> vocab;
  std::unordered_map<uint64_t, Merge> merges;  // by pair_key of the two symbols' ids
  std::array<int64_t, 256> byte_id{};          // a byte's symbol inside a word, -1 when not in the vocab
  std::array<int64_t, 256> byte_end_id{};      // ... as the last of a word (with "</w>")
  detail::AddedTokens raw_tokens;              // added tokens matched before normalization
  detail::AddedTokens normalized_tokens;       // ... after it
  int64_t bos = 0, eos = 0, pad = 0, unk = 0;

  void bpe(std::string_view word, detail::TokenCollector* out) const;
  void words(std::string_view normalized, detail::TokenCollector* out) const;
};

// BPE over one word, as tokenizers' Word::merge_all: a min-heap of
// (rank, position) candidates; a candidate is stale once either side has
// changed, which the re-check of the pair's merge catches.
void ClipTokenizer::Impl::bpe(std::string_view word, detail::TokenCollector* out) const {
  struct Symbol {
    int64_t id;
    int prev, next;
    bool alive;
  };
  std::vector<Symbol> symbols(word.size());
  for (size_t i = 0; i < word.size(); ++i) {
    const auto b = static_cast<unsigned char>(word[i]);
    const int64_t id = i + 1 == word.size() ? byte_end_id[b] : byte_id[b];
    symbols[i] = {id >= 0 ? id : unk, static_cast<int>(i) - 1, i + 1 < word.size() ? static_cast<int>(i) + 1 : -1,
                  true};
  }
  struct Candidate {
    uint32_t rank;
    int pos;
    int64_t id;
    bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }  // min-heap
  };
  std::priority_queue<Candidate> queue;
  auto push = [&](int pos) {
    const Symbol& s = symbols[pos];
    if (s.next < 0) return;
    auto m = merges.find(pair_key(s.id, symbols[s.next].id));
    if (m != merges.end()) queue.push({m->second.rank, pos, m->second.id});
  };
  for (size_t i = 0; i + 1 < symbols.size(); ++i) push(static_cast<int>(i));
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    auto m = merges.find(pair_key(left.id, right.id));
    if (m == merges.end() || m->second.id != top.id) continue;  // stale
    left.id = top.id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) push(left.prev);
    push(top.pos);
  }
  for (const Symbol& s : symbols)
    if (s.alive) out->add(s.id);
}

// CLIP's split of normalized text into words, each BPE'd:
// <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
void ClipTokenizer::Impl::words(std::string_view s, detail::TokenCollector* out) const {
  static constexpr std::string_view kSpecials[] = {"<|startoftext|>", "<|endoftext|>"};
  size_t pos = 0;
  while (pos < s.size() && !out->truncated()) {
    const size_t start = pos;
    bool special = false;
    for (std::string_view sp : kSpecials) {
      if (s.substr(pos).starts_with(sp)) {
        // GPT-2's regex in the byte-level pre-tokenizer splits it again.
        bpe("<|", out);
        bpe(sp.substr(2, sp.size() - 4), out);
        bpe("|>", out);
        pos += sp.size();
        special = true;
        break;
      }
    }
    if (special) continue;
    const char32_t c = detail::next_code_point(s, &pos);
    if (c == '\'') {
      const std::string_view rest = s.substr(pos);
      size_t n = 0;
      if (!rest.empty() && (rest[0] == 's' || rest[0] == 't' || rest[0] == 'm' || rest[0] == 'd')) n = 1;
      if (rest.starts_with("re") || rest.starts_with("ve") || rest.starts_with("ll")) n = 2;
      if (n > 0) {
        pos += n;
        bpe(s.substr(start, pos - start), out);
        continue;
      }
    }
    if (detail::is_white_space(c)) continue;
    // Extends the word while `in_class` holds for the next character.
    auto extend = [&](auto in_class) {
      while (pos < s.size()) {
        size_t next = pos;
        if (!in_class(detail::next_code_point(s, &next))) break;
        pos = next;
      }
    };
    if (detail::is_letter(c)) {
      extend(detail::is_letter);
    } else if (!detail::is_number(c)) {
      extend([](char32_t d) { return !detail::is_white_space(d) && !detail::is_letter(d) && !detail::is_number(d); });
    }
    bpe(s.substr(start, pos - start), out);
  }
}

ClipTokenizer::ClipTokenizer(std::unique_ptr<const Impl> impl) : impl_(std::move(impl)) {}
ClipTokenizer::ClipTokenizer(ClipTokenizer&&) noexcept = default;
ClipTokenizer& ClipTokenizer::operator=(ClipTokenizer&&) noexcept = default;
ClipTokenizer::~ClipTokenizer() = default;

int64_t ClipTokenizer::bos_id() const { return impl_->bos; }
int64_t ClipTokenizer::eos_id() const { return impl_->eos; }
int64_t ClipTokenizer::pad_id() const { return impl_->pad; }
size_t ClipTokenizer::vocab_size() const { return impl_->vocab.size(); }

// Fills an Impl's vocabulary and merges from the legacy files or tokenizer.json.
struct ClipTokenizer::Loader {
  // {"token": id, ...}; `where` names it in messages.
  static Status vocab(const json& vocab, const std::string& where, Impl* impl) {
    if (!vocab.is_object()) return invalid_argument(where + " is " + detail::json_type_phrase(vocab) + ", not an object");
    if (vocab.empty()) return invalid_argument(where + ": no tokens");
    for (const auto& [token, id] : vocab.items()) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > kMaxId)
        return invalid_argument(where + ": token " + quote(token) + " has id " + quote(id.dump()) +
                                ", not an integer in [0, 2^31)");
      impl->vocab.emplace(token, id.get<int64_t>());
    }
    return {};
  }

  // One merge of rank `rank`; a repeated pair takes its last rank, as the
  // tokenizers library's hash map does.
  static Status merge(const std::string& left, const std::string& right, uint32_t rank, const std::string& where,
                      const std::string& vocab_name, Impl* impl) {
    const std::string merged = left + right;
    for (const std::string* token : {&left, &right, &merged})
      if (!impl->vocab.count(*token)) return invalid_argument(where + quote(*token) + " is not in " + vocab_name);
    impl->merges[pair_key(impl->vocab[left], impl->vocab[right])] = Merge{rank, impl->vocab[merged]};
    return {};
  }

  // vocab.json and merges.txt.
  static Status legacy(const fs::path& folder, Impl* impl) {
    const fs::path vocab_path = folder / "vocab.json";
    TP_ASSIGN_OR_RETURN(json vocab, detail::read_json_object_file(vocab_path, kMaxVocabBytes));
    TP_TRY(Loader::vocab(vocab, vocab_path.string(), impl));

    // merges.txt: an optional "#version..." line, then "left right" per line,
    // best first (tokenizers' BPE::read_file: one space, nothing else).
    const fs::path merges_path = folder / "merges.txt";
    TP_ASSIGN_OR_RETURN(std::string merges, detail::read_text_file(merges_path, kMaxMergesBytes));
    if (!merges.empty() && merges.back() == '\n') merges.pop_back();
    uint32_t rank = 0;
    size_t line_no = 0;
    for (size_t begin = 0; begin <= merges.size() && !merges.empty();) {
      size_t end = merges.find('\n', begin);
      if (end == std::string::npos) end = merges.size();
      std::string_view line(merges.data() + begin, end - begin);
      begin = end + 1;
      ++line_no;
      if (line.ends_with('\r')) line.remove_suffix(1);
      if (line.starts_with("#version")) continue;
      const std::string where = merges_path.string() + ":" + std::to_string(line_no) + ": ";
      const size_t space = line.find(' ');
      if (space == std::string_view::npos || space == 0 || space + 1 == line.size() ||
          line.find(' ', space + 1) != std::string_view::npos)
        return invalid_argument(where + "want two tokens separated by one space, got " + quote(line));
      TP_TRY(merge(std::string(line.substr(0, space)), std::string(line.substr(space + 1)), rank++, where,
                   vocab_path.filename().string(), impl));
    }
    return {};
  }

  // tokenizer.json's BPE model: model.vocab and model.merges (each "left right"
  // or ["left", "right"]). As transformers' CLIPTokenizer, nothing else of the
  // file changes the pipeline: the normalizer, pre-tokenizer, end-of-word
  // suffix ("</w>") and post-processor are CLIP's whatever the file says.
  static Status from_json(const detail::TokenizerJson& tj, Impl* impl) {
    const std::string file = tj.origin.string();
    if (auto type = tj.model.find("type"); type != tj.model.end() && *type != "BPE")
      return invalid_argument(file + ": model.type is " + quote(type->dump()) + "; a CLIP tokenizer is a 'BPE'");
    auto vocab = tj.model.find("vocab");
    if (vocab == tj.model.end()) return invalid_argument(file + ": model has no 'vocab'");
    TP_TRY(Loader::vocab(*vocab, file + ": model.vocab", impl));
    auto merges = tj.model.find("merges");
    if (merges == tj.model.end() || !merges->is_array())
      return invalid_argument(file + ": model.merges is missing or not an array");
    for (size_t i = 0; i < merges->size(); ++i) {
      const json& m = (*merges)[i];
      const std::string where = file + ": model.merges[" + std::to_string(i) + "]: ";
      std::string left, right;
      if (m.is_string()) {
        const std::string line = m.get<std::string>();
        const size_t space = line.find(' ');
        if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
          return invalid_argument(where + "want two tokens separated by one space, got " + quote(line));
        left = line.substr(0, space);
        right = line.substr(space + 1);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        left = m[0].get<std::string>();
        right = m[1].get<std::string>();
      } else {
        return invalid_argument(where + "want \"left right\" or [\"left\", \"right\"], got " + quote(m.dump()));
      }
      TP_TRY(merge(left, right, static_cast<uint32_t>(i), where, "model.vocab", impl));
    }
    return {};
  }
};

Expected<ClipTokenizer> ClipTokenizer::load(const fs::path& folder) {
  auto impl = std::make_unique<Impl>();
  std::vector<detail::AddedTokenSpec> file_tokens;  // tokenizer.json's added tokens
  std::string vocab_name = "vocab.json";
  if (detail::use_tokenizer_json(folder, {"vocab.json", "merges.txt"})) {
    TP_ASSIGN_OR_RETURN(detail::TokenizerJson tj, detail::read_tokenizer_json(folder));
    TP_TRY(Loader::from_json(tj, impl.get()));
    file_tokens = std::move(tj.added_tokens);
    vocab_name = "tokenizer.json";
  } else {
    TP_TRY(Loader::legacy(folder, impl.get()));
  }
  const std::array<std::string, 256> chars = byte_characters();
  for (int b = 0; b < 256; ++b) {
    auto it = impl->vocab.find(chars[b]);
    impl->byte_id[b] = it == impl->vocab.end() ? -1 : it->second;
    it = impl->vocab.find(chars[b] + std::string(kEndOfWord));
    impl->byte_end_id[b] = it == impl->vocab.end() ? -1 : it->second;
  }

  // Special and added tokens: tokenizer.json's, then tokenizer_config.json's.
  detail::SpecialTokenDefaults defaults{"<|startoftext|>", "<|endoftext|>", "<|endoftext|>", "<|endoftext|>"};
  TP_ASSIGN_OR_RETURN(detail::TokenizerConfig config, detail::read_tokenizer_config(folder, defaults));
  std::unordered_map<std::string, int64_t> added;  // content -> id
  for (const detail::AddedTokenSpec& t : detail::merge_added_tokens(std::move(file_tokens), config.added_tokens)) {
    int64_t id = t.id;
    if (id < 0) {  // a special token not in added_tokens_decoder: its vocabulary id
      auto it = impl->vocab.find(t.content);
      if (it == impl->vocab.end())
        return invalid_argument(config.origin.string() + ": special token " + quote(t.content) + " is not in " +
                                vocab_name);
      id = it->second;
    }
    added[t.content] = id;
    if (t.normalized)
      impl->normalized_tokens.add(normalize(t.content), id);
    else
      impl->raw_tokens.add(t.content, id);
  }
  impl->bos = added.at(config.bos);
  impl->eos = added.at(config.eos);
  impl->pad = added.at(config.pad);
  impl->unk = added.at(config.unk);
  return ClipTokenizer(std::move(impl));
}

TokenizedText ClipTokenizer::encode(std::string_view utf8, size_t max_length) const {
  max_length = std::max<size_t>(max_length, 2);
  detail::TokenCollector tokens(max_length - 2);
  detail::collect_tokens(
      detail::sanitize_utf8(utf8), impl_->raw_tokens, impl_->normalized_tokens, normalize,
      [&](std::string_view text, detail::TokenCollector* out) { impl_->words(text, out); }, &tokens);
  TokenizedText out;
  out.ids.reserve(max_length);
  out.ids.push_back(impl_->bos);
  out.ids.insert(out.ids.end(), tokens.ids().begin(), tokens.ids().end());
  out.ids.push_back(impl_->eos);
  out.length = out.ids.size();
  out.truncated = tokens.truncated();
  out.ids.resize(max_length, impl_->pad);
  return out;
}

}  // namespace v0
}  // namespace tp
