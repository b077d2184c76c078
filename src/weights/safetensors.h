// Private (weights): the safetensors header parser, sharded indexes, and the refusal
// of pickle checkpoints. This is the security boundary of weight loading:
// nothing reads tensor bytes from a file whose header has not passed here.
//
// A safetensors file is an 8-byte little-endian header length N, N bytes of
// JSON, then the data section. The JSON maps tensor names to
// {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
// data section) plus an optional "__metadata__" object of string -> string.
//
// parse_safetensors_header() checks, each violation with its own message that
// names the file (`what`) and, where there is one, the tensor:
//   kDataLoss         the bytes stop short: a file under 8 bytes, a header
//                     length past the end of the file, a tensor range past
//                     the end of the data section (a truncated file);
//   kInvalidArgument  the content is malformed: a header length over
//                     kMaxSafetensorsHeaderBytes, invalid JSON, JSON that is
//                     not an object, an entry that is not an object, a
//                     missing/invalid/unknown dtype, a missing or invalid shape
//                     (negative or non-integer dims), invalid data_offsets (not
//                     two unsigned integers, begin > end), shape x dtype size
//                     that differs from the byte range or overflows, overlapping
//                     ranges, duplicate tensor names (or duplicate keys anywhere),
//                     an invalid __metadata__, nesting deeper than any header needs.
// Gaps between tensor ranges are allowed (the format's reference
// implementation is stricter and refuses them); overlaps are not. Zero-byte
// tensors overlap nothing.
//
// Threading: pure functions over their arguments and the file system; safe
// from any thread. Results are plain values.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "twistedpic/dtype.h"
#include "twistedpic/expected.h"
#include "twistedpic/export.h"

namespace tp {
inline namespace v0 {

// Headers longer than this are refused (the reference implementation's limit).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // [] is a scalar
  uint64_t begin = 0;          // byte range [begin, end) relative to the data section
  uint64_t end = 0;
};

struct SafetensorsHeader {
  uint64_t header_size = 0;                     // N, the JSON's length
  uint64_t data_offset = 0;                     // 8 + N: where the data section starts in the file
  uint64_t data_bytes = 0;                      // file size - data_offset: the data section's length
  std::vector<TensorInfo> tensors;              // sorted by name
  std::map<std::string, std::string> metadata;  // "__metadata__", empty when absent

  // The tensor called `name`, or nullptr. O(log n).
  TP_EXPORT const TensorInfo* find(std::string_view name) const;
};

// Parses and validates the header of a safetensors file of `file_size` bytes
// whose first bytes are `file_prefix`. `what` names the file in messages.
// REQUIRES: file_prefix holds the first min(file_size, 8 + N) bytes of the
// file; a shorter prefix (or one longer than file_size) is kInvalidArgument.
// Pure: safe to call on arbitrary bytes (fuzzed).
[[nodiscard]] TP_EXPORT Expected<SafetensorsHeader> parse_safetensors_header(std::string_view file_prefix,
                                                                             uint64_t file_size, std::string_view what);

// Opens `path` once (open + pread; reads only the header), refuses a pickle
// as check_weights_file_format does, and parses the header as above.
// File errors: kNotFound (missing), kInvalidArgument (not a regular file),
// kFailedPrecondition (permission), kUnavailable (other I/O errors).
[[nodiscard]] TP_EXPORT Expected<SafetensorsHeader> read_safetensors_header(const std::filesystem::path& path);

// A "*.safetensors.index.json": which shard holds which tensor.
struct ShardedIndex {
  std::filesystem::path index_file;
  std::map<std::string, std::string> weight_map;  // tensor name -> shard file name (relative to the index's folder)
  std::vector<std::filesystem::path> shards;      // each distinct shard once, as folder / name, sorted
  std::optional<uint64_t> total_size;             // "metadata": {"total_size"}, when present
};

// Reads and validates an index: a JSON object with a non-empty "weight_map" of
// string -> string; shard names must stay inside the index's folder (no
// absolute paths, no ".." components), every shard must exist (kNotFound) and
// must not be named like a pickle. Shards are not opened here: their headers
// (and a pickle renamed to .safetensors) are read when the weights open.
[[nodiscard]] TP_EXPORT Expected<ShardedIndex> read_safetensors_index(const std::filesystem::path& index_json);

// Refuses pickle checkpoints, which twistedpic never executes: files named
// *.bin, *.ckpt, *.pt, *.pth, *.pkl, *.pickle, and files whose bytes start with
// pickle protocol 2+ (0x80, 2..5) or zip ("PK\3\4", torch.save's format) unless
// they are framed like safetensors (a valid header length followed by '{').
// Anything else passes: the header parser judges it. kInvalidArgument for a
// pickle, file errors as for read_safetensors_header.
[[nodiscard]] TP_EXPORT Status check_weights_file_format(const std::filesystem::path& path);

}  // namespace v0
}  // namespace tp
