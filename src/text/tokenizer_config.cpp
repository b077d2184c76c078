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

}  // namespace tp::detail
