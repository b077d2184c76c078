// C ABI lifecycle and error-path tests (compiled as C++ against tp.h only).
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "twistedpic/tp.h"

namespace {

TEST(CapiTest, VersionMatchesHeader) {
  EXPECT_EQ(tp_version_number(), static_cast<uint32_t>(TP_VERSION_NUMBER));
  EXPECT_STREQ(tp_version_string(), TP_VERSION_STRING);
  EXPECT_TRUE(TP_VERSION_CHECK(0, 1, 0));
}

TEST(CapiTest, CodeNames) {
  EXPECT_STREQ(tp_code_name(TP_OK), "OK");
  EXPECT_STREQ(tp_code_name(TP_INVALID_ARGUMENT), "INVALID_ARGUMENT");
  EXPECT_STREQ(tp_code_name(TP_DATA_LOSS), "DATA_LOSS");
  EXPECT_STREQ(tp_code_name(99), "UNKNOWN");
}

TEST(CapiTest, NullErrorIsSafe) {
  EXPECT_EQ(tp_error_code(nullptr), TP_OK);
  EXPECT_STREQ(tp_error_message(nullptr), "");
  tp_error_free(nullptr);
}

struct Lines {
  std::vector<std::string> v;
};

void collect(int32_t level, const char* logger, const char* msg, size_t len, void* user_data) {
  EXPECT_EQ(std::strlen(msg), len);
  static_cast<Lines*>(user_data)->v.push_back(std::to_string(level) + ":" + logger + ":" + msg);
}

TEST(CapiTest, LogCallbackValidatesLevel) {
  Lines lines;
  tp_error* err = nullptr;
  EXPECT_EQ(tp_set_log_callback(collect, &lines, 42, &err), TP_INVALID_ARGUMENT);
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(tp_error_code(err), TP_INVALID_ARGUMENT);
  EXPECT_NE(std::string(tp_error_message(err)).find("min_level 42"), std::string::npos);
  tp_error_free(err);
  // Without an error out-param the code alone is returned.
  EXPECT_EQ(tp_set_log_callback(collect, &lines, -1, nullptr), TP_INVALID_ARGUMENT);
  err = nullptr;
  EXPECT_EQ(tp_set_log_callback(collect, &lines, TP_LOG_INFO, &err), TP_OK);
  EXPECT_EQ(err, nullptr);  // untouched on success
  EXPECT_EQ(tp_set_log_callback(nullptr, nullptr, TP_LOG_WARN, nullptr), TP_OK);
}

}  // namespace
