// Shared by the parity tests against diffusers: a safetensors file or model
// folder resident on the CPU device, as tensor views, max |a - b|, the check
// that prints what it measured, and images against diffusers' 8-bit pixels.
#pragma once

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "device/device.h"
#include "pipeline/common/layers.h"
#include "torch/tensors.h"
#include "weights/diffusers_folder.h"
#include "weights/tensor_weights.h"
#include "twistedpic/image.h"

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

// Prints what was measured, for the record, and checks it.
inline void expect_within(const std::string& what, double diff, double limit) {
  std::printf("[ max |diff| ] %-48s %.3g (limit %.0e)\n", what.c_str(), diff, limit);
  EXPECT_LE(diff, limit) << what;
}

// The largest difference, in 8-bit levels, between `images` and diffusers'
// (B, H, W, 3) uint8 `expected`; a count or size mismatch fails the test.
inline double max_pixel_diff(const std::vector<Image>& images, const at::Tensor& expected) {
  EXPECT_EQ(images.size(), static_cast<size_t>(expected.size(0)));
  double worst = 0;
  for (size_t i = 0; i < std::min(images.size(), static_cast<size_t>(expected.size(0))); ++i) {
    const Image& img = images[i];
    EXPECT_EQ(img.width, expected.size(2));
    EXPECT_EQ(img.height, expected.size(1));
    if (img.width != expected.size(2) || img.height != expected.size(1)) return 255;
    at::Tensor ours = at::from_blob(const_cast<uint8_t*>(img.rgb.data()), {img.height, img.width, 3}, at::kByte);
    worst = std::max(worst, max_diff(ours, expected[static_cast<int64_t>(i)]));
  }
  return worst;
}

}  // namespace tp::testing
