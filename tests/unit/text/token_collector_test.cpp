// src/text/token_collector.cpp: what both tokenizers share when they encode a
// prompt: ids up to the room the special tokens leave, and the walk over added
// tokens matched before normalization, then after it, with the text between
// handed to the model's word splitter.
#include "text/token_collector.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <vector>

namespace tp::detail {
namespace {

TEST(TokenCollectorTest, CollectsUpToTheRoomThenFlagsTruncation) {
  TokenCollector c(3);
  c.add(7);
  c.add(8);
  c.add(9);
  EXPECT_EQ(c.ids(), (std::vector<int64_t>{7, 8, 9}));
  EXPECT_FALSE(c.truncated()) << "exactly full is not truncated";
  c.add(10);
  EXPECT_TRUE(c.truncated());
  EXPECT_EQ(c.ids(), (std::vector<int64_t>{7, 8, 9})) << "the extra id is dropped";
}

TEST(TokenCollectorTest, NoRoomTruncatesAtTheFirstId) {
  TokenCollector c(0);
  EXPECT_FALSE(c.truncated());
  c.add(1);
  EXPECT_TRUE(c.truncated());
  EXPECT_TRUE(c.ids().empty());
}

// A toy model: lower-cases as its normalization, and its word splitter
// records each span it gets and adds one id per byte (1000 + the byte).
class CollectTokensTest : public ::testing::Test {
 protected:
  CollectTokensTest() {
    raw_.add("<X>", 100);  // matched in the prompt as written
    raw_.add("UP", 101);
    normalized_.add("abc", 200);  // matched once lower-cased
  }

  std::vector<int64_t> collect(std::string_view text, size_t room, bool* truncated = nullptr) {
    words_.clear();
    TokenCollector out(room);
    collect_tokens(
        text, raw_, normalized_,
        [&](std::string_view s) {
          ++normalized_calls_;
          std::string lower(s);
          for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          return lower;
        },
        [&](std::string_view s, TokenCollector* into) {
          words_.emplace_back(s);
          for (char ch : s) into->add(1000 + static_cast<unsigned char>(ch));
        },
        &out);
    if (truncated != nullptr) *truncated = out.truncated();
    return out.ids();
  }

  AddedTokens raw_, normalized_;
  std::vector<std::string> words_;
  int normalized_calls_ = 0;
};

TEST_F(CollectTokensTest, WordsGetTheTextBetweenAddedTokens) {
  EXPECT_EQ(collect("q<X>r", 10), (std::vector<int64_t>{1000 + 'q', 100, 1000 + 'r'}));
  EXPECT_EQ(words_, (std::vector<std::string>{"q", "r"}));
  EXPECT_EQ(collect("<X><X>", 10), (std::vector<int64_t>{100, 100}));
  EXPECT_TRUE(words_.empty()) << "no empty spans between adjacent tokens";
  EXPECT_TRUE(collect("", 10).empty());
  EXPECT_TRUE(words_.empty());
}

TEST_F(CollectTokensTest, RawTokensMatchBeforeNormalization) {
  // "UP" as written is a raw token; "up" is not, and the lower-cased "UP" is
  // never looked up among the raw tokens again.
  EXPECT_EQ(collect("UP", 10), (std::vector<int64_t>{101}));
  EXPECT_TRUE(words_.empty());
  normalized_calls_ = 0;
  EXPECT_EQ(collect("up", 10), (std::vector<int64_t>{1000 + 'u', 1000 + 'p'}));
  EXPECT_EQ(words_, (std::vector<std::string>{"up"}));
  EXPECT_EQ(normalized_calls_, 1);
  // "<x>" lower-cased is no raw token: its text goes to the words.
  EXPECT_EQ(collect("<x>", 10).size(), 3u);
  EXPECT_EQ(words_, (std::vector<std::string>{"<x>"}));
}

TEST_F(CollectTokensTest, NormalizedTokensMatchAfterNormalization) {
  EXPECT_EQ(collect("ABC", 10), (std::vector<int64_t>{200}));
  EXPECT_EQ(collect("xAbCy", 10), (std::vector<int64_t>{1000 + 'x', 200, 1000 + 'y'}));
  EXPECT_EQ(words_, (std::vector<std::string>{"x", "y"})) << "words see the normalized text";
  EXPECT_EQ(collect("Q<X>ABCdef", 10), (std::vector<int64_t>{1000 + 'q', 100, 200, 1000 + 'd', 1000 + 'e', 1000 + 'f'}));
  EXPECT_EQ(words_, (std::vector<std::string>{"q", "def"}));
}

TEST_F(CollectTokensTest, StopsOnceTruncated) {
  bool truncated = false;
  EXPECT_EQ(collect("<X><X>", 2, &truncated), (std::vector<int64_t>{100, 100}));
  EXPECT_FALSE(truncated);
  EXPECT_EQ(collect("<X><X><X>", 2, &truncated), (std::vector<int64_t>{100, 100}));
  EXPECT_TRUE(truncated);
  // Once full, the splitter is not asked about the text after the cut.
  EXPECT_EQ(collect("ab<X>cd<X>ef", 2, &truncated), (std::vector<int64_t>{1000 + 'a', 1000 + 'b'}));
  EXPECT_TRUE(truncated);
  EXPECT_EQ(words_, (std::vector<std::string>{"ab"}));
}

}  // namespace
}  // namespace tp::detail
