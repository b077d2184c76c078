// src/weights/weights_digest.cpp: header and content digests of weight files,
// and the content digest's cache (keyed by path, size, mtime and inode).
#include "weights/weights_digest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>

#include "support/weights_test_util.h"
#include "util/file.h"

namespace tp {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using testing_util::ScratchDir;
using testing_util::write_file;

// A one-tensor safetensors file whose 8 data bytes are `data`.
std::string safetensors(const std::string& data) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  return out + header + data;
}

// XDG_CACHE_HOME set to a scratch folder for one test, then restored.
class DigestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* old = std::getenv("XDG_CACHE_HOME")) old_ = old;
    ::setenv("XDG_CACHE_HOME", (scratch_ / "cache").c_str(), 1);
  }
  void TearDown() override {
    if (old_)
      ::setenv("XDG_CACHE_HOME", old_->c_str(), 1);
    else
      ::unsetenv("XDG_CACHE_HOME");
  }
  ScratchDir scratch_;
  std::optional<std::string> old_;
};

TEST_F(DigestTest, SameBytesSameDigestsOtherBytesOtherContentDigest) {
  write_file(scratch_ / "a/model.safetensors", safetensors("12345678"));
  write_file(scratch_ / "b/model.safetensors", safetensors("12345678"));
  write_file(scratch_ / "c/model.safetensors", safetensors("12345679"));
  auto header = [&](const char* d) { return *detail::weights_header_digest({scratch_ / d / "model.safetensors"}); };
  auto content = [&](const char* d) { return *detail::weights_content_digest({scratch_ / d / "model.safetensors"}); };
  EXPECT_THAT(content("a"), StartsWith("xxh3-128:"));
  EXPECT_EQ(content("a").size(), 9u + 32u);
  EXPECT_EQ(header("a"), header("b"));
  EXPECT_EQ(content("a"), content("b"));
  EXPECT_EQ(header("a"), header("c"));  // only the data differs
  EXPECT_NE(content("a"), content("c"));
  // Several files: their digests in order.
  const fs::path a = scratch_ / "a/model.safetensors", c = scratch_ / "c/model.safetensors";
  EXPECT_NE(*detail::weights_content_digest({a, c}), *detail::weights_content_digest({c, a}));
  EXPECT_NE(*detail::weights_content_digest({a, c}), content("a"));
}

TEST_F(DigestTest, ContentDigestIsCachedUntilTheFileChanges) {
  const fs::path file = scratch_ / "model.safetensors";
  write_file(file, safetensors("12345678"));
  const std::string digest = *detail::file_content_digest(file);
  const auto dir = detail::digest_cache_dir();
  ASSERT_TRUE(dir);
  EXPECT_EQ(*dir, scratch_ / "cache" / "twistedpic" / "digests");
  ASSERT_TRUE(fs::is_directory(*dir));
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(*dir)) entries.push_back(e.path());
  ASSERT_EQ(entries.size(), 1u);

  // A current entry is believed: a forged digest in it comes back.
  std::string text = *detail::read_text_file(entries[0], 4096);
  const size_t at = text.find(digest);
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, digest.size(), "xxh3-128:forged");
  write_file(entries[0], text);
  EXPECT_EQ(*detail::file_content_digest(file), "xxh3-128:forged");

  // A new modification time makes it stale: the digest is computed again (and cached again).
  fs::last_write_time(file, fs::last_write_time(file) + std::chrono::seconds(5));
  EXPECT_EQ(*detail::file_content_digest(file), digest);
  EXPECT_THAT(*detail::read_text_file(entries[0], 4096), HasSubstr(digest));

  // Other bytes of the same size under the same path: another digest.
  write_file(file, safetensors("87654321"));
  fs::last_write_time(file, fs::last_write_time(file) + std::chrono::seconds(10));
  EXPECT_NE(*detail::file_content_digest(file), digest);
}

TEST_F(DigestTest, AnUnwritableCacheIsNoError) {
  write_file(scratch_ / "cache", "a file where the cache folder should be");
  const fs::path file = scratch_ / "model.safetensors";
  write_file(file, safetensors("12345678"));
  auto digest = detail::file_content_digest(file);
  ASSERT_TRUE(digest) << digest.error().message;
  EXPECT_EQ(*digest, *detail::file_content_digest(file));
}

TEST_F(DigestTest, ErrorsNameTheFile) {
  const fs::path missing = scratch_ / "missing.safetensors";
  auto h = detail::weights_header_digest({missing});
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(h.error().message, HasSubstr(missing.string()));
  auto c = detail::weights_content_digest({missing});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ErrorCode::kNotFound);

  const fs::path cut = scratch_ / "cut.safetensors";
  write_file(cut, safetensors("12345678").substr(0, 20));  // the header says more than there is
  h = detail::weights_header_digest({cut});
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(h.error().message, HasSubstr(cut.string()));
}

}  // namespace
}  // namespace tp
