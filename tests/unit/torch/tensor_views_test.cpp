// Tensors of loaded weights as at::Tensor views, without copies.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstring>

#include "device/device.h"
#include "torch/tensors.h"
#include "twistedpic/runtime.h"
#include "support/weights_test_util.h"

namespace tp {
namespace {

TEST(TensorViewsTest, ViewsAliasTheArenaWithShapesAndDtypes) {
  testing_util::ScratchDir dir;
  // x: F32 [2, 3] = 0..5; y: F16 [4] (converted to F32 on load).
  std::string header = R"({"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
                       R"("y":{"dtype":"F16","shape":[4],"data_offsets":[24,32]}})";
  while (header.size() % 8) header += ' ';
  std::string data(32, '\0');
  for (int i = 0; i < 6; ++i) {
    float f = static_cast<float>(i);
    std::memcpy(&data[i * 4], &f, 4);
  }
  const uint16_t halves[4] = {0x3c00, 0x4000, 0xc000, 0x3800};  // 1, 2, -2, 0.5
  std::memcpy(&data[24], halves, 8);
  testing_util::write_file(dir / "m.safetensors", testing_util::le64(header.size()) + header + data);

  auto device = std::make_shared<CpuDevice>(1ull << 30);
  auto pool = std::make_shared<PinnedPool>(device, 16ull << 20, 2);
  auto weights = TensorWeights::open({{dir / "m.safetensors", ""}}, DType::kF32, device, pool).value();
  ASSERT_TRUE(weights->load_to_device({}));
  auto views = torch_bridge::tensor_views(*weights).value();
  const at::Tensor& x = views.at("x");
  EXPECT_EQ(x.sizes(), (at::IntArrayRef{2, 3}));
  EXPECT_EQ(x.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(x, at::arange(6, at::kFloat).reshape({2, 3})));
  EXPECT_EQ(x.data_ptr(), static_cast<char*>(weights->device_data()) + weights->find("x")->offset);  // no copy
  EXPECT_TRUE(at::equal(views.at("y"), at::tensor({1.0f, 2.0f, -2.0f, 0.5f})));
  weights->drop_device();
  EXPECT_FALSE(torch_bridge::tensor_views(*weights));
}

TEST(TensorViewsTest, DefaultOptionsUseTheCpuDeviceWithoutAGpu) {
  auto options = default_registry_options();
  ASSERT_TRUE(options) << options.error().to_string();
  EXPECT_TRUE(options->backend);
  auto info = options->monitor->query();
  ASSERT_TRUE(info);
  EXPECT_GT(info->total_bytes, 0u);
  ASSERT_FALSE(options->devices.empty());
  EXPECT_EQ(options->backend, options->devices[0].backend);
  ASSERT_TRUE(options->devices[0].clean_caches);
  options->devices[0].clean_caches();  // a no-op without CUDA, and never throws
}

}  // namespace
}  // namespace tp
