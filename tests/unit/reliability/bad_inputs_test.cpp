// The malformed-input corpus: every bad config and every bad model folder in
// tests/data/bad is refused with the error code its name states, and the
// message names the file or folder.
//
//   tests/data/bad/config/<what>.<CODE>.json     through tp::load_registry_config
//   tests/data/bad/models/<what>.<CODE>/         through tp::model_weight_files and,
//                                                when that succeeds, tp::TensorWeights::open
//                                                (from make_bad_models.py)
//   tests/data/bad/png/<what>.<CODE>.png         through tp::read_png (from make_bad_png.py)
//   tests/data/bad/tokenizer/<what>.<CODE>/      through tp::ClipTokenizer::load (clip_*) or
//                                                tp::T5Tokenizer::load (t5_*) (from make_bad_tokenizers.py)
//   tests/data/bad/safetensors/                  checked by tests/unit/weights/safetensors_test.cpp;
//                                                counted here towards the corpus size.
//
// The configs and the PNGs include a dangling symlink (missing_file.NOT_FOUND.*)
// and a folder named like a file. A model folder holding only .gitkeep stands
// for an empty folder (git keeps no empty folders): it is recreated empty in a
// scratch folder. Cases whose message must say more than the file's name list
// it in expected_messages(). Cases that expose a library bug are listed in
// known_bugs().
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "device/device.h"
#include "twistedpic/config.h"
#include "twistedpic/error.h"
#include "twistedpic/image.h"
#include "weights/tensor_weights.h"
#include "text/tokenizer.h"

namespace tp {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const fs::path kBad = fs::path(TP_TEST_DATA_DIR) / "bad";

struct Case {
  fs::path path;
  std::string expected;  // "INVALID_ARGUMENT"
};

// gtest prints a case as its file or folder name.
void PrintTo(const Case& c, std::ostream* os) { *os << c.path.filename().string(); }

// "<what>.<CODE>[.ext]" -> "CODE".
std::string expected_code(const fs::path& p, bool has_extension) {
  fs::path stem = has_extension ? p.filename().stem() : p.filename();
  std::string ext = stem.extension().string();
  return ext.empty() ? std::string() : ext.substr(1);
}

// The entries named "*<extension>" (files, folders or symlinks), or with an
// empty extension the folders.
std::vector<Case> list_cases(const fs::path& folder, std::string_view extension) {
  const bool files = !extension.empty();
  std::vector<Case> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(folder, ec)) {
    const fs::path p = e.path();
    if (files && p.extension() != extension) continue;
    if (!files && !e.is_directory()) continue;
    out.push_back({p, expected_code(p, files)});
  }
  std::sort(out.begin(), out.end(), [](const Case& a, const Case& b) { return a.path < b.path; });
  return out;
}

std::string test_name(const ::testing::TestParamInfo<Case>& info) {
  std::string name = info.param.path.filename().string();
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
}

bool only_gitkeep(const fs::path& folder) {
  for (const auto& e : fs::directory_iterator(folder))
    if (e.path().filename() != ".gitkeep") return false;
  return true;
}

// Library bugs the corpus found, by case name: the case states the right
// behaviour, and the test checks that the bug still reproduces, so that a fix
// shows up as a failure telling to remove the entry. Keep this list short.
const std::map<std::string, std::string>& known_bugs() {
  static const std::map<std::string, std::string> bugs = {
  };
  return bugs;
}

// For a known bug's case: skips while `status` still shows the bug, fails once it is fixed.
void expect_known_bug(const Case& c, const Status& status) {
  auto bug = known_bugs().find(c.path.filename().string());
  ASSERT_NE(bug, known_bugs().end());
  const bool fixed = !status && error_code_name(status.error().code) == c.expected;
  if (!fixed) GTEST_SKIP() << "known library bug: " << bug->second;
  FAIL() << "known bug fixed: remove it from known_bugs(): " << bug->second;
}

bool is_known_bug(const Case& c) { return known_bugs().count(c.path.filename().string()) > 0; }

