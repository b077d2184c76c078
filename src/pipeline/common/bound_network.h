// Private (pipeline, torch): a network bound to the weights a lease holds,
// made once per load of that component and dropped when the component leaves
// the device (TensorWeights::device_binding). Nothing is rebound per call.
//
//   TP_ASSIGN_OR_RETURN(auto vae, bind_lease<nn::VaeDecoder>(lease, spec.vae, spec.root.string()));
//   vae.net->forward(latents.to(vae.device, vae.dtype));
//
// `Net` is any network with `static Expected<Net> bind(const Config&, const
// TensorMap&, std::string_view prefix)`. `key` tells apart two bindings of one
// component (two folders sharing the same weight files); the network's type is
// part of it.
//
// Threading: safe from several lease holders at once; the network must not be
// used after the lease ends.
#pragma once

#include <ATen/Tensor.h>

#include <memory>
#include <string>
#include <typeinfo>

#include "pipeline/common/layers.h"
#include "torch/tensors.h"
#include "twistedpic/registry.h"
#include "weights/tensor_weights.h"

namespace tp::nn {

template <class Net>
struct BoundNetwork {
  std::shared_ptr<const Net> net;
  at::Device device = at::kCPU;                // where the weights are
  at::ScalarType dtype = at::kFloat;           // their floating-point dtype
  // When the last copy of this BoundNetwork goes, the work queued so far on
  // torch's current stream is noted as the last use of the weights
  // (torch_bridge::note_use), so that an eviction frees the arena only after
  // it. Drop it (with the network) before the lease ends, on the stream that
  // ran the network; a RunContext::lease pair does (its lease goes last).
  std::shared_ptr<const void> in_use;
};

// The lease's weights as TensorWeights on the device.
// Errors: kFailedPrecondition when they are not (a simulated backend).
Expected<const TensorWeights*> lease_tensor_weights(const ModelLease& lease);
// The dtype the weights compute in: the configured one (ModelConfig::dtype,
// the weights' conversion target) when set, else that of their first floating
// tensor in file order; kFloat when none is floating. Integer tensors never
// decide it (TensorWeights::compute_dtype).
at::ScalarType weights_dtype(const TensorWeights& weights);
// Notes the weights' last use when the returned handle's last copy goes.
std::shared_ptr<const void> use_guard(const TensorWeights& weights);

template <class Net, class Config>
Expected<BoundNetwork<Net>> bind_lease(const ModelLease& lease, const Config& config, const std::string& key) {
  TP_ASSIGN_OR_RETURN(const TensorWeights* w, lease_tensor_weights(lease));
  auto made = w->device_binding(std::string(typeid(Net).name()) + "|" + key,
                                [&]() -> Expected<TensorWeights::Binding> {
                                  TP_ASSIGN_OR_RETURN(TensorMap tensors, torch_bridge::tensor_views(*w));
                                  auto net = Net::bind(config, tensors, "");
                                  if (!net)
                                    return make_error(net.error().code,
                                                      "model '" + lease.name() + "': " + net.error().message);
                                  return std::make_shared<const Net>(std::move(*net));
                                });
  if (!made) return tl::unexpected(made.error());
  return BoundNetwork<Net>{std::static_pointer_cast<const Net>(*made), torch_bridge::device_of(*w), weights_dtype(*w),
                           use_guard(*w)};
}

}  // namespace tp::nn
