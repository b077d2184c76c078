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
#include <vector>

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

// The devices default_options would use, for tp_runtime_devices (name,
// total, free). Default: the CPU device (torch-free); tp_runtime.cpp sets it
// at load to tp::runtime_info()'s devices.
using RuntimeDevicesFactory = std::vector<DeviceStats> (*)();
extern RuntimeDevicesFactory runtime_devices;

// The first version's size of each versioned struct (struct_size first): the
// smallest struct_size the library accepts, frozen forever. Comparing with
// today's sizeof instead would refuse every existing caller as soon as a field
// is appended. Each entry names the version that introduced the struct.
template <class T>
struct FirstVersion;  // undefined: every versioned struct needs an entry
#define TP_FIRST_VERSION(type, bytes, version)               \
  template <>                                                \
  struct FirstVersion<type> {                                \
    static constexpr uint32_t size = bytes;                  \
    static constexpr const char* name = version;             \
  };                                                         \
  static_assert(sizeof(type) >= (bytes), #type " shrank below " version)
TP_FIRST_VERSION(tp_memory_policy_vtable, 32, "v0.1");
TP_FIRST_VERSION(tp_model_info, 120, "v0.1");
TP_FIRST_VERSION(tp_stats, 200, "v0.1");
TP_FIRST_VERSION(tp_event, 64, "v0.1");
TP_FIRST_VERSION(tp_progress, 32, "v0.2");
TP_FIRST_VERSION(tp_image, 24, "v0.2");
TP_FIRST_VERSION(tp_result_info, 88, "v0.2");
TP_FIRST_VERSION(tp_plan_info, 64, "v0.2");
TP_FIRST_VERSION(tp_device_info, 112, "v0.2");
#undef TP_FIRST_VERSION

// tp_policy_model has no struct_size: policies given only select_victims
// (v0.1) walk arrays of v0.1's element size.
constexpr uint32_t kPolicyModelV01Size = 56;
static_assert(sizeof(tp_policy_model) >= kPolicyModelV01Size);

// The message for a struct_size below the first version's.
template <class T>
std::string struct_size_message(const char* expr, const char* type, uint32_t size) {
  return std::string(expr) + "->struct_size " + std::to_string(size) + " is below " + FirstVersion<T>::name +
         "'s " + std::to_string(FirstVersion<T>::size) + "; set it to sizeof(" + type + ")";
}

// Reads only the caller's prefix of a struct it passes in: a copy of `in`
// whose fields past in->struct_size (a caller compiled against an older
// header) are zero, and whose struct_size is the caller's.
template <class T>
T read_prefix(const T* in) {
  T out{};
  std::memcpy(static_cast<void*>(&out), static_cast<const void*>(in), std::min<size_t>(in->struct_size, sizeof(T)));
  return out;
}

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

// TP_INVALID_ARGUMENT unless a caller's versioned struct is at least its first
// version's size (FirstVersion<type>), not today's sizeof: a caller built
// against an older header passes a shorter struct, and only its prefix is
// read or written (read_prefix, copy_prefix).
#define TP_CHECK_STRUCT_SIZE(expr, type, out_err)                                                             \
  do {                                                                                                        \
    if ((expr)->struct_size < ::tp::capi::FirstVersion<type>::size)                                           \
      return ::tp::capi::fail(out_err, TP_INVALID_ARGUMENT,                                                   \
                              ::tp::capi::struct_size_message<type>(#expr, #type, (expr)->struct_size));      \
  } while (0)
