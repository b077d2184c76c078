// src/text/t5_tokenizer.cpp: every id equal to transformers' on
// tests/data/tokenizer_corpus.txt, and the API's promises. There is no
// committed T5 folder: the suites *ReferenceTest use the fixture
// text.tokenizer_reference's tokenizer_3/ (tests/support/tokenizer_reference.h).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "support/tokenizer_reference.h"
#include "support/weights_test_util.h"
#include "text/tokenizer.h"

namespace tp {
namespace {

using ::testing::HasSubstr;
using testing_util::expect_parity;
using testing_util::kReferenceDir;
using testing_util::ScratchDir;

TEST(T5TokenizerReferenceTest, T5MatchesTransformers) { expect_parity<T5Tokenizer>("tokenizer_3"); }

// A folder written by transformers 5's save_pretrained: tokenizer.json (a
// Unigram model) and tokenizer_config.json only.
TEST(T5TokenizerReferenceTest, SavedByTransformersMatchesTransformers) {
  const std::filesystem::path saved = kReferenceDir / "saved" / "tokenizer_3";
  ASSERT_TRUE(std::filesystem::exists(saved / "tokenizer.json")) << "run the tests through ctest";
  EXPECT_FALSE(std::filesystem::exists(saved / "spiece.model"));
  expect_parity<T5Tokenizer>("saved/tokenizer_3");
  auto from_json = T5Tokenizer::load(saved);
  auto legacy = T5Tokenizer::load(kReferenceDir / "tokenizer_3");
  ASSERT_TRUE(from_json && legacy);
  EXPECT_EQ(from_json->vocab_size(), legacy->vocab_size());
  EXPECT_EQ(from_json->eos_id(), 1);
  EXPECT_EQ(from_json->pad_id(), 0);
}

// Errors in tokenizer.json name the file and the entry.
TEST(T5TokenizerReferenceTest, BadTokenizerJsonIsNamed) {
  const std::filesystem::path saved = kReferenceDir / "saved" / "tokenizer_3";
  ASSERT_TRUE(std::filesystem::exists(saved / "tokenizer.json")) << "run the tests through ctest";
  const nlohmann::json good = nlohmann::json::parse(testing_util::read_file(saved / "tokenizer.json"));
  struct Case {
    const char* what;
    std::function<void(nlohmann::json&)> edit;
    const char* message;
  };
  const Case cases[] = {
      {"bpe", [](nlohmann::json& j) { j["model"]["type"] = "BPE"; }, "model.type is"},
      {"bad entry", [](nlohmann::json& j) { j["model"]["vocab"][5] = "x"; }, "model.vocab[5]"},
      {"bad charsmap", [](nlohmann::json& j) { j["normalizer"]["precompiled_charsmap"] = "!!"; },
       "precompiled_charsmap is not base64"},
      {"short charsmap", [](nlohmann::json& j) { j["normalizer"]["precompiled_charsmap"] = "AAE="; },
       "precompiled_charsmap is 2 bytes"},
      {"two pieces", [](nlohmann::json& j) { j["model"]["vocab"] = nlohmann::json::array({nlohmann::json::array({"<pad>", 0.0}),
                                                                          nlohmann::json::array({"</s>", 0.0})}); },
       "want 3 or more"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    ScratchDir scratch;
    nlohmann::json j = good;
    c.edit(j);
    testing_util::write_file(scratch / "tokenizer.json", j.dump());
    auto t5 = T5Tokenizer::load(scratch.path());
    ASSERT_FALSE(t5);
    EXPECT_EQ(t5.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(t5.error().message, HasSubstr((scratch.path() / "tokenizer.json").string()));
    EXPECT_THAT(t5.error().message, HasSubstr(c.message));
  }
}

TEST(T5TokenizerReferenceTest, EosPadAndTruncation) {
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

TEST(T5TokenizerReferenceTest, EncodeFromManyThreads) {
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

TEST(T5TokenizerErrorTest, MissingSpieceIsNotFoundAndNamed) {
  ScratchDir scratch;
  auto t5 = T5Tokenizer::load(scratch.path());
  ASSERT_FALSE(t5);
  EXPECT_EQ(t5.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(t5.error().message, HasSubstr((scratch.path() / "spiece.model").string()));
}

}  // namespace
}  // namespace tp
