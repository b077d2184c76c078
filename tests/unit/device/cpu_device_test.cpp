// The CPU device keeps the GPU's rules, so that CPU tests catch a break of
// them: conversions refuse elements that are not aligned to their size (a GPU
// faults with cudaErrorMisalignedAddress and loses its context).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "device/device.h"

namespace tp {
namespace {

using ::testing::HasSubstr;

TEST(CpuDeviceTest, ConversionRefusesMisalignedElements) {
  alignas(16) unsigned char src[64] = {};
  alignas(16) unsigned char dst[64];
  const float ones[4] = {1, 1, 1, 1};
  std::memcpy(src, ones, sizeof ones);
  CpuDevice device(1 << 20);
  struct Case {
    int src_off, dst_off;
    DType from, to;
  };
  for (const Case& c : {Case{1, 0, DType::kF32, DType::kBF16}, Case{2, 0, DType::kF32, DType::kF16},
                        Case{0, 1, DType::kF32, DType::kBF16}, Case{1, 0, DType::kF16, DType::kF32},
                        Case{0, 2, DType::kBF16, DType::kF32}, Case{3, 0, DType::kBF16, DType::kF16}}) {
    std::memset(dst, 0x5a, sizeof dst);
    Status st = convert_on_host(src + c.src_off, c.from, dst + c.dst_off, c.to, 4);
    ASSERT_FALSE(st) << c.src_off << "/" << c.dst_off;
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(st.error().message, HasSubstr("misaligned"));
    for (unsigned char b : dst) ASSERT_EQ(b, 0x5a) << "nothing is written";
    st = device.convert(src + c.src_off, c.from, dst + c.dst_off, c.to, 4, 0);
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  }
  // Aligned elements convert; a plain copy (no conversion) has no rule.
  ASSERT_TRUE(convert_on_host(src, DType::kF32, dst + 2, DType::kBF16, 4));
  uint16_t bf16;
  std::memcpy(&bf16, dst + 2, 2);
  EXPECT_EQ(bf16, 0x3f80);
  EXPECT_TRUE(convert_on_host(src + 1, DType::kF32, dst + 3, DType::kF32, 4));
  EXPECT_TRUE(device.convert(src + 4, DType::kF32, dst + 8, DType::kF16, 3, 0));
}

}  // namespace
}  // namespace tp
