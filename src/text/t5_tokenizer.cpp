// T5Tokenizer: a sentencepiece unigram model run as transformers'
// T5TokenizerFast runs it. See include/twistedpic/tokenizer.h.
//
// transformers does not call sentencepiece: it rebuilds the model in the
// tokenizers library, whose pipeline differs from sentencepiece's own:
//   1. added tokens (</s>, <pad>, <unk>, <extra_id_N>, the model's control
//      pieces) are cut out of the raw text;
//   2. the model's precompiled normalization map (NFKC for T5) is applied per
//      extended grapheme cluster: a cluster under 6 bytes that starts with a
//      mapped sequence is replaced whole by that sequence's mapping (so
//      "e" U+0301 U+0301 becomes "é", dropping the second accent), others
//      character by character;
//   3. the text is split at every Unicode White_Space character (sentencepiece
//      knows only U+0020, so U+0085 differs), "▁" is put before each word not
//      starting with one, and words are cut again before each inner "▁";
//   4. each piece goes through the unigram model, in which every piece of the
//      model can match, control pieces such as "</s>" included (sentencepiece
//      never matches those), and unknown characters get id 2;
//   5. the first max_length - 1 tokens + </s>, padded with <pad>.
// Steps 1-3 and 5 are done here. For step 4, load() rewrites the serialized
// model before handing it to sentencepiece: its normalizer becomes the
// identity without dummy prefix or whitespace handling, every piece becomes
// a normal piece, and a new, unmatchable unknown piece is appended (its id
// is mapped back to 2). Sentencepiece's Viterbi over that model is the
// tokenizers library's.
#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

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

constexpr uint64_t kMaxModelBytes = 256ull << 20;
constexpr std::string_view kMetaspace = "\xE2\x96\x81";  // ▁ U+2581
constexpr int64_t kUnkId = 2;                             // T5TokenizerFast's Unigram(..., unk_id=2)
// The appended unknown piece: U+FFFF is a noncharacter, which no normalized
// prompt is expected to hold in front of this text.
constexpr std::string_view kUnkPiece = "\xEF\xBF\xBFtwistedpic-unk";

// ---- protobuf wire format: just enough to read and rewrite a ModelProto ----------

struct WireField {
  uint32_t number = 0;
  uint32_t type = 0;        // 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32
  uint64_t varint = 0;      // type 0
  std::string_view bytes;   // type 2: the payload; types 1 and 5: the raw value
  std::string_view raw;     // the whole field, tag included
};

class WireReader {
 public:
  explicit WireReader(std::string_view data) : data_(data) {}
  bool done() const { return pos_ == data_.size(); }

  // The next field; false with *error set when the data is malformed.
  bool next(WireField* f, std::string* error) {
    const size_t start = pos_;
    uint64_t tag = 0;
    if (!varint(&tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1FFFFFFF) return fail(error, "bad field tag");
    f->number = static_cast<uint32_t>(tag >> 3);
    f->type = static_cast<uint32_t>(tag & 7);
    uint64_t n = 0;
    switch (f->type) {
      case 0:
        if (!varint(&f->varint)) return fail(error, "bad varint");
        break;
      case 1:
      case 5:
        n = f->type == 1 ? 8 : 4;
        if (data_.size() - pos_ < n) return fail(error, "truncated field");
        f->bytes = data_.substr(pos_, n);
        pos_ += n;
        break;
      case 2:
        if (!varint(&n) || n > data_.size() - pos_) return fail(error, "truncated field");
        f->bytes = data_.substr(pos_, n);
        pos_ += n;
        break;
      default:
        return fail(error, "unsupported wire type " + std::to_string(f->type));
    }
    f->raw = data_.substr(start, pos_ - start);
    return true;
  }

 private:
  bool varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64 && pos_ < data_.size(); shift += 7) {
      const auto b = static_cast<unsigned char>(data_[pos_++]);
      *v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  static bool fail(std::string* error, std::string what) {
    *error = std::move(what);
    return false;
  }

  std::string_view data_;
  size_t pos_ = 0;
};

void put_varint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    *out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  *out += static_cast<char>(v);
}
void put_bytes(std::string* out, uint32_t number, std::string_view bytes) {
  put_varint(out, (uint64_t{number} << 3) | 2);
  put_varint(out, bytes.size());
  out->append(bytes);
}
void put_varint_field(std::string* out, uint32_t number, uint64_t v) {
  put_varint(out, uint64_t{number} << 3);
  put_varint(out, v);
}

