// src/text/clip_tokenizer.cpp: every id equal to transformers' on
// tests/data/tokenizer_corpus.txt (suites *ReferenceTest, which need the
// fixture text.tokenizer_reference: tests/support/tokenizer_reference.h), and
// the API's promises on the committed folder tests/data/tokenizer/clip.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/tokenizer_reference.h"
#include "support/weights_test_util.h"
#include "text/tokenizer.h"

namespace tp {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing_util::expect_parity;
using testing_util::kClipDir;
using testing_util::kReferenceDir;
using testing_util::read_file;
using testing_util::ScratchDir;

TEST(ClipTokenizerReferenceTest, ClipLMatchesTransformers) { expect_parity<ClipTokenizer>("tokenizer"); }
TEST(ClipTokenizerReferenceTest, ClipGWithPadBangMatchesTransformers) { expect_parity<ClipTokenizer>("tokenizer_2"); }

// The committed copy is what make_tokenizers.py writes today.
TEST(ClipTokenizerReferenceTest, CommittedClipFolderIsCurrent) {
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

// ---- errors that need no corpus file (tests/data/bad/tokenizer holds the rest) ---------

TEST(ClipTokenizerErrorTest, MissingFilesAreNotFoundAndNamed) {
  ScratchDir scratch;
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
}

}  // namespace
}  // namespace tp
