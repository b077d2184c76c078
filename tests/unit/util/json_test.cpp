// src/util/json.cpp: the strict JSON reader behind every file the library reads.
#include "util/json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "support/weights_test_util.h"

namespace tp::detail {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using testing_util::ScratchDir;
using testing_util::write_file;

TEST(ParseJsonTest, ParsesValidJson) {
  auto v = parse_json(R"({"a": [1, 2, {"b": "c"}], "d": null})", "t.json");
  ASSERT_TRUE(v) << v.error().to_string();
  EXPECT_EQ((*v)["a"][2]["b"], "c");
  EXPECT_TRUE((*v)["d"].is_null());
  // The same key in sibling objects is no duplicate.
  EXPECT_TRUE(parse_json(R"([{"k": 1}, {"k": 2}])", "t.json"));
  EXPECT_TRUE(parse_json(R"({"x": {"k": 1}, "y": {"k": 2}})", "t.json"));
}

TEST(ParseJsonTest, DuplicateKeysAtAnyDepthAreRefusedNamingThem) {
  struct Case {
    const char* json;
    const char* message;
  };
  for (const Case& c : {
           Case{R"({"a": 1, "a": 2})", "t.json: duplicate key 'a'"},
           Case{R"({"m": {"x": 1, "x": 2}})", "t.json: duplicate key 'x' in 'm'"},
           Case{R"({"m": {"n": {"deep": 1, "deep": 2}}})", "t.json: duplicate key 'deep' in 'n'"},
           Case{R"([{"in_array": 1, "in_array": 2}])", "t.json: duplicate key 'in_array'"},
       }) {
    auto v = parse_json(c.json, "t.json");
    ASSERT_FALSE(v) << c.json;
    EXPECT_EQ(v.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(v.error().message, c.message) << c.json;
  }
  // At the top, the caller names what a key is there.
  auto top = parse_json(R"({"w": 1, "w": 2})", "m.safetensors", "tensor");
  ASSERT_FALSE(top);
  EXPECT_EQ(top.error().message, "m.safetensors: duplicate tensor 'w'");
}

TEST(ParseJsonTest, NestingDeeperThanTheLimitIsRefused) {
  const std::string ok = std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
  EXPECT_TRUE(parse_json(ok, "t.json"));
  const std::string deep = std::string(kMaxJsonDepth + 1, '[') + std::string(kMaxJsonDepth + 1, ']');
  auto v = parse_json(deep, "t.json");
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(v.error().message, HasSubstr("t.json: JSON nested deeper than 64"));
  // Brackets inside strings do not count.
  EXPECT_TRUE(parse_json("{\"s\": \"" + std::string(1000, '[') + "\"}", "t.json"));
  // Nor does the pre-pass stop an unclosed nest from being refused.
  EXPECT_FALSE(parse_json(std::string(100000, '{'), "t.json"));
}

TEST(ParseJsonTest, GarbageIsAnErrorNeverAnException) {
  for (const std::string& text :
       {std::string(), std::string("{"), std::string("nul"), std::string("{\"a\" 1}"), std::string("[1,]"),
        std::string("1e999"), std::string("\"\\uD800\""), std::string("\xff\xfe"), std::string("{} {}"),
        std::string("\0", 1), std::string(R"({"a": "unterminated)")}) {
    Expected<nlohmann::json> v = nlohmann::json();
    EXPECT_NO_THROW(v = parse_json(text, "g.json")) << text;
    ASSERT_FALSE(v) << text;
    EXPECT_EQ(v.error().code, ErrorCode::kInvalidArgument) << text;
    EXPECT_THAT(v.error().message, StartsWith("g.json: invalid JSON")) << text;
  }
  auto at = parse_json("[1, 2, oops]", "g.json");
  ASSERT_FALSE(at);
  EXPECT_THAT(at.error().message, HasSubstr("g.json: invalid JSON at byte "));
}

TEST(ReadJsonObjectFileTest, ReadsAnObject) {
  ScratchDir dir;
  write_file(dir / "c.json", R"({"k": [1, 2]})");
  auto v = read_json_object_file(dir / "c.json", 1024);
  ASSERT_TRUE(v) << v.error().to_string();
  EXPECT_EQ((*v)["k"][1], 2);
}

TEST(ReadJsonObjectFileTest, RefusesANonObject) {
  ScratchDir dir;
  write_file(dir / "a.json", "[1, 2]");
  auto v = read_json_object_file(dir / "a.json", 1024);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(v.error().message, (dir / "a.json").string() + ": JSON is an array, not an object");
}

TEST(ReadJsonObjectFileTest, RefusesAnOversizedFile) {
  ScratchDir dir;
  write_file(dir / "big.json", R"({"k": ")" + std::string(100, 'x') + R"("})");
  auto v = read_json_object_file(dir / "big.json", 64);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(v.error().message, HasSubstr((dir / "big.json").string() + ": file is 109 bytes, over the limit of 64"));
}

TEST(ReadJsonObjectFileTest, ErrorsNameTheFile) {
  ScratchDir dir;
  auto missing = read_json_object_file(dir / "nope.json", 1024);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr((dir / "nope.json").string()));
  write_file(dir / "dup.json", R"({"a": 1, "a": 2})");
  auto dup = read_json_object_file(dir / "dup.json", 1024);
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().message, (dir / "dup.json").string() + ": duplicate key 'a'");
}

TEST(QuoteTest, EscapesControlCharactersAndCutsLongNames) {
  EXPECT_EQ(quote("w"), "'w'");
  EXPECT_EQ(quote("a\nb\x7f"), "'a\\x0ab\\x7f'");
  EXPECT_EQ(quote(std::string(200, 'x')), "'" + std::string(128, 'x') + "...'");
  // Cut at a whole UTF-8 character: 127 bytes, then a 2-byte character across byte 128.
  EXPECT_EQ(quote(std::string(127, 'x') + "\xc3\xa9"), "'" + std::string(127, 'x') + "...'");
}

TEST(JsonTypePhraseTest, NamesEveryType) {
  using nlohmann::json;
  EXPECT_EQ(json_type_phrase(json()), "null");
  EXPECT_EQ(json_type_phrase(json::object()), "an object");
  EXPECT_EQ(json_type_phrase(json::array()), "an array");
  EXPECT_EQ(json_type_phrase(json("s")), "a string");
  EXPECT_EQ(json_type_phrase(json(true)), "a boolean");
  EXPECT_EQ(json_type_phrase(json(1.5)), "a non-integer number");
  EXPECT_EQ(json_type_phrase(json(-1)), "a negative integer");
  EXPECT_EQ(json_type_phrase(json(1u)), "an unsigned integer");
}

}  // namespace
}  // namespace tp::detail
