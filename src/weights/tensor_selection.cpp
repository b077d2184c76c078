// select_tensors: a TensorSelection resolved against a safetensors header.
#include "weights/tensor_selection.h"

#include <set>

namespace tp {
inline namespace v0 {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

int64_t elements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

}  // namespace

Expected<std::vector<SelectedTensor>> select_tensors(const SafetensorsHeader& header, const TensorSelection& selection,
                                                     std::string_view file) {
  std::vector<SelectedTensor> out;
  out.reserve(selection.picks.size());
  std::set<std::string, std::less<>> names;
  for (const TensorPick& p : selection.picks) {
    const std::string where = std::string(file) + ": " + selection.what + ": '" + p.name + "' (from '" + p.source + "')";
    const TensorInfo* info = header.find(p.source);
    if (!info) return not_found(std::string(file) + ": " + selection.what + ": the file has no tensor '" + p.source + "'");
    if (!names.insert(p.name).second) return invalid_argument(where + ": the name is picked twice");
    SelectedTensor t;
    t.name = p.name;
    t.dtype = info->dtype;
    t.begin = info->begin;
    t.end = info->end;
    std::vector<int64_t> rows_shape = info->shape;
    const bool whole = p.row_begin == 0 && p.row_end == -1;
    if (!whole) {
      if (info->shape.empty()) return invalid_argument(where + ": rows of a scalar");
      const int64_t n = info->shape[0];
      const int64_t end = p.row_end == -1 ? n : p.row_end;
      if (p.row_begin < 0 || p.row_begin > end || end > n)
        return invalid_argument(where + ": rows [" + std::to_string(p.row_begin) + ", " + std::to_string(end) +
                                ") are outside the tensor's " + std::to_string(n) + " rows, shape " +
                                shape_text(info->shape));
      const uint64_t row_bytes = n ? (info->end - info->begin) / static_cast<uint64_t>(n) : 0;
      t.begin = info->begin + row_bytes * static_cast<uint64_t>(p.row_begin);
      t.end = info->begin + row_bytes * static_cast<uint64_t>(end);
      rows_shape[0] = end - p.row_begin;
    }
    if (p.transposed) {
      if (rows_shape.size() != 2 || !p.shape.empty())
        return invalid_argument(where + ": only a 2-D tensor reads transposed, and with its own shape; it is " +
                                shape_text(rows_shape));
      t.shape = {rows_shape[1], rows_shape[0]};
      t.transposed = true;
    } else if (!p.shape.empty()) {
      bool valid = true;
      for (int64_t d : p.shape) valid = valid && d >= 0;
      if (!valid || elements(p.shape) != elements(rows_shape))
        return invalid_argument(where + ": shape " + shape_text(rows_shape) + " cannot be read as " +
                                shape_text(p.shape));
      t.shape = p.shape;
    } else {
      t.shape = std::move(rows_shape);
    }
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace v0
}  // namespace tp