// What the message must say besides the path, by case name: the specific
// problem, where the code alone does not pin it down.
const std::map<std::string, std::string>& expected_messages() {
  static const std::map<std::string, std::string> messages = {
      {"is_a_directory.INVALID_ARGUMENT.json", "is a directory, not a regular file"},
      {"duplicate_model_name.INVALID_ARGUMENT.json", "duplicate key 'a' in 'models'"},
      {"duplicate_top_level_key.INVALID_ARGUMENT.json", "duplicate key 'models'"},
      {"duplicate_model_field.INVALID_ARGUMENT.json", "duplicate key 'dtype' in 'a'"},
      {"byte_size_over_u64.INVALID_ARGUMENT.json",
       "models.a.workspace_bytes: '18446744073709551616' is too large"},
      {"byte_size_unit_overflow.INVALID_ARGUMENT.json", "host_budget_bytes: '16777216TiB' is too large"},
      {"is_a_directory.INVALID_ARGUMENT.png", "is a directory, not a regular file"},
      {"not_a_png.INVALID_ARGUMENT.png", "not a PNG file"},
      {"empty.DATA_LOSS.png", "empty file"},
      {"truncated_in_idat.DATA_LOSS.png", "ends early"},
      {"ihdr_crc_mismatch.INVALID_ARGUMENT.png", "CRC"},
      {"width_over_65535.INVALID_ARGUMENT.png", "65536x1, over the limits"},
      {"over_2_28_pixels.INVALID_ARGUMENT.png", "20000x20000, over the limits"},
  };
  return messages;
}

void expect_message(const Case& c, const std::string& message) {
  EXPECT_THAT(message, HasSubstr(c.path.string()));
  if (auto it = expected_messages().find(c.path.filename().string()); it != expected_messages().end()) {
    EXPECT_THAT(message, HasSubstr(it->second));
  }
}

// ---- configs --------------------------------------------------------------------

class BadConfigTest : public ::testing::TestWithParam<Case> {};

TEST_P(BadConfigTest, RefusedWithItsCodeAndNamesTheFile) {
  const Case& c = GetParam();
  ASSERT_FALSE(c.expected.empty()) << c.path << " is not named <what>.<CODE>.json";
  if (is_known_bug(c)) {
    auto config = load_registry_config(c.path);
    return expect_known_bug(c, config ? ok_status() : Status(tl::unexpected(config.error())));
  }
  auto config = load_registry_config(c.path);
  ASSERT_FALSE(config) << c.path << " was accepted";
  EXPECT_EQ(error_code_name(config.error().code), c.expected) << config.error().message;
  expect_message(c, config.error().message);
}

INSTANTIATE_TEST_SUITE_P(Corpus, BadConfigTest, ::testing::ValuesIn(list_cases(kBad / "config", ".json")), test_name);

// A named pipe as the config file: refused without blocking (std::ifstream
// used to block in open() until a writer appeared).
TEST(BadConfigSpecialFileTest, NamedPipeIsRefusedWithoutBlocking) {
  const fs::path scratch = fs::temp_directory_path() / ("tp-bad-config-fifo-" + std::to_string(::getpid()));
  fs::remove_all(scratch);
  fs::create_directories(scratch);
  const fs::path pipe = scratch / "twistedpic.json";
  ASSERT_EQ(::mkfifo(pipe.c_str(), 0600), 0);
  auto result = std::async(std::launch::async, [&] { return load_registry_config(pipe); });
  const bool blocked = result.wait_for(std::chrono::seconds(2)) == std::future_status::timeout;
  int writer = -1;
  if (blocked) writer = ::open(pipe.c_str(), O_WRONLY | O_NONBLOCK);  // lets the loader's open() return
  auto config = result.get();
  if (writer >= 0) ::close(writer);
  fs::remove_all(scratch);
  EXPECT_FALSE(blocked) << "load_registry_config() blocked on the named pipe " << pipe;
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().code, ErrorCode::kInvalidArgument) << config.error().message;
  EXPECT_THAT(config.error().message, HasSubstr(pipe.string() + ": is a named pipe (FIFO), not a regular file"));
}

// ---- PNG files ----------------------------------------------------------------------

class BadPngTest : public ::testing::TestWithParam<Case> {};

TEST_P(BadPngTest, RefusedWithItsCodeAndNamesTheFile) {
  const Case& c = GetParam();
  ASSERT_FALSE(c.expected.empty()) << c.path << " is not named <what>.<CODE>.png";
  auto image = read_png(c.path);
  if (is_known_bug(c)) return expect_known_bug(c, image ? ok_status() : Status(tl::unexpected(image.error())));
  ASSERT_FALSE(image) << c.path << " was accepted";
  EXPECT_EQ(error_code_name(image.error().code), c.expected) << image.error().message;
  expect_message(c, image.error().message);
}

