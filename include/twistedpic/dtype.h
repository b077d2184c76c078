// twistedpic: element types of weights, shared by the config, the safetensors
// parser and the transfer engine.
//
// Threading: value types and pure functions; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "twistedpic/export.h"

namespace tp {
inline namespace v0 {

enum class DType : int32_t {
  kF64 = 0,
  kF32 = 1,
  kF16 = 2,
  kBF16 = 3,
  kF8E4M3 = 4,
  kF8E5M2 = 5,
  kI64 = 6,
  kI32 = 7,
  kI16 = 8,
  kI8 = 9,
  kU8 = 10,
  kBool = 11,
};

// Bytes per element.
TP_EXPORT size_t dtype_size(DType t) noexcept;
// The safetensors spelling: "F32", "BF16", "F8_E4M3", ...
TP_EXPORT std::string_view dtype_safetensors_name(DType t) noexcept;
TP_EXPORT std::optional<DType> dtype_from_safetensors_name(std::string_view name) noexcept;
// The config spelling: "fp32", "fp16", "bf16" (also accepts "float32", "float16", "bfloat16").
TP_EXPORT std::string_view dtype_config_name(DType t) noexcept;
TP_EXPORT std::optional<DType> dtype_from_config_name(std::string_view name) noexcept;

}  // namespace v0
}  // namespace tp
