#include "twistedpic/runtime.h"

#include <ATen/Context.h>
#include <torch/version.h>

#include "cuda/cuda_runtime.h"
#include "twistedpic/version.h"

namespace tp {
inline namespace v0 {

RuntimeInfo runtime_info() {
  RuntimeInfo info;
  info.version = TP_VERSION_STRING;
  info.torch_version = TORCH_VERSION;
  try {
    // CUDART_VERSION that libtorch_cuda was built with, e.g. 13000; throws when
    // torch has no CUDA library.
    long v = at::detail::getCUDAHooks().versionCUDART();
    info.torch_cuda_compiled = v > 0;
    if (v > 0) info.torch_cuda_version = std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
  } catch (const std::exception&) {
    info.torch_cuda_compiled = false;
  }
  auto count = cuda::device_count();
  info.cuda_available = count.has_value();
  info.cuda_device_count = count.value_or(0);
  if (!count) info.cuda_unavailable_reason = count.error().message;
  return info;
}

}  // namespace v0
}  // namespace tp
