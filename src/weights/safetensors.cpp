// The safetensors header parser, the sharded index reader and the pickle
// refusal. See include/twistedpic/safetensors.h for the rules and codes.
#include "weights/safetensors.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <set>

#include "util/file.h"
#include "util/json.h"
#include "weights/weights_format.h"

namespace tp::detail {

bool has_pickle_extension(const std::filesystem::path& path) {
  static constexpr std::array<std::string_view, 6> kPickleExtensions{".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle"};
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return std::find(kPickleExtensions.begin(), kPickleExtensions.end(), ext) != kPickleExtensions.end();
}

}  // namespace tp::detail

namespace tp {
inline namespace v0 {
namespace {

using detail::json_type_phrase;
using detail::quote;
using nlohmann::json;

constexpr uint64_t kMaxIndexJsonBytes = 64ull << 20;

uint64_t load_le64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

std::string supported_dtypes() {
  std::string out;
  for (int i = 0; i <= static_cast<int>(DType::kBool); ++i) {
    if (!out.empty()) out += ", ";
    out += dtype_safetensors_name(static_cast<DType>(i));
  }
  return out;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

// Validates one tensor entry; `where` is "<file>: tensor '<name>'".
Expected<TensorInfo> parse_tensor_entry(const std::string& name, const json& entry, const std::string& where,
                                        uint64_t data_bytes) {
  if (!entry.is_object()) return invalid_argument(where + ": entry is " + json_type_phrase(entry) + ", not an object");
  TensorInfo t;
  t.name = name;

  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end()) return invalid_argument(where + ": missing \"dtype\"");
  if (!dtype_it->is_string())
    return invalid_argument(where + ": \"dtype\" is " + json_type_phrase(*dtype_it) + ", not a string");
  const auto& dtype_name = dtype_it->get_ref<const std::string&>();
  auto dtype = dtype_from_safetensors_name(dtype_name);
  if (!dtype)
    return invalid_argument(where + ": unknown dtype " + quote(dtype_name) + " (supported: " + supported_dtypes() +
                            ")");
  t.dtype = *dtype;

  auto shape_it = entry.find("shape");
  if (shape_it == entry.end()) return invalid_argument(where + ": missing \"shape\"");
  if (!shape_it->is_array())
    return invalid_argument(where + ": \"shape\" is " + json_type_phrase(*shape_it) + ", not an array");
  uint64_t needed = dtype_size(t.dtype);
  bool overflow = false;
  for (size_t i = 0; i < shape_it->size(); ++i) {
    const json& d = (*shape_it)[i];
    const std::string at = " at index " + std::to_string(i);
    if (d.is_number_integer() && !d.is_number_unsigned())
      return invalid_argument(where + ": negative dimension " + std::to_string(d.get<int64_t>()) + at +
                              " of \"shape\"");
    if (!d.is_number_unsigned())
      return invalid_argument(where + ": dimension" + at + " of \"shape\" is " + json_type_phrase(d) +
                              ", not a non-negative integer");
    const uint64_t dim = d.get<uint64_t>();
    if (dim > static_cast<uint64_t>(INT64_MAX))
      return invalid_argument(where + ": dimension " + std::to_string(dim) + at + " of \"shape\" is too large");
    overflow = overflow || __builtin_mul_overflow(needed, dim, &needed);
    t.shape.push_back(static_cast<int64_t>(dim));
  }

  auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end()) return invalid_argument(where + ": missing \"data_offsets\"");
  const json& offsets = *offsets_it;
  if (!offsets.is_array())
    return invalid_argument(where + ": \"data_offsets\" is " + json_type_phrase(offsets) + ", not [begin, end]");
  if (offsets.size() != 2)
    return invalid_argument(where + ": \"data_offsets\" has " + std::to_string(offsets.size()) + " values, not 2");
  for (size_t i = 0; i < 2; ++i)
    if (!offsets[i].is_number_unsigned())
      return invalid_argument(where + ": \"data_offsets\"[" + std::to_string(i) + "] is " +
                              json_type_phrase(offsets[i]) + ", not an unsigned integer");
  t.begin = offsets[0].get<uint64_t>();
  t.end = offsets[1].get<uint64_t>();
  const std::string range = "[" + std::to_string(t.begin) + "," + std::to_string(t.end) + "]";
  if (t.begin > t.end) return invalid_argument(where + ": data_offsets " + range + " begin after their end");

  const std::string layout = "shape " + shape_string(t.shape) + " x " + std::string(dtype_name);
  if (overflow) return invalid_argument(where + ": " + layout + " overflows 64-bit byte count");
  if (needed != t.end - t.begin)
    return invalid_argument(where + ": " + layout + " needs " + std::to_string(needed) +
                            " bytes but data_offsets span " + std::to_string(t.end - t.begin));
  if (t.end > data_bytes)
    return data_loss(where + ": data_offsets " + range + " run past the end of the data section (" +
                     std::to_string(data_bytes) + " bytes; truncated file?)");
  return t;
}

Status parse_metadata(const json& value, const std::string& what, std::map<std::string, std::string>& out) {
  if (!value.is_object())
    return invalid_argument(what + ": \"__metadata__\" is " + json_type_phrase(value) + ", not an object of strings");
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string())
      return invalid_argument(what + ": \"__metadata__\" value of " + quote(key) + " is " + json_type_phrase(v) +
                              ", not a string");
    out.emplace(key, v.get<std::string>());
  }
  return ok_status();
}

