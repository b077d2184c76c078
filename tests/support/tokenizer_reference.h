// Shared by the tokenizer tests: transformers' ids for the prompt corpus, and
// the comparison of a tokenizer with them.
//
// The reference comes from the ctest fixture text.tokenizer_reference
// (tests/CMakeLists.txt), which runs
//   scripts/tokenizer_reference.py --build $TP_TOKENIZER_REFERENCE_DIR corpus reference.json
// with the venv's Python: make_tokenizers.py writes tiny SD3-style tokenizer
// folders (tokenizer/, tokenizer_2/, tokenizer_3/) there, and transformers
// tokenizes the corpus with each, at several max_lengths. A missing reference
// fails the tests that need it (suites named *ReferenceTest, label
// `reference`; run them through ctest).
//
// tests/data/tokenizer/clip is a committed copy of make_tokenizers.py's
// tokenizer/ (checked in clip_tokenizer_test.cpp), for the tests that need no
// Python, and for the fuzzer (fuzz/clip_tokenizer_fuzz.cpp).
//
// REQUIRES: the target defines TP_TEST_DATA_DIR and TP_TOKENIZER_REFERENCE_DIR.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace tp::testing_util {

inline const std::filesystem::path kReferenceDir = TP_TOKENIZER_REFERENCE_DIR;
inline const std::filesystem::path kClipDir = std::filesystem::path(TP_TEST_DATA_DIR) / "tokenizer" / "clip";

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

inline std::string ids_string(const std::vector<int64_t>& ids) {
  std::string s;
  for (int64_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

// reference.json, or null when the fixture has not run.
inline const nlohmann::json& reference() {
  static const nlohmann::json ref = [] {
    const std::filesystem::path path = kReferenceDir / "reference.json";
    if (!std::filesystem::exists(path)) return nlohmann::json();
    return nlohmann::json::parse(read_file(path));
  }();
  return ref;
}

// Compares every run of `name` in the reference with `encode(prompt, max_length)`.
template <class Tokenizer>
void expect_parity(const std::string& name) {
  using nlohmann::json;
  const json& ref = reference();
  ASSERT_FALSE(ref.is_null()) << kReferenceDir / "reference.json"
                              << " is missing: run the tests through ctest (fixture text.tokenizer_reference)";
  auto tokenizer = Tokenizer::load(kReferenceDir / name);
  ASSERT_TRUE(tokenizer) << tokenizer.error().to_string();
  std::vector<std::string> prompts;
  for (const auto& hex : ref["prompts"]) prompts.push_back(from_hex(hex.get<std::string>()));
  ASSERT_GE(prompts.size(), 60u);
  size_t runs = 0, compared = 0, differing = 0;
  for (const auto& run : ref["runs"]) {
    if (run["tokenizer"] != name) continue;
    ++runs;
    const size_t max_length = run["max_length"].get<size_t>();
    for (size_t i = 0; i < prompts.size(); ++i) {
      const auto want = run["ids"][i].get<std::vector<int64_t>>();
      const TokenizedText got = tokenizer->encode(prompts[i], max_length);
      ++compared;
      const bool same = got.ids == want && got.length == run["length"][i].get<size_t>() &&
                        got.truncated == run["truncated"][i].get<bool>();
      if (same) continue;
      ++differing;
      ADD_FAILURE() << name << " max_length " << max_length << ", prompt " << i << " (hex "
                    << ref["prompts"][i].get<std::string>() << "):\n  got  " << ids_string(got.ids)
                    << " (length " << got.length << ", truncated " << got.truncated << ")\n  want "
                    << ids_string(want) << " (length " << run["length"][i] << ", truncated " << run["truncated"][i]
                    << ")";
    }
  }
  EXPECT_GE(runs, 2u);
  EXPECT_EQ(differing, 0u) << "of " << compared;
  ::testing::Test::RecordProperty("compared", static_cast<int>(compared));
}

}  // namespace tp::testing_util
