#include <gtest/gtest.h>

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

}  // namespace
}  // namespace tp