INSTANTIATE_TEST_SUITE_P(Corpus, BadPngTest, ::testing::ValuesIn(list_cases(kBad / "png", ".png")), test_name);

// ---- model folders ----------------------------------------------------------------

class BadModelFolderTest : public ::testing::TestWithParam<Case> {};

// The first error of the path a registry takes to open a model: list its weight
// files, then read their headers and plan the arena.
Status open_model(const fs::path& folder) {
  auto files = model_weight_files(folder.string());
  if (!files) return tl::unexpected(files.error());
  auto device = std::make_shared<CpuDevice>(64ull << 20);
  auto pool = std::make_shared<PinnedPool>(device, 1 << 20, 2);
  TransferOptions options;
  options.chunk_bytes = 1 << 20;
  auto weights = TensorWeights::open(std::move(*files), std::nullopt, device, pool, options);
  if (!weights) return tl::unexpected(weights.error());
  return ok_status();
}

TEST_P(BadModelFolderTest, RefusedWithItsCodeAndNamesTheFolder) {
  const Case& c = GetParam();
  ASSERT_FALSE(c.expected.empty()) << c.path << " is not named <what>.<CODE>";
  fs::path folder = c.path;
  fs::path scratch;
  if (only_gitkeep(c.path)) {  // stands for an empty folder
    scratch = fs::temp_directory_path() / ("tp-bad-" + std::to_string(::getpid()));
    folder = scratch / c.path.filename();
    fs::remove_all(folder);
    fs::create_directories(folder);
    ASSERT_TRUE(fs::is_empty(folder));
  }
  Status st = open_model(folder);
  if (!scratch.empty()) fs::remove_all(scratch);
  if (is_known_bug(c)) return expect_known_bug(c, st);
  ASSERT_FALSE(st) << folder << " was accepted";
  EXPECT_EQ(error_code_name(st.error().code), c.expected) << st.error().message;
  EXPECT_THAT(st.error().message, HasSubstr(folder.string()));
}

INSTANTIATE_TEST_SUITE_P(Corpus, BadModelFolderTest, ::testing::ValuesIn(list_cases(kBad / "models", "")),
                         test_name);

// A named pipe in a model folder (git keeps none, so it is made here) must be
// refused without blocking, as kInvalidArgument naming it. It used to block
// once: ReadOnlyFile::open (src/util/file.cpp) opened with
// O_RDONLY and no O_NONBLOCK and checked S_ISREG only once open() returned,
// which for a FIFO is when a writer appears; model_weight_files() opens every
// non-*.safetensors entry of a plain folder, and TensorWeights::open() every
// weight file. Should it regress, the test unblocks the loader itself (by
// opening the pipe for writing) so that it fails instead of hanging.
TEST(BadModelFolderSpecialFileTest, NamedPipeIsRefusedWithoutBlocking) {
  const fs::path scratch = fs::temp_directory_path() / ("tp-bad-fifo-" + std::to_string(::getpid()));
  for (const char* name : {"notes.fifo", "model.safetensors"}) {
    SCOPED_TRACE(name);
    const fs::path folder = scratch / name;
    fs::remove_all(folder);
    fs::create_directories(folder);
    const fs::path pipe = folder / name;
    ASSERT_EQ(::mkfifo(pipe.c_str(), 0600), 0);
    auto result = std::async(std::launch::async, [&] { return open_model(folder); });
    const bool blocked = result.wait_for(std::chrono::seconds(2)) == std::future_status::timeout;
    int writer = -1;
    if (blocked) writer = ::open(pipe.c_str(), O_WRONLY | O_NONBLOCK);  // lets the loader's open() return
    Status st = result.get();
    if (writer >= 0) ::close(writer);
    EXPECT_FALSE(blocked) << "open_model() blocked on the named pipe " << pipe;
    ASSERT_FALSE(st);
    EXPECT_THAT(st.error().message, HasSubstr(folder.string()));
    if (std::string_view(name) == "model.safetensors") {  // the weights file itself: refused by name
      EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument) << st.error().message;
      EXPECT_THAT(st.error().message, HasSubstr(pipe.string() + ": is a named pipe (FIFO), not a regular file"));
    }
  }
  fs::remove_all(scratch);
}

// ---- tokenizer folders -----------------------------------------------------------------

