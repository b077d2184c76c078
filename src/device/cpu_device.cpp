#include <sys/mman.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "device/device.h"

namespace tp {
inline namespace v0 {
namespace {

bool take_failure(std::atomic<int>& counter) {
  int n = counter.load();
  while (n > 0)
    if (counter.compare_exchange_weak(n, n - 1)) return true;
  return false;
}

// Large host blocks come from mmap (fresh, page-aligned, given back to the
// kernel on free), with transparent huge pages to cut page faults.
void* map_bytes(uint64_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);
#endif
  return p;
}

uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fff + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}

float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// IEEE half precision by bits (no _Float16: clang 14 lacks it on x86-64).
float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24
    float f = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -f : f;
  }
  uint32_t bits = exp == 31 ? sign | 0x7f800000 | (mant << 13) : sign | ((exp + 112) << 23) | (mant << 13);
  return std::bit_cast<float>(bits);
}

uint16_t f32_to_f16(float f) {  // round to nearest even
  uint32_t x = std::bit_cast<uint32_t>(f);
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  x &= 0x7fffffff;
  if (x >= 0x7f800000) return sign | (x > 0x7f800000 ? 0x7e00 : 0x7c00);  // NaN, infinity
  if (x >= 0x477ff000) return sign | 0x7c00;                               // rounds past 65504
  if (x < 0x38800000)  // below 2^-14: a subnormal half; scaling by 2^24 is exact
    return sign | static_cast<uint16_t>(std::nearbyint(std::bit_cast<float>(x) * 16777216.0f));
  uint32_t h = (((x >> 23) - 112) << 10) | ((x >> 13) & 0x3ff);
  uint32_t rest = x & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;
  return sign | static_cast<uint16_t>(h);
}

// Callers align elements (convert_on_host checks); memcpy keeps the loads free of aliasing rules.
float load(const void* src, DType t, uint64_t i) {
  const char* p = static_cast<const char*>(src);
  if (t == DType::kF32) {
    float f;
    std::memcpy(&f, p + i * 4, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p + i * 2, 2);
  return t == DType::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
}

void store(void* dst, DType t, uint64_t i, float v) {
  char* p = static_cast<char*>(dst);
  if (t == DType::kF32) {
    std::memcpy(p + i * 4, &v, 4);
    return;
  }
  uint16_t h = t == DType::kF16 ? f32_to_f16(v) : f32_to_bf16(v);
  std::memcpy(p + i * 2, &h, 2);
}

bool convertible(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

}  // namespace

Status convert_on_host(const void* src, DType from, void* dst, DType to, uint64_t count) {
  if (from == to) {
    std::memcpy(dst, src, count * dtype_size(from));
    return ok_status();
  }
  if (!convertible(from) || !convertible(to))
    return unimplemented("conversion from " + std::string(dtype_safetensors_name(from)) + " to " +
                         std::string(dtype_safetensors_name(to)));
  if (reinterpret_cast<uintptr_t>(src) % dtype_size(from) != 0 || reinterpret_cast<uintptr_t>(dst) % dtype_size(to) != 0)
    return invalid_argument("convert: misaligned pointer (" + std::string(dtype_safetensors_name(from)) + " source " +
                            std::to_string(reinterpret_cast<uintptr_t>(src) % 16) + " bytes past a 16-byte boundary, " +
                            std::string(dtype_safetensors_name(to)) + " destination " +
                            std::to_string(reinterpret_cast<uintptr_t>(dst) % 16) +
                            "): elements must be aligned to their size, as on a GPU");
  for (uint64_t i = 0; i < count; ++i) store(dst, to, i, load(src, from, i));
  return ok_status();
}

CpuDevice::CpuDevice(uint64_t budget_bytes, std::string name) : budget_(budget_bytes), name_(std::move(name)) {}

Expected<DeviceMemoryInfo> CpuDevice::query() {
  DeviceMemoryInfo info;
  info.total_bytes = budget_;
  uint64_t used = allocated_.load();
  info.free_bytes = used >= budget_ ? 0 : budget_ - used;
  info.process_bytes = used;
  return info;
}

Expected<void*> CpuDevice::allocate(uint64_t bytes) {
  if (take_failure(fail_device_)) return resource_exhausted("cpu device: injected allocation failure of " + std::to_string(bytes) + " bytes");
  uint64_t used = allocated_.fetch_add(bytes);
  if (used + bytes > budget_) {
    allocated_.fetch_sub(bytes);
    return resource_exhausted("cpu device: " + std::to_string(bytes) + " bytes exceed the budget (" +
                              std::to_string(budget_ - std::min(used, budget_)) + " free)");
  }
  void* p = map_bytes(bytes ? bytes : 1);
  if (!p) {
    allocated_.fetch_sub(bytes);
    return resource_exhausted("cpu device: mmap of " + std::to_string(bytes) + " bytes failed");
  }
  return p;
}

void CpuDevice::free(void* ptr, uint64_t bytes) {
  if (!ptr) return;
  munmap(ptr, bytes ? bytes : 1);
  allocated_.fetch_sub(bytes);
}

Expected<void*> CpuDevice::allocate_pinned(uint64_t bytes) {
  if (take_failure(fail_pinned_)) return resource_exhausted("cpu device: injected pinned allocation failure of " + std::to_string(bytes) + " bytes");
  void* p = map_bytes(bytes ? bytes : 1);
  if (!p) return resource_exhausted("cpu device: mmap of " + std::to_string(bytes) + " pinned bytes failed");
  pinned_.fetch_add(bytes);
  return p;
}

void CpuDevice::free_pinned(void* ptr, uint64_t bytes) {
  if (!ptr) return;
  munmap(ptr, bytes ? bytes : 1);
  pinned_.fetch_sub(bytes);
}

Status CpuDevice::copy_to_device(void* dst, const void* src, uint64_t bytes, int) {
  std::memcpy(dst, src, bytes);
  return ok_status();
}

Status CpuDevice::copy_to_host(void* dst, const void* src, uint64_t bytes, int) {
  std::memcpy(dst, src, bytes);
  return ok_status();
}

Status CpuDevice::convert(const void* src, DType from, void* dst, DType to, uint64_t count, int) {
  return convert_on_host(src, from, dst, to, count);
}

}  // namespace v0
}  // namespace tp