// ModelProto field numbers (sentencepiece_model.proto).
enum : uint32_t { kPieces = 1, kTrainerSpec = 2, kNormalizerSpec = 3, kSelfTestData = 4 };
enum : uint32_t { kPieceText = 1, kPieceScore = 2, kPieceType = 3 };
enum : uint64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4 };

struct ParsedModel {
  std::vector<std::string> pieces;
  std::vector<uint64_t> types;
  std::string charsmap;   // normalizer_spec.precompiled_charsmap; empty: none
  std::string rewritten;  // the model to load into sentencepiece (see the file comment)
};

// Parses and rewrites a serialized ModelProto; errors are reasons for a message.
Expected<ParsedModel> parse_model(std::string_view data) {
  ParsedModel m;
  std::string error;
  bool has_unknown = false;
  WireReader top(data);
  while (!top.done()) {
    WireField f;
    if (!top.next(&f, &error)) return invalid_argument(error);
    if (f.number == kPieces && f.type == 2) {
      std::string piece, rest;
      uint64_t type = kNormal;
      WireReader sub(f.bytes);
      while (!sub.done()) {
        WireField g;
        if (!sub.next(&g, &error)) return invalid_argument("piece " + std::to_string(m.pieces.size()) + ": " + error);
        if (g.number == kPieceText && g.type == 2) piece = std::string(g.bytes);
        if (g.number == kPieceType && g.type == 0) type = g.varint;
        if (g.number != kPieceType) rest.append(g.raw);  // every piece becomes NORMAL (the default)
      }
      if (detail::sanitize_utf8(piece) != piece)
        return invalid_argument("piece " + std::to_string(m.pieces.size()) + " is not valid UTF-8");
      has_unknown = has_unknown || type == kUnknown;
      m.pieces.push_back(std::move(piece));
      m.types.push_back(type);
      put_bytes(&m.rewritten, kPieces, rest);
    } else if (f.number == kTrainerSpec && f.type == 2) {
      WireReader sub(f.bytes);
      while (!sub.done()) {
        WireField g;
        if (!sub.next(&g, &error)) return invalid_argument("trainer_spec: " + error);
        if (g.number == 3 && g.type == 0 && g.varint != 1)  // model_type: UNIGRAM = 1
          return unimplemented("a sentencepiece model of type " + std::to_string(g.varint) +
                               " (only unigram models, type 1, are supported)");
        if (g.number == 35 && g.type == 0 && g.varint != 0)
          return unimplemented("a sentencepiece model with byte_fallback (not supported)");
      }
      m.rewritten.append(f.raw);
    } else if (f.number == kNormalizerSpec && f.type == 2) {
      WireReader sub(f.bytes);
      while (!sub.done()) {
        WireField g;
        if (!sub.next(&g, &error)) return invalid_argument("normalizer_spec: " + error);
        if (g.number == 2 && g.type == 2) m.charsmap = std::string(g.bytes);
      }
    } else if (f.number != kSelfTestData) {  // self-tests would fail with the new normalizer
      m.rewritten.append(f.raw);
    }
  }
  if (m.pieces.size() <= kUnkId) return invalid_argument("has " + std::to_string(m.pieces.size()) + " pieces, want 3 or more");
  if (!has_unknown) return invalid_argument("has no unknown piece");
  std::string unk;
  put_bytes(&unk, kPieceText, kUnkPiece);
  put_varint(&unk, (uint64_t{kPieceScore} << 3) | 5);
  unk.append(4, '\0');  // score 0.0f (unused: sentencepiece scores unknowns itself)
  put_varint_field(&unk, kPieceType, kUnknown);
  put_bytes(&m.rewritten, kPieces, unk);
  std::string normalizer;
  put_bytes(&normalizer, 1, "identity");  // name
  put_varint_field(&normalizer, 3, 0);    // add_dummy_prefix
  put_varint_field(&normalizer, 4, 0);    // remove_extra_whitespaces
  put_varint_field(&normalizer, 5, 0);    // escape_whitespaces
  put_bytes(&m.rewritten, kNormalizerSpec, normalizer);
  return m;
}