// What each tokenizer case's message must say besides the folder: the file and the problem.
const std::map<std::string, std::string>& tokenizer_messages() {
  static const std::map<std::string, std::string> messages = {
      {"clip_added_token_bad_id.INVALID_ARGUMENT",
       "tokenizer_config.json: added_tokens_decoder.seven: the key is not an id"},
      {"clip_added_token_single_word.UNIMPLEMENTED",
       "tokenizer_config.json: added_tokens_decoder.7: token '<|endoftext|>' is single_word"},
      {"clip_config_not_json.INVALID_ARGUMENT",
       "tokenizer_config.json: invalid JSON"},
      {"clip_merges_blank_line.INVALID_ARGUMENT",
       "merges.txt:3: want two tokens separated by one space, got ''"},
      {"clip_merges_result_not_in_vocab.INVALID_ARGUMENT",
       "merges.txt:2: 'ba' is not in vocab.json"},
      {"clip_merges_three_tokens.INVALID_ARGUMENT",
       "merges.txt:3: want two tokens separated by one space, got 'a b c'"},
      {"clip_merges_two_spaces.INVALID_ARGUMENT",
       "merges.txt:2: want two tokens separated by one space, got 'a  b'"},
      {"clip_merges_unknown_token.INVALID_ARGUMENT",
       "merges.txt:2: 'c' is not in vocab.json"},
      {"clip_missing_merges.NOT_FOUND",
       "merges.txt: cannot open"},
      {"clip_missing_vocab.NOT_FOUND",
       "vocab.json: cannot open"},
      {"clip_pad_token_is_number.INVALID_ARGUMENT",
       "tokenizer_config.json: pad_token is an unsigned integer"},
      {"clip_pad_token_not_in_vocab.INVALID_ARGUMENT",
       "tokenizer_config.json: special token '<pad>' is not in vocab.json"},
      {"clip_vocab_duplicate_token.INVALID_ARGUMENT",
       "vocab.json: duplicate key 'a'"},
      {"clip_vocab_empty.INVALID_ARGUMENT",
       "vocab.json: no tokens"},
      {"clip_vocab_fractional_id.INVALID_ARGUMENT",
       "vocab.json: token 'b' has id '1.5', not an integer"},
      {"clip_vocab_invalid_utf8.INVALID_ARGUMENT",
       "vocab.json: invalid JSON"},
      {"clip_vocab_is_array.INVALID_ARGUMENT",
       "vocab.json: JSON is an array, not an object"},
      {"clip_vocab_is_directory.INVALID_ARGUMENT",
       "vocab.json: is a directory, not a regular file"},
      {"clip_vocab_negative_id.INVALID_ARGUMENT",
       "vocab.json: token 'b' has id '-1', not an integer"},
      {"clip_vocab_not_json.INVALID_ARGUMENT",
       "vocab.json: invalid JSON"},
      {"clip_vocab_string_id.INVALID_ARGUMENT",
       "vocab.json: token 'b' has id '\"1\"', not an integer"},
      {"t5_eos_not_a_piece.INVALID_ARGUMENT",
       "tokenizer_config.json: special token '<eos>' is not a piece of spiece.model"},
      {"t5_extra_ids_negative.INVALID_ARGUMENT",
       "tokenizer_config.json: extra_ids is '-1'"},
      {"t5_missing_spiece.NOT_FOUND",
       "spiece.model: cannot open"},
      {"t5_spiece_bad_charsmap.INVALID_ARGUMENT",
       "spiece.model: precompiled_charsmap: bad trie size 1000"},
      {"t5_spiece_bpe.UNIMPLEMENTED",
       "spiece.model: not a usable sentencepiece model: a sentencepiece model of type 2"},
      {"t5_spiece_byte_fallback.UNIMPLEMENTED",
       "spiece.model: not a usable sentencepiece model: a sentencepiece model with byte_fallback"},
      {"t5_spiece_duplicate_piece.INVALID_ARGUMENT",
       "spiece.model: not a usable sentencepiece model: Internal: a is already defined"},
      {"t5_spiece_empty.INVALID_ARGUMENT",
       "spiece.model: not a usable sentencepiece model: has 0 pieces"},
      {"t5_spiece_no_unknown_piece.INVALID_ARGUMENT",
       "spiece.model: not a usable sentencepiece model: has no unknown piece"},
      {"t5_spiece_not_protobuf.INVALID_ARGUMENT",
       "spiece.model: not a usable sentencepiece model: unsupported wire type"},
      {"t5_spiece_truncated.INVALID_ARGUMENT",
       "spiece.model: not a usable sentencepiece model: truncated field"},
  };
  return messages;
}

