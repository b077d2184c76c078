// Private (weights): a renamed selection of a safetensors file's tensors.
//
// A network read from part of a bigger file (one of the four networks of an
// SDXL single-file checkpoint, whose names are not the network's) loads only
// the tensors a TensorSelection picks, each under a new name, all at the
// header level and without copies:
//   - a pick names one tensor of the file and the name it takes in the model;
//   - it may take only rows [row_begin, row_end) of the tensor's first
//     dimension (a fused q/k/v projection split in three): those rows are
//     contiguous in the file, so the piece is a tensor at its own offset;
//   - it may give the bytes another shape with the same number of elements
//     (a 1x1 convolution's (C, C, 1, 1) weight read as a linear (C, C));
//   - it may mark a 2-D tensor as stored transposed (OpenCLIP's
//     text_projection, saved as the transpose of transformers'
//     text_projection.weight): the model's tensor has the transposed shape,
//     the arena keeps the file's bytes, and WeightTensor::transposed tells the
//     tensor views to read them transposed (a strided view; see there).
// select_tensors() resolves a selection against a parsed header, and
// TensorWeights::open applies it to a WeightFile that carries one.
//
// Threading: plain values and a pure function; a TensorSelection is
// immutable once shared.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "twistedpic/dtype.h"
#include "twistedpic/expected.h"
#include "twistedpic/export.h"
#include "weights/safetensors.h"

namespace tp {
inline namespace v0 {

struct TensorPick {
  std::string name;     // the tensor's name in the model
  std::string source;   // the tensor in the file it is read from
  // Rows [row_begin, row_end) of the source's first dimension. Default: all
  // (row_end -1: up to the end).
  int64_t row_begin = 0;
  int64_t row_end = -1;
  // The model's shape for those bytes, with as many elements. Default (empty):
  // the rows' own shape.
  std::vector<int64_t> shape;
  // The source is 2-D and stored as the transpose of the model's tensor: the
  // model's shape is the rows' shape reversed. Not with `shape`.
  bool transposed = false;
};

struct TensorSelection {
  // What the selection is, for messages: "the UNet (model.diffusion_model.*)".
  std::string what;
  std::vector<TensorPick> picks;
};

// One picked tensor, resolved against the file's header.
struct SelectedTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // the model's
  uint64_t begin = 0;          // byte range [begin, end) relative to the data section
  uint64_t end = 0;
  bool transposed = false;     // the bytes are row-major shape[1] x shape[0]
};

// Resolves `selection` against `header` (of the file `file`, named in messages).
// Errors name the file, the selection's `what` and the pick: kNotFound for a
// source the file does not have; kInvalidArgument for rows outside the
// source's first dimension (or of a scalar), a shape whose element count
// differs, a transposed pick of a tensor that is not 2-D (or with a shape),
// and two picks with the same name.
[[nodiscard]] TP_EXPORT Expected<std::vector<SelectedTensor>> select_tensors(const SafetensorsHeader& header,
                                                                             const TensorSelection& selection,
                                                                             std::string_view file);

}  // namespace v0
}  // namespace tp