// A serialized ModelProto for tokenizer.json's Unigram vocab ([piece, score]
// pairs), piece kUnkId typed UNKNOWN as in a T5 spiece.model, for
// parse_model() to rewrite like one read from disk. `file` names it in messages.
Expected<std::string> model_from_tokenizer_json(const nlohmann::json& model, const std::string& file) {
  if (auto type = model.find("type"); type != model.end() && *type != "Unigram")
    return invalid_argument(file + ": model.type is " + quote(type->dump()) + "; a T5 tokenizer is a 'Unigram'");
  auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_array())
    return invalid_argument(file + ": model.vocab is missing or not an array of [piece, score]");
  std::string proto;
  for (size_t i = 0; i < vocab->size(); ++i) {
    const nlohmann::json& e = (*vocab)[i];
    if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number())
      return invalid_argument(file + ": model.vocab[" + std::to_string(i) + "] is " + quote(e.dump()) +
                              ", not [piece, score]");
    const float score = static_cast<float>(e[1].get<double>());
    char bytes[4];
    std::memcpy(bytes, &score, 4);  // little-endian hosts only, as the charsmap reader
    std::string piece;
    put_bytes(&piece, kPieceText, e[0].get<std::string>());
    put_varint(&piece, (uint64_t{kPieceScore} << 3) | 5);
    piece.append(bytes, 4);
    put_varint_field(&piece, kPieceType, i == kUnkId ? kUnknown : kNormal);
    put_bytes(&proto, kPieces, piece);
  }
  std::string trainer;
  put_varint_field(&trainer, 3, 1);  // model_type: UNIGRAM
  put_bytes(&proto, kTrainerSpec, trainer);
  return proto;
}

// ---- the precompiled normalization map, applied as the tokenizers library does ------

uint32_t load_le32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// A darts-clone double-array trie from UTF-8 sequences to offsets into a
// blob of NUL-terminated replacements.
class Charsmap {
 public:
  static Expected<Charsmap> parse(std::string_view blob) {
    Charsmap c;
    if (blob.size() < 4) return invalid_argument("precompiled_charsmap is " + std::to_string(blob.size()) + " bytes");
    const uint32_t trie_bytes = load_le32(blob.data());
    if (trie_bytes == 0 || trie_bytes % 4 != 0 || trie_bytes > blob.size() - 4)
      return invalid_argument("precompiled_charsmap: bad trie size " + std::to_string(trie_bytes));
    c.units_.resize(trie_bytes / 4);
    for (size_t i = 0; i < c.units_.size(); ++i) c.units_[i] = load_le32(blob.data() + 4 + 4 * i);
    c.replacements_ = std::string(blob.substr(4 + trie_bytes));
    if (detail::sanitize_utf8(c.replacements_) != c.replacements_)
      return invalid_argument("precompiled_charsmap: replacements are not valid UTF-8");
    return c;
  }

  // The replacement of the shortest mapped prefix of `chunk` (the tokenizers
  // library's Precompiled::transform), if any.
  std::optional<std::string_view> transform(std::string_view chunk) const {
    size_t node = offset(units_[0]);
    for (char ch : chunk) {
      const auto c = static_cast<unsigned char>(ch);
      if (c == 0) break;
      node ^= c;
      if (node >= units_.size()) return std::nullopt;
      const uint32_t unit = units_[node];
      if ((unit & ((1u << 31) | 0xFF)) != c) return std::nullopt;  // label
      node ^= offset(unit);
      if (node >= units_.size()) return std::nullopt;
      if ((unit >> 8) & 1) {  // has a leaf: its value is the replacement's offset
        const size_t at = units_[node] & ((1u << 31) - 1);
        if (at >= replacements_.size()) return std::nullopt;
        const std::string_view rest = std::string_view(replacements_).substr(at);
        return rest.substr(0, rest.find('\0'));
      }
    }
    return std::nullopt;
  }

