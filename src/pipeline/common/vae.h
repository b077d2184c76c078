// Private (pipeline, torch): AutoencoderKL's decoder, written against ATen with
// weights taken by name from its component folder.
//
// A bound decoder holds views into the weights' device arena: it must not
// outlive the lease that keeps them there (pipeline/common/bound_network.h).
// Threading: a bound decoder is immutable; forward() may run from several
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

class VaeDecoder {
 public:
  static Expected<VaeDecoder> bind(const VaeConfig& config, const TensorMap& weights, std::string_view prefix);
  // Decodes latents as the VAE sees them (already unscaled), (B, latent, h, w) -> (B, 3, h*f, w*f) in [-1, 1].
  at::Tensor forward(const at::Tensor& latents) const;
  // latents / scaling_factor + shift_factor, then forward().
  at::Tensor decode_scaled(const at::Tensor& latents) const;
  const VaeConfig& config() const { return config_; }

 private:
  struct Resnet {
    Norm norm1, norm2;
    Conv2d conv1, conv2, shortcut;  // shortcut undefined when the channels agree
  };
  struct Up {
    std::vector<Resnet> resnets;
    std::optional<Conv2d> upsample;
  };
  at::Tensor resnet(const Resnet& r, const at::Tensor& x) const;
  VaeConfig config_;
  std::optional<Conv2d> post_quant_conv_;
  Conv2d conv_in_, conv_out_;
  Resnet mid1_, mid2_;
  Norm mid_attn_norm_, norm_out_;
  Linear mid_q_, mid_k_, mid_v_, mid_out_;
  std::vector<Up> ups_;
};

}  // namespace tp::nn