Status load_tokenizer(const fs::path& folder) {
  if (folder.filename().string().starts_with("t5_")) {
    auto t5 = T5Tokenizer::load(folder);
    return t5 ? ok_status() : Status(tl::unexpected(t5.error()));
  }
  auto clip = ClipTokenizer::load(folder);
  return clip ? ok_status() : Status(tl::unexpected(clip.error()));
}

class BadTokenizerTest : public ::testing::TestWithParam<Case> {};

TEST_P(BadTokenizerTest, RefusedWithItsCodeAndNamesTheFile) {
  const Case& c = GetParam();
  ASSERT_FALSE(c.expected.empty()) << c.path << " is not named <what>.<CODE>";
  const Status st = load_tokenizer(c.path);
  if (is_known_bug(c)) return expect_known_bug(c, st);
  ASSERT_FALSE(st) << c.path << " was accepted";
  EXPECT_EQ(error_code_name(st.error().code), c.expected) << st.error().message;
  EXPECT_THAT(st.error().message, HasSubstr(c.path.string()));
  auto message = tokenizer_messages().find(c.path.filename().string());
  ASSERT_NE(message, tokenizer_messages().end()) << "tokenizer_messages() has no entry; the message: "
                                                 << st.error().message;
  EXPECT_THAT(st.error().message, HasSubstr(message->second));
}

INSTANTIATE_TEST_SUITE_P(Corpus, BadTokenizerTest, ::testing::ValuesIn(list_cases(kBad / "tokenizer", "")),
                         test_name);

TEST(BadTokenizerCorpusTest, MessagesNameExistingCases) {
  for (const auto& [name, message] : tokenizer_messages()) EXPECT_TRUE(fs::is_directory(kBad / "tokenizer" / name)) << name;
}

// ---- the corpus as a whole -----------------------------------------------------------

TEST(BadInputCorpusTest, HoldsAtLeastFiftyCasesAcrossKinds) {
  size_t safetensors = 0;
  for (const auto& e : fs::directory_iterator(kBad / "safetensors"))
    if (e.path().extension() == ".safetensors") ++safetensors;
  const size_t configs = list_cases(kBad / "config", ".json").size();
  const size_t models = list_cases(kBad / "models", "").size();
  const size_t pngs = list_cases(kBad / "png", ".png").size();
  EXPECT_GE(configs, 15u);
  EXPECT_GE(models, 8u);
  EXPECT_GE(safetensors, 27u);
  EXPECT_GE(pngs, 15u);
  EXPECT_GE(configs + models + safetensors + pngs, 50u);
  RecordProperty("configs", static_cast<int>(configs));
  RecordProperty("models", static_cast<int>(models));
  RecordProperty("safetensors", static_cast<int>(safetensors));
  RecordProperty("pngs", static_cast<int>(pngs));
  const size_t tokenizers = list_cases(kBad / "tokenizer", "").size();
  EXPECT_GE(tokenizers, 20u);
  RecordProperty("tokenizers", static_cast<int>(tokenizers));
}

// Every expected_messages() entry names a case that exists (a renamed file
// must not silently drop its message check).
TEST(BadInputCorpusTest, ExpectedMessagesNameExistingCases) {
  for (const auto& [name, message] : expected_messages()) {
    const fs::path folder = kBad / (fs::path(name).extension() == ".png" ? "png" : "config");
    std::error_code ec;
    EXPECT_TRUE(fs::exists(fs::symlink_status(folder / name, ec))) << name;
  }
}

// Every case is named for its code, and only codes the library uses appear.
TEST(BadInputCorpusTest, EveryCaseNamesAKnownCode) {
  std::vector<Case> all = list_cases(kBad / "config", ".json");
  for (auto& c : list_cases(kBad / "models", "")) all.push_back(c);
  for (auto& c : list_cases(kBad / "png", ".png")) all.push_back(c);
  for (auto& c : list_cases(kBad / "tokenizer", "")) all.push_back(c);
  for (const Case& c : all) {
    bool known = false;
    for (int code = 0; code <= 16; ++code)
      known = known || (c.expected == error_code_name(static_cast<ErrorCode>(code)) && c.expected != "UNKNOWN");
    EXPECT_TRUE(known) << c.path << ": '" << c.expected << "' is not an error code name";
  }
}

}  // namespace
}  // namespace tp
