// The tokenizers (include/twistedpic/tokenizer.h): every id equal to
// transformers' on tests/data/tokenizer_corpus.txt, and the API's promises.
//
// The reference comes from the ctest fixture text.tokenizer_reference
// (tests/CMakeLists.txt), which runs
//   scripts/tokenizer_reference.py --build $TP_TOKENIZER_REFERENCE_DIR corpus reference.json
// with the venv's Python: make_tokenizers.py writes tiny SD3-style tokenizer
// folders (tokenizer/, tokenizer_2/, tokenizer_3/) there, and transformers
// tokenizes the corpus with each, at several max_lengths. A missing reference
// fails the parity tests (run them through ctest).
//
// tests/data/tokenizer/clip is a committed copy of make_tokenizers.py's
// tokenizer/ (checked below), for the tests that need no Python, and for the
// fuzzer (fuzz/clip_tokenizer_fuzz.cpp).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "text/tokenizer.h"

namespace tp {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using nlohmann::json;

const fs::path kReferenceDir = TP_TOKENIZER_REFERENCE_DIR;
const fs::path kClipDir = fs::path(TP_TEST_DATA_DIR) / "tokenizer" / "clip";

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

std::string ids_string(const std::vector<int64_t>& ids) {
  std::string s;
  for (int64_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

const json& reference() {
  static const json ref = [] {
    const fs::path path = kReferenceDir / "reference.json";
    if (!fs::exists(path)) return json();
    return json::parse(read_file(path));
  }();
  return ref;
}

// Compares every run of `name` in the reference with `encode(prompt, max_length)`.
template <class Tokenizer>
void expect_parity(const std::string& name) {
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

TEST(TokenizerParityTest, ClipLMatchesTransformers) { expect_parity<ClipTokenizer>("tokenizer"); }
TEST(TokenizerParityTest, ClipGWithPadBangMatchesTransformers) { expect_parity<ClipTokenizer>("tokenizer_2"); }
TEST(TokenizerParityTest, T5MatchesTransformers) { expect_parity<T5Tokenizer>("tokenizer_3"); }

// The committed copy is what make_tokenizers.py writes today.
TEST(TokenizerParityTest, CommittedClipFolderIsCurrent) {
  ASSERT_TRUE(fs::exists(kReferenceDir / "tokenizer")) << "run the tests through ctest";
  for (const char* file : {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"})
    EXPECT_EQ(read_file(kClipDir / file), read_file(kReferenceDir / "tokenizer" / file))
        << file << ": regenerate tests/data/tokenizer/clip with scripts/make_tokenizers.py";
}

// ---- the API, on the committed CLIP folder ---------------------------------------------

class ClipTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = ClipTokenizer::load(kClipDir);
    ASSERT_TRUE(t) << t.error().to_string();
    tokenizer_.emplace(std::move(*t));
  }
  const ClipTokenizer& tok() const { return *tokenizer_; }

 private:
  std::optional<ClipTokenizer> tokenizer_;
};

TEST_F(ClipTokenizerTest, SpecialIdsAndPadding) {
  EXPECT_EQ(tok().vocab_size(), 1500u);
  EXPECT_EQ(tok().bos_id(), 1498);
  EXPECT_EQ(tok().eos_id(), 1499);
  EXPECT_EQ(tok().pad_id(), 1499);
  const TokenizedText t = tok().encode("a red circle");
  ASSERT_EQ(t.ids.size(), 77u);
  EXPECT_EQ(t.length, 5u);  // bos a red circle eos
  EXPECT_FALSE(t.truncated);
  EXPECT_EQ(t.ids[0], tok().bos_id());
  EXPECT_EQ(t.ids[4], tok().eos_id());
  for (size_t i = 5; i < t.ids.size(); ++i) EXPECT_EQ(t.ids[i], tok().pad_id());
  // Case and whitespace do not matter.
  EXPECT_EQ(tok().encode("  A\tRED \n circle ").ids, t.ids);
}

TEST_F(ClipTokenizerTest, EmptyPromptIsBosEos) {
  const TokenizedText t = tok().encode("");
  EXPECT_EQ(t.length, 2u);
  EXPECT_EQ(t.ids[0], tok().bos_id());
  EXPECT_EQ(t.ids[1], tok().eos_id());
}

TEST_F(ClipTokenizerTest, TruncatesKeepingEos) {
  std::string prompt;
  for (int i = 0; i < 100; ++i) prompt += "red ";
  const TokenizedText t = tok().encode(prompt, 10);
  ASSERT_EQ(t.ids.size(), 10u);
  EXPECT_EQ(t.length, 10u);
  EXPECT_TRUE(t.truncated);
  EXPECT_EQ(t.ids.back(), tok().eos_id());
  // Exactly full is not truncated.
  const TokenizedText exact = tok().encode("red red red red red red red red", 10);
  EXPECT_EQ(exact.length, 10u);
  EXPECT_FALSE(exact.truncated);
}

TEST_F(ClipTokenizerTest, MaxLengthBelowTwoIsTwo) {
  for (size_t n : {0, 1, 2}) {
    const TokenizedText t = tok().encode("a red circle", n);
    EXPECT_EQ(t.ids, (std::vector<int64_t>{tok().bos_id(), tok().eos_id()})) << n;
    EXPECT_TRUE(t.truncated);
  }
}

// Invalid UTF-8 tokenizes as its U+FFFD replacement (Python's errors="replace").
TEST_F(ClipTokenizerTest, InvalidUtf8IsReplaced) {
  EXPECT_EQ(tok().encode("a \xff b").ids, tok().encode("a \xEF\xBF\xBD b").ids);
  EXPECT_EQ(tok().encode("x\xe2\x82").ids, tok().encode("x\xEF\xBF\xBD").ids);  // one U+FFFD for a cut sequence
  EXPECT_EQ(tok().encode("\xed\xa0\x80").ids, tok().encode("\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD").ids);
  EXPECT_EQ(tok().encode(std::string("a\0b", 3)).length, 5u);  // NUL is a character like any other
}

TEST_F(ClipTokenizerTest, SpecialTokensInThePrompt) {
  const TokenizedText t = tok().encode("a<|endoftext|>b");
  EXPECT_EQ(t.length, 5u);
  EXPECT_EQ(t.ids[2], tok().eos_id());
}

TEST_F(ClipTokenizerTest, MovedFromKeepsWorkingThroughTheTarget) {
  auto loaded = ClipTokenizer::load(kClipDir);
  ASSERT_TRUE(loaded);
  ClipTokenizer moved = std::move(*loaded);
  EXPECT_EQ(moved.encode("a red circle").ids, tok().encode("a red circle").ids);
}

// One tokenizer, many threads (the TSAN build runs this too).
TEST_F(ClipTokenizerTest, EncodeFromManyThreads) {
  const std::vector<std::string> prompts = {"a red circle on a white background", "café 猫 🐱", "", "wow!!!",
                                            "The quick brown fox jumps over the lazy dog!"};
  std::vector<std::vector<int64_t>> want;
  for (const auto& p : prompts) want.push_back(tok().encode(p).ids);
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 200; ++round)
        for (size_t i = 0; i < prompts.size(); ++i) bad[t] += tok().encode(prompts[i]).ids != want[i];
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(bad[t], 0) << "thread " << t;
}

// ---- T5, on the fixture's folder -------------------------------------------------------

TEST(T5TokenizerTest, EosPadAndTruncation) {
  auto tok = T5Tokenizer::load(kReferenceDir / "tokenizer_3");
  ASSERT_TRUE(tok) << tok.error().to_string() << " (run the tests through ctest)";
  EXPECT_EQ(tok->eos_id(), 1);
  EXPECT_EQ(tok->pad_id(), 0);
  EXPECT_GT(tok->vocab_size(), 100u);
  const TokenizedText empty = tok->encode("");
  ASSERT_EQ(empty.ids.size(), 256u);
  EXPECT_EQ(empty.length, 1u);
  EXPECT_EQ(empty.ids[0], 1);
  EXPECT_EQ(empty.ids[1], 0);
  const TokenizedText cut = tok->encode("a red circle on a white background", 4);
  EXPECT_EQ(cut.ids.size(), 4u);
  EXPECT_TRUE(cut.truncated);
  EXPECT_EQ(cut.ids.back(), 1);
  EXPECT_EQ(tok->encode("a red circle", 0).ids, std::vector<int64_t>{1});  // max_length 0 is 1
  // The sentinels: <extra_id_0> is the last id.
  const TokenizedText sentinel = tok->encode("<extra_id_0>");
  EXPECT_EQ(sentinel.ids[0], static_cast<int64_t>(tok->vocab_size()) - 1);
}

TEST(T5TokenizerTest, EncodeFromManyThreads) {
  auto tok = T5Tokenizer::load(kReferenceDir / "tokenizer_3");
  ASSERT_TRUE(tok) << tok.error().to_string() << " (run the tests through ctest)";
  const std::vector<std::string> prompts = {"a red circle on a white background", "Ｆｕｌｌｗｉｄｔｈ ＜/s＞ e\xCC\x81",
                                            "", "x </s> y <extra_id_3>", "一只猫坐在窗台上。"};
  std::vector<std::vector<int64_t>> want;
  for (const auto& p : prompts) want.push_back(tok->encode(p).ids);
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 100; ++round)
        for (size_t i = 0; i < prompts.size(); ++i) bad[t] += tok->encode(prompts[i]).ids != want[i];
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(bad[t], 0) << "thread " << t;
}

// ---- errors that need no corpus file (tests/data/bad/tokenizer holds the rest) ---------

class ScratchFolder {
 public:
  ScratchFolder() : path_(fs::temp_directory_path() / ("tp-tokenizer-" + std::to_string(::getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchFolder() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TEST(TokenizerErrorTest, MissingFilesAreNotFoundAndNamed) {
  ScratchFolder scratch;
  auto clip = ClipTokenizer::load(scratch.path());
  ASSERT_FALSE(clip);
  EXPECT_EQ(clip.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(clip.error().message, HasSubstr((scratch.path() / "vocab.json").string()));

  fs::copy_file(kClipDir / "vocab.json", scratch.path() / "vocab.json");
  clip = ClipTokenizer::load(scratch.path());
  ASSERT_FALSE(clip);
  EXPECT_EQ(clip.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(clip.error().message, HasSubstr((scratch.path() / "merges.txt").string()));

  // Without tokenizer_config.json and special_tokens_map.json: CLIP's defaults.
  fs::copy_file(kClipDir / "merges.txt", scratch.path() / "merges.txt");
  clip = ClipTokenizer::load(scratch.path());
  ASSERT_TRUE(clip) << clip.error().to_string();
  EXPECT_EQ(clip->pad_id(), 1499);

  auto t5 = T5Tokenizer::load(scratch.path());
  ASSERT_FALSE(t5);
  EXPECT_EQ(t5.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(t5.error().message, HasSubstr((scratch.path() / "spiece.model").string()));
}

}  // namespace
}  // namespace tp