// Sorted by begin, non-empty ranges are disjoint iff each starts at or after
// the end of the one before it.
Status check_overlaps(const std::vector<TensorInfo>& tensors, const std::string& what) {
  std::vector<const TensorInfo*> by_begin;
  for (const auto& t : tensors)
    if (t.begin < t.end) by_begin.push_back(&t);
  std::sort(by_begin.begin(), by_begin.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  auto span = [](const TensorInfo* x) { return "[" + std::to_string(x->begin) + "," + std::to_string(x->end) + ")"; };
  for (size_t i = 1; i < by_begin.size(); ++i) {
    const TensorInfo *prev = by_begin[i - 1], *cur = by_begin[i];
    if (cur->begin < prev->end)
      return invalid_argument(what + ": tensors " + quote(prev->name) + " " + span(prev) + " and " + quote(cur->name) +
                              " " + span(cur) + " overlap");
  }
  return ok_status();
}

tl::unexpected<Error> pickle_refusal(const std::filesystem::path& path, std::string_view why) {
  return invalid_argument(path.string() + ": refusing a pickle checkpoint (" + std::string(why) +
                          "): twistedpic never executes pickles, which can run arbitrary code; convert it to "
                          "safetensors (safetensors.torch.save_file) in a trusted Python environment");
}

// A shard name from an index must be a relative path that stays in the folder.
bool stays_inside(const std::string& name) {
  if (name.empty()) return false;
  std::filesystem::path p(name);
  if (p.is_absolute() || p.has_root_path()) return false;
  for (const auto& part : p)
    if (part == "..") return false;
  return true;
}

}  // namespace

const TensorInfo* SafetensorsHeader::find(std::string_view name) const {
  auto it = std::lower_bound(tensors.begin(), tensors.end(), name,
                             [](const TensorInfo& t, std::string_view n) { return t.name < n; });
  return it != tensors.end() && it->name == name ? &*it : nullptr;
}

Expected<SafetensorsHeader> parse_safetensors_header(std::string_view prefix, uint64_t file_size,
                                                     std::string_view what) {
  const std::string w(what);
  if (prefix.size() > file_size)
    return invalid_argument(w + ": " + std::to_string(prefix.size()) + " bytes given for a file of " +
                            std::to_string(file_size));
  if (file_size < 8)
    return data_loss(w + ": file is " + std::to_string(file_size) +
                     " bytes, too short for the 8-byte header length (truncated file?)");
  if (prefix.size() < 8) return invalid_argument(w + ": the first 8 bytes of the file were not given");

  SafetensorsHeader h;
  h.header_size = load_le64(prefix.data());
  if (h.header_size > kMaxSafetensorsHeaderBytes)
    return invalid_argument(w + ": header length " + std::to_string(h.header_size) + " exceeds the limit of " +
                            std::to_string(kMaxSafetensorsHeaderBytes) + " bytes (not a safetensors file?)");
  if (h.header_size > file_size - 8)
    return data_loss(w + ": header length " + std::to_string(h.header_size) + " runs past the end of the file (" +
                     std::to_string(file_size) + " bytes; truncated file?)");
  h.data_offset = 8 + h.header_size;
  h.data_bytes = file_size - h.data_offset;
  if (prefix.size() < h.data_offset)
    return invalid_argument(w + ": only " + std::to_string(prefix.size()) + " of the " + std::to_string(h.data_offset) +
                            " header bytes were given");

  TP_ASSIGN_OR_RETURN(json root, detail::parse_json(prefix.substr(8, h.header_size), w, "tensor name"));
  if (!root.is_object()) return invalid_argument(w + ": header is " + json_type_phrase(root) + ", not a JSON object");

  for (const auto& [name, entry] : root.items()) {  // std::map order: sorted by name
    if (name == "__metadata__") {
      TP_TRY(parse_metadata(entry, w, h.metadata));
      continue;
    }
    TP_ASSIGN_OR_RETURN(TensorInfo t, parse_tensor_entry(name, entry, w + ": tensor " + quote(name), h.data_bytes));
    h.tensors.push_back(std::move(t));
  }
  TP_TRY(check_overlaps(h.tensors, w));
  return h;
}

