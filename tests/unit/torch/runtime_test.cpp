#include <gtest/gtest.h>

#include "twistedpic/registry.h"
#include "twistedpic/runtime.h"
#include "twistedpic/version.h"

namespace tp {
namespace {

TEST(RuntimeTest, ReportsVersionsAndCudaState) {
  RuntimeInfo info = runtime_info();
  EXPECT_EQ(info.version, TP_VERSION_STRING);
  EXPECT_EQ(info.torch_version.rfind("2.", 0), 0u) << info.torch_version;
  // The project's LibTorch is the CUDA 13.0 build, so libtorch_cuda is loaded.
  EXPECT_TRUE(info.torch_cuda_compiled);
  EXPECT_EQ(info.torch_cuda_version.rfind("13.", 0), 0u) << info.torch_cuda_version;
  if (info.cuda_available) {
    EXPECT_GT(info.cuda_device_count, 0);
    EXPECT_TRUE(info.cuda_unavailable_reason.empty());
  } else {
    EXPECT_EQ(info.cuda_device_count, 0);
    EXPECT_FALSE(info.cuda_unavailable_reason.empty());
  }
}

// RuntimeInfo lists the devices default_registry_options() uses: every
// visible CUDA device in index order, or the CPU device alone; and the
// options hold one RegistryDevice per device, named alike, with its clean-up.
TEST(RuntimeTest, ListsTheDevicesTheDefaultOptionsUse) {
  RuntimeInfo info = runtime_info();
  ASSERT_FALSE(info.devices.empty());
  if (info.cuda_available) {
    ASSERT_EQ(info.devices.size(), static_cast<size_t>(info.cuda_device_count));
    for (size_t i = 0; i < info.devices.size(); ++i) EXPECT_EQ(info.devices[i].name, "cuda:" + std::to_string(i));
  } else {
    ASSERT_EQ(info.devices.size(), 1u);
    EXPECT_EQ(info.devices[0].name, "cpu");
  }
  for (const RuntimeDevice& d : info.devices) {
    EXPECT_GT(d.total_bytes, 0u) << d.name;
    EXPECT_LE(d.free_bytes, d.total_bytes) << d.name;
  }
  auto options = default_registry_options();
  ASSERT_TRUE(options) << options.error().message;
  ASSERT_EQ(options->devices.size(), info.devices.size());
  for (size_t i = 0; i < info.devices.size(); ++i) {
    EXPECT_EQ(options->devices[i].name, info.devices[i].name);
    EXPECT_EQ(options->devices[i].monitor->name(), info.devices[i].name);
    EXPECT_TRUE(options->devices[i].backend);
    EXPECT_TRUE(options->devices[i].clean_caches);
  }
  // The int overload: one device.
  auto one = default_registry_options(0);
  ASSERT_TRUE(one) << one.error().message;
  ASSERT_EQ(one->devices.size(), 1u);
  EXPECT_EQ(one->devices[0].name, info.devices[0].name);
  EXPECT_EQ(one->backend, one->devices[0].backend);
}

}  // namespace
}  // namespace tp
