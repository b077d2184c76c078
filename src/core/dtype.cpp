#include "twistedpic/dtype.h"

#include <array>

namespace tp {
inline namespace v0 {
namespace {

struct DTypeRow {
  DType type;
  size_t size;
  std::string_view st_name;
  std::string_view config_name;
};

constexpr std::array<DTypeRow, 12> kRows{{
    {DType::kF64, 8, "F64", "fp64"},
    {DType::kF32, 4, "F32", "fp32"},
    {DType::kF16, 2, "F16", "fp16"},
    {DType::kBF16, 2, "BF16", "bf16"},
    {DType::kF8E4M3, 1, "F8_E4M3", "fp8_e4m3"},
    {DType::kF8E5M2, 1, "F8_E5M2", "fp8_e5m2"},
    {DType::kI64, 8, "I64", "int64"},
    {DType::kI32, 4, "I32", "int32"},
    {DType::kI16, 2, "I16", "int16"},
    {DType::kI8, 1, "I8", "int8"},
    {DType::kU8, 1, "U8", "uint8"},
    {DType::kBool, 1, "BOOL", "bool"},
}};

const DTypeRow* row(DType t) {
  for (const auto& r : kRows)
    if (r.type == t) return &r;
  return nullptr;
}

}  // namespace

size_t dtype_size(DType t) noexcept {
  const DTypeRow* r = row(t);
  return r ? r->size : 0;
}

std::string_view dtype_safetensors_name(DType t) noexcept {
  const DTypeRow* r = row(t);
  return r ? r->st_name : std::string_view("?");
}

std::optional<DType> dtype_from_safetensors_name(std::string_view name) noexcept {
  for (const auto& r : kRows)
    if (r.st_name == name) return r.type;
  return std::nullopt;
}

std::string_view dtype_config_name(DType t) noexcept {
  const DTypeRow* r = row(t);
  return r ? r->config_name : std::string_view("?");
}

std::optional<DType> dtype_from_config_name(std::string_view name) noexcept {
  if (name == "float32") return DType::kF32;
  if (name == "float16") return DType::kF16;
  if (name == "bfloat16") return DType::kBF16;
  for (const auto& r : kRows)
    if (r.config_name == name) return r.type;
  return std::nullopt;
}

}  // namespace v0
}  // namespace tp