namespace {

// Refuses a pickle by its first bytes, on a file already open.
Status check_open_file_format(const detail::ReadOnlyFile& file, const std::filesystem::path& path) {
  std::array<unsigned char, 9> head{};
  const size_t n = std::min<uint64_t>(file.size(), head.size());
  TP_TRY(file.read_at(0, n, reinterpret_cast<char*>(head.data())));
  if (n == 9 && load_le64(reinterpret_cast<const char*>(head.data())) <= file.size() - 8 && head[8] == '{')
    return ok_status();  // safetensors framing, whatever its first bytes happen to be
  if (n >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5) return pickle_refusal(path, "pickle protocol header");
  if (n >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4)
    return pickle_refusal(path, "zip archive, the torch.save format");
  return ok_status();
}

}  // namespace

Expected<SafetensorsHeader> read_safetensors_header(const std::filesystem::path& path) {
  if (detail::has_pickle_extension(path)) return pickle_refusal(path, path.extension().string() + " file");
  TP_ASSIGN_OR_RETURN(detail::ReadOnlyFile file, detail::ReadOnlyFile::open(path));
  TP_TRY(check_open_file_format(file, path));
  // Read the length first; read the JSON only when the length is plausible,
  // so a hostile length never drives an allocation.
  std::string prefix(std::min<uint64_t>(file.size(), 8), '\0');
  TP_TRY(file.read_at(0, prefix.size(), prefix.data()));
  if (prefix.size() == 8) {
    const uint64_t n = load_le64(prefix.data());
    if (n <= kMaxSafetensorsHeaderBytes && n <= file.size() - 8) {
      prefix.resize(8 + n);
      TP_TRY(file.read_at(8, n, prefix.data() + 8));
    }
  }
  return parse_safetensors_header(prefix, file.size(), path.string());
}

Status check_weights_file_format(const std::filesystem::path& path) {
  if (detail::has_pickle_extension(path)) return pickle_refusal(path, path.extension().string() + " file");
  TP_ASSIGN_OR_RETURN(detail::ReadOnlyFile file, detail::ReadOnlyFile::open(path));
  return check_open_file_format(file, path);
}

Expected<ShardedIndex> read_safetensors_index(const std::filesystem::path& index_json) {
  const std::string w = index_json.string();
  TP_ASSIGN_OR_RETURN(json root, detail::read_json_object_file(index_json, kMaxIndexJsonBytes));
  ShardedIndex index;
  index.index_file = index_json;

  if (auto meta = root.find("metadata"); meta != root.end() && meta->is_object()) {
    if (auto total = meta->find("total_size"); total != meta->end()) {
      if (!total->is_number_unsigned())
        return invalid_argument(w + ": \"metadata.total_size\" is " + json_type_phrase(*total) +
                                ", not an unsigned integer");
      index.total_size = total->get<uint64_t>();
    }
  }

  auto map = root.find("weight_map");
  if (map == root.end()) return invalid_argument(w + ": missing \"weight_map\"");
  if (!map->is_object() || map->empty())
    return invalid_argument(w + ": \"weight_map\" must be a non-empty object of tensor name -> shard file");
  const std::filesystem::path folder = index_json.parent_path();
  std::set<std::filesystem::path> shards;
  for (const auto& [tensor, shard] : map->items()) {
    const std::string where = w + ": tensor " + quote(tensor);
    if (!shard.is_string())
      return invalid_argument(where + ": shard is " + json_type_phrase(shard) + ", not a file name");
    const auto& name = shard.get_ref<const std::string&>();
    if (!stays_inside(name))
      return invalid_argument(where + ": shard " + quote(name) + " is not a relative path inside " + folder.string());
    index.weight_map.emplace(tensor, name);
    if (!shards.insert(folder / name).second) continue;
    std::error_code ec;
    if (!std::filesystem::exists(folder / name, ec))
      return not_found(where + ": shard " + quote(name) + " does not exist (looked for " + (folder / name).string() +
                       ")");
    // A pickle by name is refused here; one renamed to .safetensors when its header is read.
    if (detail::has_pickle_extension(name)) return pickle_refusal(folder / name, "shard named like a pickle");
  }
  index.shards.assign(shards.begin(), shards.end());
  return index;
}

}  // namespace v0
}  // namespace tp
