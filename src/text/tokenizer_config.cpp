// Special and added tokens from tokenizer_config.json / special_tokens_map.json.
// See tokenizer_config.h.
#include "text/tokenizer_config.h"

#include <charconv>
#include <map>

#include "util/json.h"

namespace tp::detail {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr uint64_t kMaxConfigBytes = 16ull << 20;
constexpr uint64_t kMaxTokenizerJsonBytes = 64ull << 20;  // T5-XXL's is 2.4 MB, CLIP's 3.6 MB
constexpr int64_t kMaxId = (int64_t{1} << 31) - 1;
constexpr int64_t kMaxExtraIds = 100000;

// The file's object, or an empty object when there is no file.
Expected<json> read_optional_object(const fs::path& path) {
  auto value = read_json_object_file(path, kMaxConfigBytes);
  if (!value && value.error().code == ErrorCode::kNotFound) return json::object();
  return value;
}

Expected<bool> flag(const json& token, const char* key, bool fallback, const std::string& where) {
  auto it = token.find(key);
  if (it == token.end() || it->is_null()) return fallback;
  if (!it->is_boolean())
    return invalid_argument(where + ": '" + key + "' is " + json_type_phrase(*it) + ", not a boolean");
  return it->get<bool>();
}

// An added token object; `where` names it for messages ("<file>: added_tokens_decoder.49407").
Expected<AddedTokenSpec> parse_token_object(const json& token, bool special_default, const std::string& where) {
  auto content = token.find("content");
  if (content == token.end() || !content->is_string() || content->get<std::string>().empty())
    return invalid_argument(where + ": want a non-empty string 'content'");
  TP_ASSIGN_OR_RETURN(bool special, flag(token, "special", special_default, where));
  TP_ASSIGN_OR_RETURN(bool normalized, flag(token, "normalized", !special, where));
  TP_ASSIGN_OR_RETURN(bool single_word, flag(token, "single_word", false, where));
  for (const char* key : {"lstrip", "rstrip"}) TP_TRY(flag(token, key, false, where));  // no effect on ids
  if (single_word)
    return unimplemented(where + ": token " + quote(content->get<std::string>()) +
                         " is single_word, which twistedpic's tokenizers do not support");
  return AddedTokenSpec{content->get<std::string>(), -1, normalized};
}

// bos_token, ...: a string, an object, or null (the default stays).
Status read_special(const json& file, const fs::path& path, const char* key, std::optional<AddedTokenSpec>* out) {
  auto it = file.find(key);
  if (it == file.end() || it->is_null()) return ok_status();
  const std::string where = path.string() + ": " + key;
  if (it->is_string()) {
    if (it->get<std::string>().empty()) return invalid_argument(where + " is empty");
    *out = AddedTokenSpec{it->get<std::string>(), -1, false};
    return ok_status();
  }
  if (!it->is_object())
    return invalid_argument(where + " is " + json_type_phrase(*it) + ", want a string or an object");
  TP_ASSIGN_OR_RETURN(*out, parse_token_object(*it, true, where));
  return ok_status();
}

// RFC 4648 base64 (padding optional, no whitespace); nullopt when malformed.
std::optional<std::string> decode_base64(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t bits = 0;
  int count = 0;
  for (char c : in) {
    const int v = value(c);
    if (v < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    if (++count == 4) {
      out += static_cast<char>(bits >> 16);
      out += static_cast<char>(bits >> 8);
      out += static_cast<char>(bits);
      bits = 0;
      count = 0;
    }
  }
  if (count == 2) out += static_cast<char>(bits >> 4);
  if (count == 3) {
    out += static_cast<char>(bits >> 10);
    out += static_cast<char>(bits >> 2);
  }
  return out;
}

}  // namespace

Expected<TokenizerConfig> read_tokenizer_config(const fs::path& folder, const SpecialTokenDefaults& defaults) {
  TokenizerConfig out;
  out.origin = folder / "tokenizer_config.json";
  TP_ASSIGN_OR_RETURN(json config, read_optional_object(out.origin));

  static constexpr const char* kKeys[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
  std::optional<AddedTokenSpec> specials[4];
  for (int i = 0; i < 4; ++i) TP_TRY(read_special(config, out.origin, kKeys[i], &specials[i]));

  std::map<int64_t, AddedTokenSpec> decoder;
  auto it = config.find("added_tokens_decoder");
  if (it == config.end()) {
    const fs::path map_path = folder / "special_tokens_map.json";
    TP_ASSIGN_OR_RETURN(json map, read_optional_object(map_path));
    for (int i = 0; i < 4; ++i) TP_TRY(read_special(map, map_path, kKeys[i], &specials[i]));
  } else {
    if (!it->is_object())
      return invalid_argument(out.origin.string() + ": added_tokens_decoder is " + json_type_phrase(*it) +
                              ", not an object");
    for (const auto& [key, token] : it->items()) {
      const std::string where = out.origin.string() + ": added_tokens_decoder." + key;
      int64_t id = -1;
      auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
      if (ec != std::errc() || end != key.data() + key.size() || id < 0 || id > kMaxId)
        return invalid_argument(where + ": the key is not an id in [0, 2^31)");
      if (!token.is_object()) return invalid_argument(where + " is " + json_type_phrase(token) + ", not an object");
      TP_ASSIGN_OR_RETURN(AddedTokenSpec spec, parse_token_object(token, false, where));
      spec.id = id;
      decoder[id] = std::move(spec);
    }
  }

  std::string* names[4] = {&out.bos, &out.eos, &out.unk, &out.pad};
  const std::string* fallbacks[4] = {&defaults.bos, &defaults.eos, &defaults.unk, &defaults.pad};
  for (const auto& [id, spec] : decoder) out.added_tokens.push_back(spec);
  for (int i = 0; i < 4; ++i) {
    if (!specials[i] && fallbacks[i]->empty()) continue;  // no such token (T5 has no bos)
    AddedTokenSpec spec = specials[i] ? *specials[i] : AddedTokenSpec{*fallbacks[i], -1, false};
    *names[i] = spec.content;
    bool listed = false;
    for (const auto& t : out.added_tokens) listed = listed || t.content == spec.content;
    if (!listed) out.added_tokens.push_back(std::move(spec));
  }

  if (auto extra = config.find("extra_ids"); extra != config.end() && !extra->is_null()) {
    if (!extra->is_number_integer() || extra->get<int64_t>() < 0 || extra->get<int64_t>() > kMaxExtraIds)
      return invalid_argument(out.origin.string() + ": extra_ids is " + quote(extra->dump()) +
                              ", not an integer in [0, " + std::to_string(kMaxExtraIds) + "]");
    out.extra_ids = extra->get<int64_t>();
  }
  return out;
}

Expected<TokenizerJson> read_tokenizer_json(const fs::path& folder) {
  TokenizerJson out;
  out.origin = folder / "tokenizer.json";
  const std::string file = out.origin.string();
  TP_ASSIGN_OR_RETURN(json doc, read_json_object_file(out.origin, kMaxTokenizerJsonBytes));
  auto model = doc.find("model");
  if (model == doc.end() || !model->is_object())
    return invalid_argument(file + ": want a 'model' object");
  out.model = std::move(*model);

  if (auto added = doc.find("added_tokens"); added != doc.end() && !added->is_null()) {
    if (!added->is_array())
      return invalid_argument(file + ": added_tokens is " + json_type_phrase(*added) + ", not an array");
    for (size_t i = 0; i < added->size(); ++i) {
      const json& token = (*added)[i];
      const std::string where = file + ": added_tokens[" + std::to_string(i) + "]";
      if (!token.is_object()) return invalid_argument(where + " is " + json_type_phrase(token) + ", not an object");
      auto id = token.find("id");
      if (id == token.end() || !id->is_number_integer() || id->get<int64_t>() < 0 || id->get<int64_t>() > kMaxId)
        return invalid_argument(where + ": want an integer 'id' in [0, 2^31)");
      TP_ASSIGN_OR_RETURN(AddedTokenSpec spec, parse_token_object(token, false, where));
      spec.id = id->get<int64_t>();
      out.added_tokens.push_back(std::move(spec));
    }
  }

  // The precompiled charsmap, where transformers looks for it.
  if (auto normalizer = doc.find("normalizer"); normalizer != doc.end() && normalizer->is_object()) {
    std::vector<const json*> candidates{&*normalizer};
    if (auto type = normalizer->find("type"); type != normalizer->end() && *type == "Sequence") {
      candidates.clear();
      if (auto list = normalizer->find("normalizers"); list != normalizer->end() && list->is_array())
        for (const json& n : *list) candidates.push_back(&n);
    }
    for (const json* n : candidates) {
      if (!n->is_object() || n->value("type", json()) != "Precompiled") continue;
      auto map = n->find("precompiled_charsmap");
      if (map == n->end() || map->is_null()) continue;
      if (!map->is_string())
        return invalid_argument(file + ": normalizer.precompiled_charsmap is " + json_type_phrase(*map) +
                                ", not a string");
      auto bytes = decode_base64(map->get<std::string>());
      if (!bytes) return invalid_argument(file + ": normalizer.precompiled_charsmap is not base64");
      out.precompiled_charsmap = std::move(*bytes);
      break;
    }
  }
  return out;
}

bool use_tokenizer_json(const fs::path& folder, std::initializer_list<const char*> legacy) {
  std::error_code ec;
  bool complete = true;
  for (const char* name : legacy) complete = complete && fs::exists(folder / name, ec);
  return !complete && fs::is_regular_file(folder / "tokenizer.json", ec);
}

std::vector<AddedTokenSpec> merge_added_tokens(std::vector<AddedTokenSpec> json_tokens,
                                               const std::vector<AddedTokenSpec>& config) {
  const size_t listed = json_tokens.size();
  for (const AddedTokenSpec& t : config) {
    bool known = false;
    for (size_t i = 0; i < listed && !known; ++i) known = json_tokens[i].content == t.content;
    if (!known) json_tokens.push_back(t);
  }
  return json_tokens;
}

}  // namespace tp::detail
