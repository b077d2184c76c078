// libFuzzer target for the safetensors header parser, the security boundary of
// weight loading. Each input is tried twice: as a whole file, and as the JSON
// of a correctly framed file (so mutations reach the JSON checks without
// having to keep the 8-byte length consistent). On success the parser's
// guarantees are checked, so a wrong "valid" answer crashes like a bug does.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "weights/safetensors.h"

namespace {

constexpr uint64_t kFramedDataBytes = 64;

void check_invariants(const tp::SafetensorsHeader& h, uint64_t file_size) {
  if (h.data_offset != 8 + h.header_size || h.data_offset + h.data_bytes != file_size) std::abort();
  const tp::TensorInfo* prev = nullptr;
  for (const tp::TensorInfo& t : h.tensors) {
    if (prev && !(prev->name < t.name)) std::abort();  // sorted, unique
    if (t.begin > t.end || t.end > h.data_bytes) std::abort();
    uint64_t bytes = tp::dtype_size(t.dtype);
    for (int64_t d : t.shape) {
      if (d < 0 || __builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes)) std::abort();
    }
    if (bytes != t.end - t.begin) std::abort();
    if (h.find(t.name) != &t) std::abort();
    prev = &t;
  }
  for (const tp::TensorInfo& a : h.tensors)
    for (const tp::TensorInfo& b : h.tensors)
      if (&a != &b && a.begin < a.end && b.begin < b.end && a.begin < b.end && b.begin < a.end) std::abort();
}

void run(std::string_view file) {
  auto h = tp::parse_safetensors_header(file, file.size(), "fuzz");
  if (h)
    check_invariants(*h, file.size());
  else if (h.error().message.rfind("fuzz: ", 0) != 0)
    std::abort();  // every message names the file
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  run(input);

  std::string framed(8, '\0');
  for (int i = 0; i < 8; ++i) framed[i] = static_cast<char>((uint64_t{size} >> (8 * i)) & 0xff);
  framed.append(input);
  framed.append(kFramedDataBytes, '\0');
  run(framed);
  return 0;
}
