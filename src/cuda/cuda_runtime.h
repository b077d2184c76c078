// Internal: thin, checked wrappers over the CUDA runtime. Every call is safe
// on a machine without a GPU or driver: it returns kUnavailable.
//
// Threading: safe from any thread (the CUDA runtime is thread-safe).
#pragma once

#include <cstddef>
#include <cstdint>

#include "twistedpic/dtype.h"
#include "twistedpic/expected.h"

namespace tp::cuda {

// Number of visible CUDA devices; kUnavailable (with the runtime's reason)
// when there is no driver or no device.
Expected<int> device_count();

// True when at least one device can be used.
bool available();

// Device memory as the driver sees it (cudaMemGetInfo) on `device`.
struct MemInfo {
  uint64_t free_bytes = 0;
  uint64_t total_bytes = 0;
};
Expected<MemInfo> mem_info(int device);

// Converts `count` elements of `src` (type `from`) into `dst` (type `to`), both
// device pointers, asynchronously on `stream` (a cudaStream_t; nullptr for the
// legacy default stream). Supports F32, F16 and BF16 in any direction.
// REQUIRES: src and dst do not overlap, unless from == to. Errors: a src or
// dst not aligned to its element size is kInvalidArgument (checked before any
// launch: the kernel's typed accesses would fault and kill the context).
Status convert(const void* src, DType from, void* dst, DType to, size_t count, void* stream);

}  // namespace tp::cuda
