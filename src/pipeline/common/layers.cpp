#include "pipeline/common/layers.h"

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/scaled_dot_product_attention.h>

#include <cmath>
#include <optional>

namespace tp::nn {

at::Tensor Linear::operator()(const at::Tensor& x) const { return at::linear(x, weight, bias); }

at::Tensor Conv2d::operator()(const at::Tensor& x) const {
  return at::conv2d(x, weight, bias, {stride, stride}, {padding, padding});
}

at::Tensor activation(const at::Tensor& x, const std::string& act) {
  if (act == "quick_gelu") return x * at::sigmoid(1.702 * x);
  if (act == "gelu") return at::gelu(x);
  if (act == "relu") return at::relu(x);
  return at::gelu(x, "tanh");  // gelu_new, gelu_pytorch_tanh
}

at::Tensor layer_norm(const at::Tensor& x, const Norm& n) {
  return at::layer_norm(x, {x.size(-1)}, n.weight, n.bias, n.eps);
}

at::Tensor layer_norm_plain(const at::Tensor& x, double eps) { return at::layer_norm(x, {x.size(-1)}, {}, {}, eps); }

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor var = x.to(at::kFloat).pow(2).mean(-1, /*keepdim=*/true);
  at::Tensor y = x * at::rsqrt(var + eps);
  if (weight.scalar_type() == at::kHalf || weight.scalar_type() == at::kBFloat16) y = y.to(weight.scalar_type());
  return weight * y;
}

at::Tensor group_norm(const at::Tensor& x, const Norm& n, int64_t groups) {
  return at::group_norm(x, groups, n.weight, n.bias, n.eps);
}

at::Tensor split_heads(const at::Tensor& x, int64_t heads) {
  return x.view({x.size(0), x.size(1), heads, -1}).transpose(1, 2);
}

at::Tensor merge_heads(const at::Tensor& x) {
  return x.transpose(1, 2).reshape({x.size(0), x.size(2), x.size(1) * x.size(3)});
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias, bool causal,
                     double scale) {
  return at::scaled_dot_product_attention(q, k, v, bias.defined() ? std::optional<at::Tensor>(bias) : std::nullopt,
                                          0.0, causal,
                                          scale > 0 ? std::optional<double>(scale) : std::nullopt);
}

at::Tensor timestep_embedding(const at::Tensor& timesteps, int64_t dim) {
  const int64_t half = dim / 2;
  auto fopts = at::TensorOptions().dtype(at::kFloat).device(timesteps.device());
  at::Tensor freqs = at::exp(at::arange(half, fopts) * (-std::log(10000.0) / half));
  at::Tensor args = timesteps.to(at::kFloat).unsqueeze(1) * freqs.unsqueeze(0);
  return at::cat({at::cos(args), at::sin(args)}, -1);
}

}  // namespace tp::nn
