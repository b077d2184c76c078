// Private (weights): what a network's weight files hold, by content, so that
// two folders with the same bytes (copies, or two Hugging Face cache repos
// that ship the same encoder) can be one registry model.
//
// Two digests, both XXH3-128 (libxxhash, inlined: nothing to link):
//   - the header digest: each file's size and safetensors header (the 8-byte
//     length and the JSON), read without touching the tensor data. Cheap;
//     equal header digests say "maybe the same", different ones "not the same".
//   - the content digest: every byte of each file. Computed only when header
//     digests agree, once per file version: it is cached in
//     `<cache>/digests/<XXH3-128 of the absolute path>` together with the
//     file's size, modification time (ns) and inode, and recomputed when any
//     of them changes. <cache> is $XDG_CACHE_HOME/twistedpic, else
//     $HOME/.cache/twistedpic. A cache that cannot be written is not an error
//     (the digest is then recomputed next time).
//
//   TP_ASSIGN_OR_RETURN(std::string h, weights_header_digest(files));
//   TP_ASSIGN_OR_RETURN(std::string c, weights_content_digest(files));  // "xxh3-128:<32 hex>"
//
// Errors name the file: kNotFound (missing), kInvalidArgument (not a regular
// file, or shorter than a safetensors header says), kUnavailable (I/O).
//
// Threading: pure functions over the file system; safe from any thread (a
// cache entry is written to a temporary file and renamed into place).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "twistedpic/expected.h"

namespace tp::detail {

// The digest of the files' sizes and safetensors headers, in order.
Expected<std::string> weights_header_digest(const std::vector<std::filesystem::path>& files);

// The digest of the files' bytes, in order (each file's cached digest, combined).
Expected<std::string> weights_content_digest(const std::vector<std::filesystem::path>& files);

// One file's content digest ("xxh3-128:<32 hex>"), from the cache when it is
// current, else computed (reading the whole file) and cached.
Expected<std::string> file_content_digest(const std::filesystem::path& file);

// Where content digests are cached: <cache>/digests, as above; nullopt when
// neither XDG_CACHE_HOME nor HOME is set.
std::optional<std::filesystem::path> digest_cache_dir();

}  // namespace tp::detail
