// Private (pipeline, torch): taking a component's tensors by name for a
// network, checked against the shapes its config implies. A config that
// disagrees with its weights fails at binding, naming the tensor, so forward()
// never meets a missing or misshapen weight.
//
//   return bind_checked<MyNet>([&] {
//     Binder b(weights, "");
//     MyNet n;
//     n.proj = b.linear("proj", in, out);   // throws BindError, caught by bind_checked
//     return n;
//   });
//
// Threading: a Binder is used by one thread, inside one bind.
#pragma once

#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/common/layers.h"
#include "twistedpic/expected.h"

namespace tp::nn {

// Thrown by a Binder, caught by bind_checked(): never escapes a bind.
struct BindError {
  Error error;
};

class Binder {
 public:
  Binder(const TensorMap& weights, std::string_view prefix) : weights_(weights), prefix_(prefix) {}

  bool has(const std::string& name) const { return weights_.count(prefix_ + name) != 0; }
  // The tensor `name`, which must have `shape`.
  at::Tensor get(const std::string& name, std::vector<int64_t> shape) const;
  Linear linear(const std::string& name, int64_t in, int64_t out, bool bias = true) const;
  Norm norm(const std::string& name, int64_t dim, double eps, bool bias = true) const;
  Conv2d conv(const std::string& name, int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding) const;

 private:
  std::string label() const { return prefix_.empty() ? std::string() : prefix_ + ": "; }
  const TensorMap& weights_;
  std::string prefix_;
};

// Runs a bind body; a BindError or any exception becomes an error value.
template <class T, class F>
Expected<T> bind_checked(F&& f) {
  try {
    return f();
  } catch (const BindError& e) {
    return tl::unexpected(e.error);
  } catch (const std::exception& e) {
    return internal_error(std::string("binding weights: ") + e.what());
  }
}

}  // namespace tp::nn
