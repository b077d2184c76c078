#include "torch/tensors.h"

#include <ATen/Functions.h>
#include <c10/cuda/CUDAStream.h>

#include "twistedpic/log.h"

namespace tp::torch_bridge {

at::ScalarType scalar_type(DType t) {
  switch (t) {
    case DType::kF64: return at::kDouble;
    case DType::kF32: return at::kFloat;
    case DType::kF16: return at::kHalf;
    case DType::kBF16: return at::kBFloat16;
    case DType::kF8E4M3: return at::kFloat8_e4m3fn;
    case DType::kF8E5M2: return at::kFloat8_e5m2;
    case DType::kI64: return at::kLong;
    case DType::kI32: return at::kInt;
    case DType::kI16: return at::kShort;
    case DType::kI8: return at::kChar;
    case DType::kU8: return at::kByte;
    case DType::kBool: return at::kBool;
  }
  return at::kByte;
}

at::Device device_of(const TensorWeights& weights) {
  return weights.device().is_host_memory() ? at::Device(at::kCPU) : at::Device(weights.device().name());
}

Expected<std::unordered_map<std::string, at::Tensor>> tensor_views(const TensorWeights& weights) {
  if (!weights.on_device()) return failed_precondition("tensor_views: the weights are not on the device");
  const at::Device device = device_of(weights);
  std::unordered_map<std::string, at::Tensor> out;
  try {
    for (const WeightTensor& t : weights.tensors()) {
      auto options = at::TensorOptions().dtype(scalar_type(t.dtype)).device(device);
      void* data = static_cast<char*>(weights.device_data()) + t.offset;
      // The device is known: no pointer query (cudaPointerGetAttributes may call
      // an empty tensor at the arena's end, one past it, unregistered).
      // A transposed tensor (WeightTensor::transposed) keeps the file's bytes,
      // row-major shape[1] x shape[0]: its view is their transpose, strided.
      const std::vector<int64_t> stored = t.transposed ? std::vector<int64_t>{t.shape[1], t.shape[0]} : t.shape;
      at::Tensor view = at::for_blob(data, stored)
                            .options(options)
                            .target_device(device)
                            .deleter([](void*) {})  // the arena owns the bytes
                            .make_tensor();
      out.emplace(t.name, t.transposed ? view.t() : view);
    }
  } catch (const std::exception& e) {
    return internal_error(std::string("tensor_views: ") + e.what());
  }
  return out;
}

void note_use(const TensorWeights& weights) noexcept {
  if (!weights.on_device()) return;
  if (weights.device().is_host_memory()) {  // CPU kernels have run by the time they return
    weights.note_use(nullptr);
    return;
  }
  try {
    weights.note_use(c10::cuda::getCurrentCUDAStream(device_of(weights).index()).stream());
  } catch (const std::exception& e) {
    // Only for a device torch does not know; the legacy default stream is the next best fence.
    TP_LOG(kWarn, "torch", "no current stream for " << weights.device().name() << ": " << e.what());
    weights.note_use(nullptr);
  }
}

}  // namespace tp::torch_bridge
