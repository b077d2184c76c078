#include "pipeline/common/bound_network.h"

#include "torch/tensors.h"

namespace tp::nn {

Expected<const TensorWeights*> lease_tensor_weights(const ModelLease& lease) {
  auto* weights = dynamic_cast<const TensorWeights*>(&lease.weights());
  if (!weights)
    return failed_precondition("model '" + lease.name() + "' is not backed by real tensors (a simulated backend?)");
  if (!weights->on_device()) return failed_precondition("model '" + lease.name() + "' is not on the device");
  return weights;
}

at::Device weights_device(const TensorWeights& weights) {
  return weights.device().is_host_memory() ? at::Device(at::kCPU) : at::Device(weights.device().name());
}

at::ScalarType weights_dtype(const TensorWeights& weights) {
  for (const WeightTensor& t : weights.tensors())
    if (t.dtype == DType::kF32 || t.dtype == DType::kF16 || t.dtype == DType::kBF16 || t.dtype == DType::kF64)
      return torch_bridge::scalar_type(t.dtype);
  return at::kFloat;
}

Expected<TensorMap> weight_views(const TensorWeights& weights) { return torch_bridge::tensor_views(weights); }

}  // namespace tp::nn
