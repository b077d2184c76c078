#include "pipeline/common/binder.h"

#include <sstream>

namespace tp::nn {
namespace {

std::string shape_string(at::IntArrayRef shape) {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << ']';
  return s.str();
}

}  // namespace

at::Tensor Binder::get(const std::string& name, std::vector<int64_t> shape) const {
  auto it = weights_.find(prefix_ + name);
  if (it == weights_.end())
    throw BindError{Error{ErrorCode::kInvalidArgument,
                          label() + "weight '" + name + "' is missing, but config.json implies it"}};
  if (it->second.sizes() != at::IntArrayRef(shape))
    throw BindError{Error{ErrorCode::kInvalidArgument, label() + "weight '" + name + "' has shape " +
                                                           shape_string(it->second.sizes()) +
                                                           ", but config.json implies " + shape_string(shape)}};
  return it->second;
}

Linear Binder::linear(const std::string& name, int64_t in, int64_t out, bool bias) const {
  return {get(name + ".weight", {out, in}), bias ? get(name + ".bias", {out}) : at::Tensor()};
}

Norm Binder::norm(const std::string& name, int64_t dim, double eps, bool bias) const {
  return {get(name + ".weight", {dim}), bias ? get(name + ".bias", {dim}) : at::Tensor(), eps};
}

Conv2d Binder::conv(const std::string& name, int64_t in, int64_t out, int64_t kernel, int64_t stride,
                    int64_t padding) const {
  return {get(name + ".weight", {out, in, kernel, kernel}), get(name + ".bias", {out}), stride, padding};
}

}  // namespace tp::nn
