// src/text/clip_tokenizer.cpp: every id equal to transformers' on
// tests/data/tokenizer_corpus.txt (suites *ReferenceTest, which need the
// fixture text.tokenizer_reference: tests/support/tokenizer_reference.h), and
// the API's promises on the committed folder tests/data/tokenizer/clip.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

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
using testing_util::write_file;

TEST(ClipTokenizerReferenceTest, ClipLMatchesTransformers) { expect_parity<ClipTokenizer>("tokenizer"); }
TEST(ClipTokenizerReferenceTest, ClipGWithPadBangMatchesTransformers) { expect_parity<ClipTokenizer>("tokenizer_2"); }

// Folders written by transformers 5's save_pretrained: tokenizer.json and
// tokenizer_config.json only.
TEST(ClipTokenizerReferenceTest, SavedByTransformersMatchesTransformers) {
  for (const char* name : {"saved/tokenizer", "saved/tokenizer_2"}) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(fs::exists(kReferenceDir / name / "tokenizer.json")) << "run the tests through ctest";
    EXPECT_FALSE(fs::exists(kReferenceDir / name / "vocab.json"));
    EXPECT_FALSE(fs::exists(kReferenceDir / name / "merges.txt"));
    expect_parity<ClipTokenizer>(name);
  }
}

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

// ---- tokenizer.json, made here from the committed vocab.json and merges.txt -------------

// A tokenizer.json holding the committed folder's vocabulary and merges (as
// "a b" strings, or as [a, b] pairs as tokenizers >= 0.20 writes them).
nlohmann::json clip_tokenizer_json(bool pair_merges) {
  nlohmann::json merges = nlohmann::json::array();
  const std::string text = read_file(kClipDir / "merges.txt");
  for (size_t begin = 0; begin < text.size();) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(begin, end - begin);
    begin = end + 1;
    if (line.empty() || line.starts_with("#version")) continue;
    const size_t space = line.find(' ');
    if (pair_merges)
      merges.push_back({line.substr(0, space), line.substr(space + 1)});
    else
      merges.push_back(line);
  }
  auto token = [](const char* content, int id, bool normalized) {
    return nlohmann::json{{"id", id},          {"content", content}, {"single_word", false}, {"lstrip", false},
                          {"rstrip", false},   {"normalized", normalized}, {"special", true}};
  };
  return {{"version", "1.0"},
          {"added_tokens", {token("<|startoftext|>", 1498, true), token("<|endoftext|>", 1499, false)}},
          {"normalizer", nullptr},
          {"model",
           {{"type", "BPE"},
            {"end_of_word_suffix", "</w>"},
            {"vocab", nlohmann::json::parse(read_file(kClipDir / "vocab.json"))},
            {"merges", merges}}}};
}

TEST(ClipTokenizerJsonTest, TokenizerJsonGivesTheIdsOfVocabAndMerges) {
  auto legacy = ClipTokenizer::load(kClipDir);
  ASSERT_TRUE(legacy) << legacy.error().to_string();
  for (bool pairs : {false, true}) {
    SCOPED_TRACE(pairs ? "[a, b] merges" : "\"a b\" merges");
    ScratchDir scratch;
    write_file(scratch / "tokenizer.json", clip_tokenizer_json(pairs).dump());
    auto clip = ClipTokenizer::load(scratch.path());
    ASSERT_TRUE(clip) << clip.error().to_string();
    EXPECT_EQ(clip->vocab_size(), 1500u);
    EXPECT_EQ(clip->bos_id(), 1498);
    EXPECT_EQ(clip->pad_id(), 1499);
    for (const char* prompt : {"a red circle on a white background", "It's a CAFÉ <|startoftext|>!!", "",
                               "Łódź 一只猫 😀 <|endoftext|> end"})
      EXPECT_EQ(clip->encode(prompt).ids, legacy->encode(prompt).ids) << prompt;
  }
}

// vocab.json and merges.txt win when both are there; tokenizer.json fills in for either.
TEST(ClipTokenizerJsonTest, LegacyFilesWinWhenComplete) {
  ScratchDir scratch;
  nlohmann::json j = clip_tokenizer_json(false);
  j["model"]["merges"] = nlohmann::json::array();  // no merges: every byte its own token
  write_file(scratch / "tokenizer.json", j.dump());
  fs::copy_file(kClipDir / "vocab.json", scratch / "vocab.json");
  auto from_json = ClipTokenizer::load(scratch.path());
  ASSERT_TRUE(from_json) << from_json.error().to_string();
  EXPECT_EQ(from_json->encode("red").length, 5u);  // r e d</w>
  fs::copy_file(kClipDir / "merges.txt", scratch / "merges.txt");
  auto legacy = ClipTokenizer::load(scratch.path());
  ASSERT_TRUE(legacy) << legacy.error().to_string();
  EXPECT_EQ(legacy->encode("red").length, 3u);
}

TEST(ClipTokenizerJsonTest, BadTokenizerJsonIsNamed) {
  struct Case {
    const char* what;
    std::function<void(nlohmann::json&)> edit;
    ErrorCode code;
    const char* message;
  };
  const Case cases[] = {
      {"unigram", [](nlohmann::json& j) { j["model"]["type"] = "Unigram"; }, ErrorCode::kInvalidArgument,
       "model.type is"},
      {"no merges", [](nlohmann::json& j) { j["model"].erase("merges"); }, ErrorCode::kInvalidArgument,
       "model.merges is missing"},
      {"bad merge", [](nlohmann::json& j) { j["model"]["merges"][3] = "a b c"; }, ErrorCode::kInvalidArgument,
       "model.merges[3]"},
      {"unknown merge", [](nlohmann::json& j) { j["model"]["merges"][2] = {"zz", "qq"}; },
       ErrorCode::kInvalidArgument, "model.merges[2]: 'zz' is not in model.vocab"},
      {"bad id", [](nlohmann::json& j) { j["model"]["vocab"]["a"] = -1; }, ErrorCode::kInvalidArgument,
       "model.vocab: token 'a' has id"},
      {"bad added token", [](nlohmann::json& j) { j["added_tokens"][1].erase("id"); }, ErrorCode::kInvalidArgument,
       "added_tokens[1]: want an integer 'id'"},
      {"single word", [](nlohmann::json& j) { j["added_tokens"][0]["single_word"] = true; },
       ErrorCode::kUnimplemented, "single_word"},
      {"no model", [](nlohmann::json& j) { j.erase("model"); }, ErrorCode::kInvalidArgument, "want a 'model' object"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    ScratchDir scratch;
    nlohmann::json j = clip_tokenizer_json(true);
    c.edit(j);
    write_file(scratch / "tokenizer.json", j.dump());
    auto clip = ClipTokenizer::load(scratch.path());
    ASSERT_FALSE(clip);
    EXPECT_EQ(clip.error().code, c.code);
    EXPECT_THAT(clip.error().message, HasSubstr((scratch.path() / "tokenizer.json").string()));
    EXPECT_THAT(clip.error().message, HasSubstr(c.message));
  }
}

}  // namespace
}  // namespace tp
