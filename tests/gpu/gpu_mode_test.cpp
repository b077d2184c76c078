// GPU mode (TP_GPU_REQUIRED=1): the run is on a GPU or it fails. Linked into
// every GPU test binary. Without GPU mode and without a device, the test here
// skips like the others.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "device/device.h"
#include "gpu/gpu_test_util.h"

namespace tp {
namespace {

// Before any test: in GPU mode the CUDA runtime must see a device and use
// device 0, so that "cuda:0" in every assertion is the GPU the run measured.
// Non-fatal on purpose: a fatal failure here would make gtest skip every test,
// and ctest counts a skipped test as passed (a green run without a GPU); this
// way the program fails and each test that needs the GPU fails too.
class GpuModeEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    if (!gpu_test::gpu_required()) return;
    auto n = cuda::device_count();
    if (!n) {
      ADD_FAILURE() << "GPU mode (TP_GPU_REQUIRED=1), but no usable CUDA device: " << n.error().message;
      return;
    }
    int current = -1;
    EXPECT_EQ(cudaGetDevice(&current), cudaSuccess);
    EXPECT_EQ(current, 0) << "GPU mode expects device 0 to be current";
  }
};

[[maybe_unused]] ::testing::Environment* const kGpuMode = ::testing::AddGlobalTestEnvironment(new GpuModeEnvironment);

TEST(GpuModeTest, TheDeviceInUseIsCuda0) {
  TP_REQUIRE_GPU();
  int current = -1;
  ASSERT_EQ(cudaGetDevice(&current), cudaSuccess);
  EXPECT_EQ(current, 0);
  auto device = make_cuda_device(0);
  ASSERT_TRUE(device) << device.error().message;
  EXPECT_EQ((*device)->name(), "cuda:0");
  EXPECT_FALSE((*device)->is_host_memory());
  cudaDeviceProp prop{};
  ASSERT_EQ(cudaGetDeviceProperties(&prop, 0), cudaSuccess);
  std::printf("RESULT gpu_device=\"%s, sm_%d%d, %.1f GiB\"\n", prop.name, prop.major, prop.minor,
              static_cast<double>(prop.totalGlobalMem) / (1ull << 30));
}

// GPU mode without a device is a failure, never a skip: the rule itself,
// checked on every machine (it needs no GPU).
TEST(GpuModeTest, RequiredIsReadFromTheEnvironment) {
  const char* saved = std::getenv("TP_GPU_REQUIRED");
  std::string keep = saved ? saved : "";
  ::setenv("TP_GPU_REQUIRED", "1", 1);
  EXPECT_TRUE(gpu_test::gpu_required());
  ::setenv("TP_GPU_REQUIRED", "0", 1);
  EXPECT_FALSE(gpu_test::gpu_required());
  ::unsetenv("TP_GPU_REQUIRED");
  EXPECT_FALSE(gpu_test::gpu_required());
  if (saved) ::setenv("TP_GPU_REQUIRED", keep.c_str(), 1);
}

}  // namespace
}  // namespace tp