  std::string normalize(std::string_view s) const {
    std::string out;
    out.reserve(s.size());
    detail::for_each_grapheme(s, [&](std::string_view cluster) {
      if (cluster.size() < 6) {
        if (auto r = transform(cluster)) {
          out.append(*r);
          return;
        }
      }
      for (size_t pos = 0; pos < cluster.size();) {
        const size_t start = pos;
        detail::next_code_point(cluster, &pos);
        const std::string_view c = cluster.substr(start, pos - start);
        auto r = transform(c);
        out.append(r ? *r : c);
      }
    });
    return out;
  }

 private:
  static size_t offset(uint32_t unit) { return (unit >> 10) << ((unit & (1u << 9)) >> 6); }

  std::vector<uint32_t> units_;
  std::string replacements_;
};


}  // namespace

struct T5Tokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
  int64_t sp_unk = -1;  // the appended unknown piece's id in `sp`
  std::optional<Charsmap> charsmap;
  detail::AddedTokens raw_tokens, normalized_tokens;
  int64_t eos = 1, pad = 0;
  size_t vocab_size = 0;

  void words(std::string_view normalized, detail::TokenCollector* out) const;
};

void T5Tokenizer::Impl::words(std::string_view s, detail::TokenCollector* out) const {
  std::vector<int> ids;
  auto encode = [&](std::string_view piece) {
    if (!sp.Encode(piece, &ids).ok()) ids.assign(1, static_cast<int>(sp_unk));  // only fails unloaded
    for (int id : ids) out->add(id == sp_unk ? kUnkId : id);
  };
  // Extends `pos` over the characters for which is_white_space() == `space`.
  auto skip = [&](size_t pos, bool space) {
    while (pos < s.size()) {
      size_t next = pos;
      if (detail::is_white_space(detail::next_code_point(s, &next)) != space) break;
      pos = next;
    }
    return pos;
  };
  for (size_t pos = skip(0, true); pos < s.size() && !out->truncated(); pos = skip(pos, true)) {
    const size_t start = pos;
    pos = skip(pos, false);
    const std::string_view word = s.substr(start, pos - start);
    // Metaspace: "▁" first, then a piece per "▁".
    std::string marked = word.starts_with(kMetaspace) ? std::string(word) : std::string(kMetaspace) + std::string(word);
    const std::string_view m = marked;
    size_t from = 0;
    for (size_t next = m.find(kMetaspace, kMetaspace.size()); next != std::string_view::npos && !out->truncated();
         next = m.find(kMetaspace, next + kMetaspace.size())) {
      encode(m.substr(from, next - from));
      from = next;
    }
    if (!out->truncated()) encode(m.substr(from));
  }
}

T5Tokenizer::T5Tokenizer(std::unique_ptr<const Impl> impl) : impl_(std::move(impl)) {}
T5Tokenizer::T5Tokenizer(T5Tokenizer&&) noexcept = default;
T5Tokenizer& T5Tokenizer::operator=(T5Tokenizer&&) noexcept = default;
T5Tokenizer::~T5Tokenizer() = default;

int64_t T5Tokenizer::eos_id() const { return impl_->eos; }
int64_t T5Tokenizer::pad_id() const { return impl_->pad; }
size_t T5Tokenizer::vocab_size() const { return impl_->vocab_size; }

