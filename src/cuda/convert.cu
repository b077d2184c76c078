// Element-type conversion kernels for the transfer engine (fp32 <-> fp16 <-> bf16).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "cuda/cuda_runtime.h"

namespace tp::cuda {
namespace {

template <class T>
__device__ __forceinline__ float to_float(T v);
template <>
__device__ __forceinline__ float to_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ float to_float<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <class From, class To>
__global__ void convert_kernel(const From* __restrict__ src, To* __restrict__ dst, size_t n) {
  size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    dst[i] = from_float<To>(to_float<From>(src[i]));
}

template <class From, class To>
Status launch(const void* src, void* dst, size_t n, cudaStream_t stream) {
  constexpr int kThreads = 256;
  size_t blocks = (n + kThreads - 1) / kThreads;
  if (blocks > 65535u * 8u) blocks = 65535u * 8u;
  if (blocks == 0) return ok_status();
  convert_kernel<From, To><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      static_cast<const From*>(src), static_cast<To*>(dst), n);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return internal_error(std::string("convert kernel launch: ") + cudaGetErrorString(err));
  return ok_status();
}

template <class From>
Status dispatch_to(const void* src, void* dst, DType to, size_t n, cudaStream_t s) {
  switch (to) {
    case DType::kF32: return launch<From, float>(src, dst, n, s);
    case DType::kF16: return launch<From, __half>(src, dst, n, s);
    case DType::kBF16: return launch<From, __nv_bfloat16>(src, dst, n, s);
    default: return unimplemented("device conversion to " + std::string(dtype_safetensors_name(to)));
  }
}

}  // namespace

Status convert(const void* src, DType from, void* dst, DType to, size_t count, void* stream) {
  if (count == 0) return ok_status();
  if (!src || !dst) return invalid_argument("convert: null device pointer");
  auto s = static_cast<cudaStream_t>(stream);
  // A typed load or store at a misaligned address is cudaErrorMisalignedAddress,
  // which kills the context: refuse before launching.
  if (from != to && (reinterpret_cast<uintptr_t>(src) % dtype_size(from) != 0 ||
                     reinterpret_cast<uintptr_t>(dst) % dtype_size(to) != 0))
    return invalid_argument("convert: misaligned device pointer (" + std::string(dtype_safetensors_name(from)) +
                            " source at " + std::to_string(reinterpret_cast<uintptr_t>(src) % 16) + " mod 16, " +
                            std::string(dtype_safetensors_name(to)) + " destination at " +
                            std::to_string(reinterpret_cast<uintptr_t>(dst) % 16) +
                            " mod 16): elements must be aligned to their size");
  if (from == to) {
    cudaError_t err = cudaMemcpyAsync(dst, src, count * dtype_size(from), cudaMemcpyDeviceToDevice, s);
    if (err != cudaSuccess) return internal_error(std::string("convert: cudaMemcpyAsync: ") + cudaGetErrorString(err));
    return ok_status();
  }
  switch (from) {
    case DType::kF32: return dispatch_to<float>(src, dst, to, count, s);
    case DType::kF16: return dispatch_to<__half>(src, dst, to, count, s);
    case DType::kBF16: return dispatch_to<__nv_bfloat16>(src, dst, to, count, s);
    default: return unimplemented("device conversion from " + std::string(dtype_safetensors_name(from)));
  }
}

}  // namespace tp::cuda
