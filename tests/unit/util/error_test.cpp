#include <gtest/gtest.h>

#include "twistedpic/expected.h"

namespace tp {
namespace {

Expected<int> parse_positive(int v) {
  if (v <= 0) return invalid_argument("value must be positive, got " + std::to_string(v));
  return v;
}

Expected<int> doubled(int v) {
  TP_ASSIGN_OR_RETURN(int x, parse_positive(v));
  return 2 * x;
}

Status check(int v) {
  TP_TRY(parse_positive(v));
  return ok_status();
}

TEST(ErrorTest, CodesHaveFixedAbseilValues) {
  EXPECT_EQ(static_cast<int>(ErrorCode::kOk), 0);
  EXPECT_EQ(static_cast<int>(ErrorCode::kCancelled), 1);
  EXPECT_EQ(static_cast<int>(ErrorCode::kInvalidArgument), 3);
  EXPECT_EQ(static_cast<int>(ErrorCode::kNotFound), 5);
  EXPECT_EQ(static_cast<int>(ErrorCode::kResourceExhausted), 8);
  EXPECT_EQ(static_cast<int>(ErrorCode::kFailedPrecondition), 9);
  EXPECT_EQ(static_cast<int>(ErrorCode::kInternal), 13);
  EXPECT_EQ(static_cast<int>(ErrorCode::kUnavailable), 14);
  EXPECT_EQ(static_cast<int>(ErrorCode::kDataLoss), 15);
}

TEST(ErrorTest, NamesAreStable) {
  EXPECT_STREQ(error_code_name(ErrorCode::kResourceExhausted), "RESOURCE_EXHAUSTED");
  EXPECT_STREQ(error_code_name(static_cast<ErrorCode>(4242)), "UNKNOWN");
  Error e{ErrorCode::kNotFound, "model 'x' is not configured"};
  EXPECT_EQ(e.to_string(), "NOT_FOUND: model 'x' is not configured");
}

TEST(ErrorTest, TryAndAssignPropagate) {
  EXPECT_EQ(doubled(21).value(), 42);
  auto bad = doubled(-1);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message, "value must be positive, got -1");
  EXPECT_TRUE(check(3));
  EXPECT_EQ(check(0).error().code, ErrorCode::kInvalidArgument);
}

TEST(ErrorDeathTest, AssertAbortsWithLocation) {
  EXPECT_DEATH(TP_ASSERT(1 + 1 == 3), "assertion failed: 1 \\+ 1 == 3 at .*error_test.cpp");
}

}  // namespace
}  // namespace tp
