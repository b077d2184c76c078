// src/util/bytes.cpp: byte sizes as people write them, and as messages print them.
#include "util/bytes.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <string>

namespace tp::detail {
namespace {

using ::testing::HasSubstr;

TEST(ParseByteSizeTest, ByteSizes) {
  EXPECT_EQ(parse_byte_size("1024").value(), 1024u);
  EXPECT_EQ(parse_byte_size("4GiB").value(), 4ull << 30);
  EXPECT_EQ(parse_byte_size("512 MiB").value(), 512ull << 20);
  EXPECT_EQ(parse_byte_size("2GB").value(), 2000000000u);
  EXPECT_EQ(parse_byte_size("1.5kb").value(), 1500u);
  EXPECT_FALSE(parse_byte_size(""));
  EXPECT_FALSE(parse_byte_size("GiB"));
  EXPECT_FALSE(parse_byte_size("1.2.3GB"));
  EXPECT_FALSE(parse_byte_size("99999999999TiB"));
}

// Sizes between 2^63 and 2^64 used to wrap (llround into a signed long long);
// now every size that fits in uint64_t is exact and the rest are refused.
TEST(ParseByteSizeTest, ByteSizesUpToUint64Max) {
  EXPECT_EQ(parse_byte_size("9223372036854775808").value(), 9223372036854775808ull);  // 2^63
  EXPECT_EQ(parse_byte_size("10000000000000000000").value(), 10000000000000000000ull);
  EXPECT_EQ(parse_byte_size("18446744073709551615").value(), 18446744073709551615ull);  // UINT64_MAX
  EXPECT_EQ(parse_byte_size("10000000TB").value(), 10000000000000000000ull);
  EXPECT_EQ(parse_byte_size("16777215TiB").value(), 16777215ull << 40);
  EXPECT_FALSE(parse_byte_size("15.5EB"));  // no such unit
  EXPECT_FALSE(parse_byte_size("9.5e18"));  // no exponents
  EXPECT_EQ(parse_byte_size("10000000.5TB").value(), 10000000500000000000ull);
  const std::string huge_fraction = std::string(400, '9') + ".5";  // beyond a double
  for (const std::string& too_large : {std::string("18446744073709551616"), std::string("99999999999999999999999999"),
                                      std::string("16777216TiB"), std::string("18446744.1TB"),
                                      std::string("18446745TB"), std::string(300, '9') + ".5", huge_fraction}) {
    auto size = parse_byte_size(too_large);
    ASSERT_FALSE(size) << too_large << " -> " << *size;
    EXPECT_EQ(size.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(size.error().message, HasSubstr("is too large"));
  }
}

TEST(ParseByteSizeTest, UnitsIgnoreCaseAndSurroundingSpace) {
  EXPECT_EQ(parse_byte_size(" 3 kib ").value(), 3u << 10);
  EXPECT_EQ(parse_byte_size("1TiB").value(), 1ull << 40);
  EXPECT_EQ(parse_byte_size("7b").value(), 7u);
  EXPECT_EQ(parse_byte_size("0.0005k").value(), 1u);  // 0.5 rounds up
}

TEST(ParseByteSizeTest, ErrorsQuoteTheText) {
  auto unit = parse_byte_size("4 parsecs");
  ASSERT_FALSE(unit);
  EXPECT_EQ(unit.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(unit.error().message, HasSubstr("'4 parsecs' has an unknown unit 'parsecs'"));
  auto garbage = parse_byte_size("lots");
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(garbage.error().message, HasSubstr("'lots' is not a byte size"));
}

TEST(FormatBytesTest, PicksTheUnitAndKeepsTheExactCount) {
  EXPECT_EQ(format_bytes(0), "0 B (0)");
  EXPECT_EQ(format_bytes(512), "512 B (512)");
  EXPECT_EQ(format_bytes((1u << 20) - 1), "1048575 B (1048575)");  // below 1 MiB stays in bytes
  EXPECT_EQ(format_bytes(1u << 20), "1.0 MiB (1048576)");
  EXPECT_EQ(format_bytes(12u << 20), "12.0 MiB (12582912)");
  EXPECT_EQ(format_bytes(1ull << 30), "1.00 GiB (1073741824)");
  EXPECT_EQ(format_bytes(1610612736), "1.50 GiB (1610612736)");
  EXPECT_EQ(format_bytes(UINT64_MAX), "17179869184.00 GiB (18446744073709551615)");
}

TEST(FormatBytesTest, RoundTripsThroughParse) {
  for (uint64_t n : std::initializer_list<uint64_t>{0, 1, 4095, 1ull << 20, 3ull << 30, UINT64_MAX}) {
    const std::string s = format_bytes(n);
    const std::string exact = s.substr(s.find('(') + 1, s.size() - s.find('(') - 2);
    EXPECT_EQ(parse_byte_size(exact).value(), n) << s;
  }
}

}  // namespace
}  // namespace tp::detail
