// Internal helpers shared by the C shims: the tp_error object, mapping a C++
// Error onto it, and the TP_CAPI_BEGIN/END guard that keeps every exception
// on this side of the boundary.
#pragma once

#include <algorithm>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>

#include "twistedpic/expected.h"
#include "twistedpic/registry.h"
#include "twistedpic/tp.h"

struct tp_error {
  tp_code code;
  std::string message;
};

// Handles carry a magic number, so that NULL and a handle of another kind are
// refused (a freed handle cannot be detected in general: using one is
// undefined behaviour; destroy sets kDead to catch the common double use).
namespace tp::capi {
constexpr uint32_t kOptionsMagic = 0x74704f50;   // "tpOP"
constexpr uint32_t kRegistryMagic = 0x74705247;  // "tpRG"
constexpr uint32_t kLeaseMagic = 0x74704c53;     // "tpLS"
constexpr uint32_t kPipelineMagic = 0x7470504c;  // "tpPL"
constexpr uint32_t kRequestMagic = 0x74705251;   // "tpRQ"
constexpr uint32_t kResultMagic = 0x74705253;    // "tpRS"
constexpr uint32_t kDead = 0xdeadbeef;
}  // namespace tp::capi

struct tp_registry {
  uint32_t magic = tp::capi::kRegistryMagic;
  std::unique_ptr<tp::ModelRegistry> registry;
};

namespace tp::capi {

// Stores `code`/`message` into *out_err when out_err is non-NULL; returns code.
inline tp_code fail(tp_error** out_err, tp_code code, std::string message) noexcept {
  if (out_err) {
    try {
      *out_err = new tp_error{code, std::move(message)};
    } catch (...) {
      *out_err = nullptr;  // out of memory while reporting: the code still says it all
    }
  }
  return code;
}

inline tp_code fail(tp_error** out_err, const Error& e) noexcept {
  return fail(out_err, static_cast<tp_code>(e.code), e.message);
}

// The registry options without a simulated device. Default: real weights on
// the CPU device (torch-free); tp_runtime.cpp, part of libtwistedpic.so, sets
// it at load to default_registry_options (the CUDA device, torch's cache).
using OptionsFactory = Expected<RegistryOptions> (*)();
extern OptionsFactory default_options;

// Writes only the caller's prefix (out->struct_size bytes) of `full`, keeping
// its struct_size.
template <class T>
void copy_prefix(T* out, const T& full) {
  uint32_t size = out->struct_size;
  std::memcpy(static_cast<void*>(out), &full, std::min<size_t>(size, sizeof(T)));
  out->struct_size = size;
}

}  // namespace tp::capi

// Wraps a shim body: any exception becomes TP_INTERNAL (or
// TP_RESOURCE_EXHAUSTED for bad_alloc) instead of unwinding into C.
#define TP_CAPI_BEGIN try {
#define TP_CAPI_END(out_err)                                                                   \
  }                                                                                            \
  catch (const std::bad_alloc&) {                                                              \
    return ::tp::capi::fail(out_err, TP_RESOURCE_EXHAUSTED, "out of host memory");             \
  }                                                                                            \
  catch (const std::exception& e) {                                                            \
    return ::tp::capi::fail(out_err, TP_INTERNAL, std::string("internal error: ") + e.what()); \
  }                                                                                            \
  catch (...) {                                                                                \
    return ::tp::capi::fail(out_err, TP_INTERNAL, "internal error: unknown exception");        \
  }

#define TP_CAPI_REQUIRE(arg, out_err)                                                           \
  do {                                                                                          \
    if (!(arg)) return ::tp::capi::fail(out_err, TP_INVALID_ARGUMENT, #arg " must not be NULL"); \
  } while (0)

// Rejects NULL and a pointer to another kind of object.
#define TP_CHECK_HANDLE(h, kind, type, out_err)                                                          \
  do {                                                                                                   \
    if (!(h)) return ::tp::capi::fail(out_err, TP_INVALID_ARGUMENT, #h " must not be NULL");             \
    if ((h)->magic != kind) return ::tp::capi::fail(out_err, TP_INVALID_ARGUMENT, #h " is not a live " type); \
  } while (0)

// TP_INVALID_ARGUMENT unless a caller's versioned struct is at least v0.1's size.
#define TP_CHECK_STRUCT_SIZE(expr, type, out_err)                                                       \
  do {                                                                                                 \
    if ((expr)->struct_size < sizeof(type))                                                            \
      return ::tp::capi::fail(out_err, TP_INVALID_ARGUMENT,                                            \
                  #expr "->struct_size " + std::to_string((expr)->struct_size) + " is below v0.1's " + \
                      std::to_string(sizeof(type)) + "; set it to sizeof(" #type ")");                 \
  } while (0)
