#include "pipeline/common/bound_network.h"

namespace tp::nn {

Expected<const TensorWeights*> lease_tensor_weights(const ModelLease& lease) {
  auto* weights = dynamic_cast<const TensorWeights*>(&lease.weights());
  if (!weights)
    return failed_precondition("model '" + lease.name() + "' is not backed by real tensors (a simulated backend?)");
  if (!weights->on_device()) return failed_precondition("model '" + lease.name() + "' is not on the device");
  return weights;
}

at::ScalarType weights_dtype(const TensorWeights& weights) {
  std::optional<DType> dtype = weights.compute_dtype();
  return dtype ? torch_bridge::scalar_type(*dtype) : at::kFloat;
}

std::shared_ptr<const void> use_guard(const TensorWeights& weights) {
  return std::shared_ptr<const void>(
      &weights, [](const void* w) { torch_bridge::note_use(*static_cast<const TensorWeights*>(w)); });
}

}  // namespace tp::nn
