// Shared by the parity tests against diffusers: a safetensors file or model
// folder resident on the CPU device, as tensor views, and max |a - b|.
#pragma once

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "device/device.h"
#include "pipeline/common/layers.h"
#include "torch/tensors.h"
#include "weights/diffusers_folder.h"
#include "weights/tensor_weights.h"

namespace tp::testing {

struct Loaded {
  std::unique_ptr<TensorWeights> weights;
  nn::TensorMap tensors;

  static Loaded open(const std::filesystem::path& source) {
    Loaded l;
    auto files = std::filesystem::is_regular_file(source) ? Expected<std::vector<WeightFile>>({{source, ""}})
                                                          : model_weight_files(source.string());
    EXPECT_TRUE(files) << files.error().message;
    auto device = std::make_shared<CpuDevice>(1ull << 32);
    auto pool = std::make_shared<PinnedPool>(device, 1 << 20, 2);
    auto w = TensorWeights::open(*files, std::nullopt, device, pool, TransferOptions{1 << 20, 2});
    EXPECT_TRUE(w) << w.error().message;
    l.weights = std::move(*w);
    EXPECT_TRUE(l.weights->load_to_device({}));
    l.tensors = *torch_bridge::tensor_views(*l.weights);
    return l;
  }
  const at::Tensor& operator[](const std::string& name) const { return tensors.at(name); }
  bool has(const std::string& name) const { return tensors.count(name) != 0; }
};

inline nlohmann::json component_config(const std::filesystem::path& folder, const char* component) {
  auto f = read_diffusers_folder(folder);
  EXPECT_TRUE(f) << f.error().message;
  return f->find(component)->config;
}

inline double max_diff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace tp::testing
