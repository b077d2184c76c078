// src/pipeline/common/config_reader.cpp: a network's config.json fields, with
// errors that name the file and the field.
#include "pipeline/common/config_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tp::nn {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

const json kConfig = {{"hidden_size", 64}, {"eps", 1e-6},       {"int_eps", 1},        {"flag", true},
                      {"act", "silu"},     {"dims", {1, 2, 3}}, {"nothing", nullptr}, {"text", "5"},
                      {"zero", 0},         {"negative", -4},    {"fraction", 2.5},    {"huge", 16777217},
                      {"bad_dims", {1, -2}}, {"dim_obj", {{"a", 1}}}};

ConfigReader reader() {
  auto r = ConfigReader::over(kConfig, "unet/config.json");
  EXPECT_TRUE(r) << r.error().to_string();
  return *r;
}

void expect_invalid(const Error& e, const std::string& message) {
  EXPECT_EQ(e.code, ErrorCode::kInvalidArgument) << e.message;
  EXPECT_EQ(e.message, message);
}

TEST(ConfigReaderTest, NonObjectIsInvalidArgument) {
  for (const json& j : {json::array(), json(3), json()}) {
    auto r = ConfigReader::over(j, "vae/config.json");
    ASSERT_FALSE(r) << j;
    expect_invalid(r.error(), "vae/config.json: not a JSON object");
  }
}

TEST(ConfigReaderTest, WhereNamesTheFileAndTheField) {
  EXPECT_EQ(reader().where("eps"), "unet/config.json: 'eps'");
  EXPECT_EQ(&reader().json(), &kConfig);
}

TEST(ConfigReaderTest, PositiveRequiredFieldMissing) {
  auto v = reader().positive("num_layers");
  ASSERT_FALSE(v);
  expect_invalid(v.error(), "unet/config.json: 'num_layers' is missing");
  expect_invalid(reader().positive("nothing").error(), "unet/config.json: 'nothing' is missing");  // null is absent
}

TEST(ConfigReaderTest, PositiveFallbackAndRange) {
  EXPECT_EQ(reader().positive("hidden_size").value(), 64);
  EXPECT_EQ(reader().positive("hidden_size", 7).value(), 64);
  EXPECT_EQ(reader().positive("num_layers", 7).value(), 7);
  EXPECT_EQ(reader().positive("nothing", 7).value(), 7);
  expect_invalid(reader().positive("text").error(), "unet/config.json: 'text' must be a positive integer, not \"5\"");
  expect_invalid(reader().positive("zero").error(), "unet/config.json: 'zero' must be a positive integer, not 0");
  expect_invalid(reader().positive("negative", 3).error(),
                 "unet/config.json: 'negative' must be a positive integer, not -4");
  expect_invalid(reader().positive("fraction").error(),
                 "unet/config.json: 'fraction' must be a positive integer, not 2.5");
  expect_invalid(reader().positive("huge").error(),
                 "unet/config.json: 'huge' must be a positive integer, not 16777217");  // over 2^24
}

TEST(ConfigReaderTest, NumberBooleanAndStringFallbacksAndTypes) {
  EXPECT_EQ(reader().number("eps", 1.0).value(), 1e-6);
  EXPECT_EQ(reader().number("int_eps", 0.5).value(), 1.0);  // an integer is a number
  EXPECT_EQ(reader().number("absent", 0.25).value(), 0.25);
  EXPECT_EQ(reader().number("nothing", 0.25).value(), 0.25);
  expect_invalid(reader().number("text", 0).error(), "unet/config.json: 'text' must be a number, not \"5\"");

  EXPECT_TRUE(reader().boolean("flag", false).value());
  EXPECT_FALSE(reader().boolean("absent", false).value());
  EXPECT_TRUE(reader().boolean("nothing", true).value());
  expect_invalid(reader().boolean("int_eps", false).error(), "unet/config.json: 'int_eps' must be true or false, not 1");

  EXPECT_EQ(reader().string("act", "gelu").value(), "silu");
  EXPECT_EQ(reader().string("absent", "gelu").value(), "gelu");
  EXPECT_EQ(reader().string("nothing", "gelu").value(), "gelu");
  expect_invalid(reader().string("hidden_size", "").error(), "unet/config.json: 'hidden_size' must be a string, not 64");
}

TEST(ConfigReaderTest, IntsAreNonNegativeIntegerLists) {
  EXPECT_EQ(reader().ints("dims").value(), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_TRUE(reader().ints("absent").value().empty());
  EXPECT_TRUE(reader().ints("nothing").value().empty());
  expect_invalid(reader().ints("hidden_size").error(), "unet/config.json: 'hidden_size' must be a list of integers, not 64");
  expect_invalid(reader().ints("bad_dims").error(),
                 "unet/config.json: 'bad_dims' must be a list of non-negative integers, not [1,-2]");
  EXPECT_FALSE(reader().ints("dim_obj"));
}

TEST(ConfigReaderTest, OneOfIsUnimplementedNamingTheSupportedValues) {
  EXPECT_TRUE(reader().one_of("act", "silu", {"silu", "gelu"}));
  Status s = reader().one_of("act", "mish", {"silu", "gelu"});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kUnimplemented);
  EXPECT_EQ(s.error().message, "unet/config.json: 'act' is 'mish'; supported: 'silu', 'gelu'");
}

}  // namespace
}  // namespace tp::nn
