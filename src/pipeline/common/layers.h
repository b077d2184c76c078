// Private (pipeline, torch): the building blocks the networks of every family
// are written with: linear and convolution layers that hold views of their
// weights, the norms, activations, and attention through
// at::scaled_dot_product_attention.
//
// Threading: layers are immutable values; the functions are pure.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <string>
#include <unordered_map>

namespace tp::nn {

// A component's tensors by name, as views of its device arena.
using TensorMap = std::unordered_map<std::string, at::Tensor>;

struct Linear {
  at::Tensor weight, bias;  // bias may be undefined
  at::Tensor operator()(const at::Tensor& x) const;
};

struct Norm {
  at::Tensor weight, bias;  // both undefined without an affine transform
  double eps = 1e-5;
};

struct Conv2d {
  at::Tensor weight, bias;
  int64_t stride = 1, padding = 0;
  at::Tensor operator()(const at::Tensor& x) const;
};

// "quick_gelu", "gelu", "relu"; anything else is the tanh GELU (gelu_new, gelu_pytorch_tanh).
at::Tensor activation(const at::Tensor& x, const std::string& act);

// LayerNorm over the last axis, with the affine transform of `n`.
at::Tensor layer_norm(const at::Tensor& x, const Norm& n);
// LayerNorm over the last axis without an affine transform.
at::Tensor layer_norm_plain(const at::Tensor& x, double eps = 1e-6);
// RMS norm as diffusers' RMSNorm and T5's T5LayerNorm compute it: the
// variance in fp32, the result in the weight's dtype when that is half.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
at::Tensor group_norm(const at::Tensor& x, const Norm& n, int64_t groups);

// (B, L, H*D) -> (B, H, L, D)
at::Tensor split_heads(const at::Tensor& x, int64_t heads);
// (B, H, L, D) -> (B, L, H*D)
at::Tensor merge_heads(const at::Tensor& x);

// Scaled dot-product attention over (B, H, L, D) heads; `scale` 0 is 1/sqrt(D).
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias = {},
                     bool causal = false, double scale = 0);

// The sinusoidal timestep embedding of diffusers' Timesteps(dim,
// flip_sin_to_cos=True, downscale_freq_shift=0): (B) -> (B, dim), cos first, fp32.
at::Tensor timestep_embedding(const at::Tensor& timesteps, int64_t dim);

}  // namespace tp::nn
