// Private (pipeline, torch): CLIPTextModelWithProjection (CLIP-L, CLIP-G) and
// CLIPTextModel (ClipConfig::with_projection false), written against ATen with weights taken by name from its component folder.
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

struct ClipOutput {
  at::Tensor penultimate;  // (B, L, hidden): the hidden states before the last layer
  at::Tensor pooled;       // the final EOS state: (B, projection_dim) projected, or (B, hidden) without projection
};

class ClipTextEncoder {
 public:
  static Expected<ClipTextEncoder> bind(const ClipConfig& config, const TensorMap& weights, std::string_view prefix);
  // ids: (B, L) int64 on the weights' device, L <= max_positions.
  ClipOutput forward(const at::Tensor& ids) const;
  const ClipConfig& config() const { return config_; }

 private:
  struct Layer {
    Norm ln1, ln2;
    Linear q, k, v, out, fc1, fc2;
  };
  ClipConfig config_;
  at::Tensor token_embedding_, position_embedding_, projection_;
  std::vector<Layer> layers_;
  Norm final_norm_;
};

}  // namespace tp::nn
