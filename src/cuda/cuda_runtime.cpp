#include "cuda/cuda_runtime.h"

#include <string>

#include <cuda_runtime_api.h>

namespace tp::cuda {
namespace {

tl::unexpected<Error> cuda_error(const char* what, cudaError_t err) {
  ErrorCode code = ErrorCode::kInternal;
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver || err == cudaErrorInitializationError)
    code = ErrorCode::kUnavailable;
  if (err == cudaErrorMemoryAllocation) code = ErrorCode::kResourceExhausted;
  return make_error(code, std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

}  // namespace

Expected<int> device_count() {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return cuda_error("cudaGetDeviceCount", err);
  }
  if (n == 0) return unavailable("cudaGetDeviceCount: no CUDA device is visible");
  return n;
}

bool available() { return device_count().has_value(); }

Expected<MemInfo> mem_info(int device) {
  TP_ASSIGN_OR_RETURN(int n, device_count());
  if (device < 0 || device >= n)
    return invalid_argument("CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(n) +
                            " visible)");
  int previous = 0;
  cudaGetDevice(&previous);
  if (cudaError_t err = cudaSetDevice(device); err != cudaSuccess) return cuda_error("cudaSetDevice", err);
  size_t free_b = 0, total_b = 0;
  cudaError_t err = cudaMemGetInfo(&free_b, &total_b);
  cudaSetDevice(previous);
  if (err != cudaSuccess) return cuda_error("cudaMemGetInfo", err);
  return MemInfo{free_b, total_b};
}

}  // namespace tp::cuda
