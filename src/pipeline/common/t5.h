// Private (pipeline, torch): T5EncoderModel, v1.1 gated-GELU (T5-XXL) or ReLU,
// written against ATen with weights taken by name from its component folder.
//
// A bound encoder holds views into the weights' device arena: it must not
// outlive the lease that keeps them there (pipeline/common/bound_network.h).
// Threading: a bound encoder is immutable; forward() may run from several
// threads at once.
#pragma once

#include <ATen/Tensor.h>

#include <optional>
#include <string_view>
#include <vector>

#include "pipeline/common/network_configs.h"
#include "pipeline/common/layers.h"
#include "twistedpic/expected.h"

namespace tp::nn {

class T5Encoder {
 public:
  static Expected<T5Encoder> bind(const T5Config& config, const TensorMap& weights, std::string_view prefix);
  // ids: (B, L) int64. Returns the last hidden state, (B, L, d_model).
  at::Tensor forward(const at::Tensor& ids) const;
  const T5Config& config() const { return config_; }

 private:
  struct Layer {
    at::Tensor ln1, ln2;  // RMS norm weights
    Linear q, k, v, o, wi0, wi1, wo;  // wi1 undefined when not gated
  };
  at::Tensor position_bias(int64_t length) const;
  T5Config config_;
  at::Tensor embedding_, relative_bias_, final_norm_;
  std::vector<Layer> layers_;
};

}  // namespace tp::nn
