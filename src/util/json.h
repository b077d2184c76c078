// Private (util): strict JSON parsing, the one reader for every JSON file the
// library reads (safetensors headers, *.index.json, model_index.json, configs,
// tokenizer files).
//
// nlohmann::json silently keeps the last of duplicate keys; a weights file with
// two entries for one tensor name is ambiguous, so parse_json() refuses
// duplicates at every depth. It also refuses nesting deeper than
// kMaxJsonDepth, which no file we read needs, so that a small hostile header
// cannot cost gigabytes of DOM. It never throws.
//
// Threading: pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "twistedpic/expected.h"

namespace tp::detail {

inline constexpr int kMaxJsonDepth = 64;

// Parses `text` as one JSON value. Errors are kInvalidArgument and start with
// `what`: "<what>: invalid JSON at byte N: ...", "<what>: invalid JSON: ...", "<what>: duplicate <top_key_label> 'k'",
// "<what>: duplicate key 'k' in 'parent'", "<what>: JSON nested deeper than 64".
Expected<nlohmann::json> parse_json(std::string_view text, std::string_view what,
                                    std::string_view top_key_label = "key");

// Reads and parses a JSON file of at most `max_bytes` that must hold an object.
Expected<nlohmann::json> read_json_object_file(const std::filesystem::path& path, uint64_t max_bytes);

// `s` in single quotes for an error message: control characters escaped as
// \xNN and anything past 128 bytes cut to "...", so that names taken from a
// file can neither forge log lines nor bloat messages.
std::string quote(std::string_view s);

// The JSON type of `v` for messages: "a string", "an array", "null", ...
std::string json_type_phrase(const nlohmann::json& v);

}  // namespace tp::detail
