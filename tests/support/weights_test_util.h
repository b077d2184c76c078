// Shared test fixtures: a scratch folder per test, file writing and
// safetensors framing (the weights, util and reliability tests).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace tp::testing_util {

// A fresh folder under the system temp dir, removed with its contents.
class ScratchDir {
 public:
  ScratchDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            ("tp-test-" + std::to_string(::getpid()) + "-" + info->test_suite_name() + "-" + info->name());
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view rel) const { return path_ / rel; }

 private:
  std::filesystem::path path_;
};

// Writes `bytes` to `path`, creating parent folders.
inline void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// The 8-byte little-endian length `n`.
inline std::string le64(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

// A safetensors file: length, `header_json`, then `data_bytes` bytes of data
// (byte i of the data section is i & 0xff).
inline std::string safetensors_bytes(std::string_view header_json, size_t data_bytes) {
  std::string out = le64(header_json.size()) + std::string(header_json);
  for (size_t i = 0; i < data_bytes; ++i) out.push_back(static_cast<char>(i & 0xff));
  return out;
}

// A valid one-tensor file: `name` as F32 [2, 2] at [0, 16).
inline std::string one_tensor_file(std::string_view name = "w") {
  return safetensors_bytes(R"({")" + std::string(name) + R"(":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})",
                           16);
}

}  // namespace tp::testing_util
