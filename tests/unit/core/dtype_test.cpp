#include <gtest/gtest.h>

#include "twistedpic/dtype.h"

namespace tp {
namespace {

TEST(DTypeTest, SizesAndNamesRoundTrip) {
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
  EXPECT_EQ(dtype_size(DType::kF32), 4u);
  EXPECT_EQ(dtype_size(DType::kF8E4M3), 1u);
  for (int i = 0; i <= static_cast<int>(DType::kBool); ++i) {
    auto t = static_cast<DType>(i);
    EXPECT_EQ(dtype_from_safetensors_name(dtype_safetensors_name(t)), t);
    EXPECT_EQ(dtype_from_config_name(dtype_config_name(t)), t);
  }
}

TEST(DTypeTest, ConfigAliasesAndUnknowns) {
  EXPECT_EQ(dtype_from_config_name("bfloat16"), DType::kBF16);
  EXPECT_EQ(dtype_from_config_name("float16"), DType::kF16);
  EXPECT_FALSE(dtype_from_config_name("bf17"));
  EXPECT_FALSE(dtype_from_safetensors_name("f32"));  // safetensors names are upper case
}

}  // namespace
}  // namespace tp