Expected<T5Tokenizer> T5Tokenizer::load(const fs::path& folder) {
  fs::path path = folder / "spiece.model";
  std::string data, charsmap_blob;
  std::vector<detail::AddedTokenSpec> file_tokens;  // tokenizer.json's added tokens
  const bool from_json = detail::use_tokenizer_json(folder, {"spiece.model"});
  if (from_json) {
    TP_ASSIGN_OR_RETURN(detail::TokenizerJson tj, detail::read_tokenizer_json(folder));
    path = tj.origin;
    TP_ASSIGN_OR_RETURN(data, model_from_tokenizer_json(tj.model, path.string()));
    charsmap_blob = std::move(tj.precompiled_charsmap);
    file_tokens = std::move(tj.added_tokens);
  } else {
    TP_ASSIGN_OR_RETURN(data, detail::read_text_file(path, kMaxModelBytes));
  }
  auto parsed = parse_model(data);
  if (!parsed)
    return make_error(parsed.error().code, path.string() + ": not a usable " +
                                               (from_json ? "Unigram model" : "sentencepiece model") + ": " +
                                               parsed.error().message);
  if (from_json) parsed->charsmap = std::move(charsmap_blob);
  auto impl = std::make_unique<Impl>();
  const auto status = impl->sp.LoadFromSerializedProto(parsed->rewritten);
  if (!status.ok()) return invalid_argument(path.string() + ": not a usable sentencepiece model: " + status.ToString());
  impl->sp_unk = static_cast<int64_t>(parsed->pieces.size());
  if (!parsed->charsmap.empty()) {
    auto charsmap = Charsmap::parse(parsed->charsmap);
    if (!charsmap) return invalid_argument(path.string() + ": " + charsmap.error().message);
    impl->charsmap = std::move(*charsmap);
  }

  // Added tokens: the model's control and user-defined pieces (as
  // transformers extracts them), the config's, then the extra ids.
  std::unordered_map<std::string, int64_t> ids;  // piece -> id
  for (size_t i = 0; i < parsed->pieces.size(); ++i) ids.emplace(parsed->pieces[i], static_cast<int64_t>(i));
  std::unordered_map<std::string, int64_t> added;
  for (size_t i = 0; i < parsed->pieces.size(); ++i) {
    if (parsed->types[i] != kControl && parsed->types[i] != kUserDefined) continue;
    impl->raw_tokens.add(parsed->pieces[i], static_cast<int64_t>(i));
    added[parsed->pieces[i]] = static_cast<int64_t>(i);
  }
  TP_ASSIGN_OR_RETURN(detail::TokenizerConfig config,
                      detail::read_tokenizer_config(folder, {"", "</s>", "<unk>", "<pad>"}));
  int64_t max_added = -1;
  for (const detail::AddedTokenSpec& t : detail::merge_added_tokens(std::move(file_tokens), config.added_tokens)) {
    int64_t id = t.id;
    if (id < 0) {
      auto it = ids.find(t.content);
      if (it == ids.end())
        return invalid_argument(config.origin.string() + ": special token " + quote(t.content) + " is not a piece of " +
                                path.filename().string());
      id = it->second;
    }
    (t.normalized ? impl->normalized_tokens : impl->raw_tokens).add(t.content, id);
    added[t.content] = id;
    max_added = std::max(max_added, id);
  }
  const int64_t extra = config.extra_ids.value_or(100);
  impl->vocab_size = std::max<size_t>(parsed->pieces.size(), static_cast<size_t>(max_added + 1));
  for (int64_t i = 0; i < extra; ++i) {
    const std::string name = "<extra_id_" + std::to_string(i) + ">";
    if (added.count(name) || ids.count(name)) continue;
    const int64_t id = static_cast<int64_t>(parsed->pieces.size()) + extra - 1 - i;  // <extra_id_0> last
    impl->raw_tokens.add(name, id);
    impl->vocab_size = std::max<size_t>(impl->vocab_size, id + 1);
  }
  impl->eos = added.at(config.eos);
  impl->pad = added.at(config.pad);
  return T5Tokenizer(std::move(impl));
}

TokenizedText T5Tokenizer::encode(std::string_view utf8, size_t max_length) const {
  max_length = std::max<size_t>(max_length, 1);
  detail::TokenCollector tokens(max_length - 1);
  detail::collect_tokens(
      detail::sanitize_utf8(utf8), impl_->raw_tokens, impl_->normalized_tokens,
      [&](std::string_view raw) { return impl_->charsmap ? impl_->charsmap->normalize(raw) : std::string(raw); },
      [&](std::string_view text, detail::TokenCollector* out) { impl_->words(text, out); }, &tokens);
  TokenizedText out;
  out.ids = tokens.ids();
  out.ids.push_back(impl_->eos);
  out.length = out.ids.size();
  out.truncated = tokens.truncated();
  out.ids.resize(max_length, impl_->pad);
  return out;
}

}  // namespace v0
}  // namespace tp
