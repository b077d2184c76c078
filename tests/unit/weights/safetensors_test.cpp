#include "weights/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "support/weights_test_util.h"

namespace tp {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing_util::le64;
using testing_util::one_tensor_file;
using testing_util::safetensors_bytes;
using testing_util::ScratchDir;
using testing_util::write_file;

Expected<SafetensorsHeader> parse(std::string_view bytes) {
  return parse_safetensors_header(bytes, bytes.size(), "t.safetensors");
}

TEST(SafetensorsTest, ParsesValidHeader) {
  const std::string header = R"({"__metadata__":{"format":"pt","note":"x"},)"
                             R"("b.bias":{"dtype":"BF16","shape":[3],"data_offsets":[48,54]},)"
                             R"("a.weight":{"dtype":"F32","shape":[3,4],"data_offsets":[0,48]},)"
                             R"("c.scale":{"dtype":"F8_E4M3","shape":[],"data_offsets":[54,55]}})";
  const std::string file = safetensors_bytes(header, 55);
  auto h = parse(file);
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_EQ(h->header_size, header.size());
  EXPECT_EQ(h->data_offset, 8 + header.size());
  EXPECT_EQ(h->data_bytes, 55u);
  EXPECT_EQ(h->metadata, (std::map<std::string, std::string>{{"format", "pt"}, {"note", "x"}}));
  ASSERT_EQ(h->tensors.size(), 3u);
  EXPECT_EQ(h->tensors[0].name, "a.weight");  // sorted by name
  EXPECT_EQ(h->tensors[1].name, "b.bias");
  EXPECT_EQ(h->tensors[2].name, "c.scale");
  const TensorInfo* a = h->find("a.weight");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, DType::kF32);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(a->begin, 0u);
  EXPECT_EQ(a->end, 48u);
  const TensorInfo* b = h->find("b.bias");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, DType::kBF16);
  EXPECT_EQ(b->begin, 48u);
  EXPECT_EQ(b->end, 54u);
  EXPECT_TRUE(h->find("c.scale")->shape.empty());
  EXPECT_EQ(h->find("missing"), nullptr);
}

TEST(SafetensorsTest, AllowsGapsEmptyTensorsAndPadding) {
  // Zero-byte tensors overlap nothing; a gap at [16, 20) is allowed; the
  // header may be padded with spaces as the reference writer does.
  const std::string header = R"({"a":{"dtype":"I32","shape":[4],"data_offsets":[0,16]},)"
                             R"("e1":{"dtype":"F16","shape":[0,7],"data_offsets":[8,8]},)"
                             R"("e2":{"dtype":"F16","shape":[0],"data_offsets":[8,8]},)"
                             R"("b":{"dtype":"U8","shape":[4],"data_offsets":[20,24]}}      )";
  auto h = parse(safetensors_bytes(header, 24));
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_EQ(h->tensors.size(), 4u);
  EXPECT_EQ(h->find("e1")->shape, (std::vector<int64_t>{0, 7}));
}

TEST(SafetensorsTest, EmptyHeaderObjectIsValid) {
  auto h = parse(safetensors_bytes("{}", 0));
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_TRUE(h->tensors.empty());
}

TEST(SafetensorsTest, SizeMismatchMessageNamesFileTensorShapeAndBytes) {
  auto h = parse_safetensors_header(
      safetensors_bytes(R"({"x.weight":{"dtype":"F32","shape":[3,4],"data_offsets":[0,40]}})", 40), 8 + 64 + 40,
      "model.safetensors");
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(h.error().message,
            "model.safetensors: tensor 'x.weight': shape [3,4] x F32 needs 48 bytes but data_offsets span 40");
}

struct BadCase {
  const char* label;
  std::string bytes;
  ErrorCode code;
  std::string message_part;
};

std::string entry(std::string_view body) { return R"({"t":{)" + std::string(body) + "}}"; }

std::vector<BadCase> bad_cases() {
  const ErrorCode kInv = ErrorCode::kInvalidArgument, kLoss = ErrorCode::kDataLoss;
  const std::string ok_shape = R"("shape":[2],)", ok_off = R"("data_offsets":[0,8])";
  std::string deep = std::string(100, '[') + std::string(100, ']');
  return {
      {"empty file", "", kLoss, "too short for the 8-byte header length"},
      {"truncated length", std::string(5, '\0'), kLoss, "file is 5 bytes"},
      {"header length over limit", le64(kMaxSafetensorsHeaderBytes + 1) + "{}", kInv, "exceeds the limit"},
      {"huge header length", le64(~0ull), kInv, "exceeds the limit"},
      {"header past end", le64(100) + "{}", kLoss, "runs past the end of the file"},
      {"empty header", safetensors_bytes("", 0), kInv, "invalid JSON"},
      {"invalid json", safetensors_bytes(R"({"t":)", 0), kInv, "invalid JSON"},
      {"trailing garbage", safetensors_bytes("{} x", 0), kInv, "invalid JSON"},
      {"invalid utf8", safetensors_bytes("{\"\xff\":{}}", 0), kInv, "invalid JSON"},
      {"not an object", safetensors_bytes("[1,2]", 0), kInv, "header is an array, not a JSON object"},
      {"too deep", safetensors_bytes(deep, 0), kInv, "nested deeper than"},
      {"control characters in name", safetensors_bytes("{\"a\\nb\\u001b[2J\":[1]}", 0), kInv,
       "tensor 'a\\x0ab\\x1b[2J': entry is an array"},
      {"long name", safetensors_bytes("{\"" + std::string(300, 'n') + "\":[1]}", 0), kInv,
       "tensor '" + std::string(128, 'n') + "...': entry"},
      {"entry not object", safetensors_bytes(R"({"t":[1]})", 0), kInv, "tensor 't': entry is an array, not an object"},
      {"missing dtype", safetensors_bytes(entry(ok_shape + ok_off), 8), kInv, "tensor 't': missing \"dtype\""},
      {"dtype not string", safetensors_bytes(entry(R"("dtype":4,)" + ok_shape + ok_off), 8), kInv,
       "\"dtype\" is an unsigned integer, not a string"},
      {"unknown dtype", safetensors_bytes(entry(R"("dtype":"F17",)" + ok_shape + ok_off), 8), kInv,
       "tensor 't': unknown dtype 'F17'"},
      {"missing shape", safetensors_bytes(entry(R"("dtype":"F32",)" + ok_off), 8), kInv, "missing \"shape\""},
      {"shape not array", safetensors_bytes(entry(R"("dtype":"F32","shape":2,)" + ok_off), 8), kInv,
       "\"shape\" is an unsigned integer, not an array"},
      {"negative dim", safetensors_bytes(entry(R"("dtype":"F32","shape":[2,-3],)" + ok_off), 8), kInv,
       "negative dimension -3 at index 1"},
      {"fractional dim", safetensors_bytes(entry(R"("dtype":"F32","shape":[2.5],)" + ok_off), 8), kInv,
       "dimension at index 0 of \"shape\" is a non-integer number"},
      {"string dim", safetensors_bytes(entry(R"("dtype":"F32","shape":["2"],)" + ok_off), 8), kInv,
       "dimension at index 0 of \"shape\" is a string"},
      {"dim over int64", safetensors_bytes(entry(R"("dtype":"U8","shape":[9223372036854775808],)" + ok_off), 8), kInv,
       "is too large"},
      {"missing offsets", safetensors_bytes(entry(R"("dtype":"F32","shape":[2])"), 8), kInv,
       "missing \"data_offsets\""},
      {"offsets not array", safetensors_bytes(entry(R"("dtype":"F32",)" + ok_shape + R"("data_offsets":"0-8")"), 8),
       kInv, "\"data_offsets\" is a string, not [begin, end]"},
      {"three offsets", safetensors_bytes(entry(R"("dtype":"F32",)" + ok_shape + R"("data_offsets":[0,8,8])"), 8), kInv,
       "\"data_offsets\" has 3 values, not 2"},
      {"negative offset", safetensors_bytes(entry(R"("dtype":"F32",)" + ok_shape + R"("data_offsets":[-8,0])"), 8),
       kInv, "\"data_offsets\"[0] is a negative integer"},
      {"float offset", safetensors_bytes(entry(R"("dtype":"F32",)" + ok_shape + R"("data_offsets":[0,8.0])"), 8), kInv,
       "\"data_offsets\"[1] is a non-integer number"},
      {"begin after end", safetensors_bytes(entry(R"("dtype":"F32","shape":[0],"data_offsets":[8,0])"), 8), kInv,
       "data_offsets [8,0] begin after their end"},
      {"shape bytes mismatch", safetensors_bytes(entry(R"("dtype":"F16",)" + ok_shape + ok_off), 8), kInv,
       "shape [2] x F16 needs 4 bytes but data_offsets span 8"},
      {"shape overflow",
       safetensors_bytes(entry(R"("dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0])"), 0), kInv,
       "shape [4294967296,4294967296] x F32 overflows"},
      {"range past data", safetensors_bytes(entry(R"("dtype":"F32",)" + ok_shape + R"("data_offsets":[4,12])"), 8),
       kLoss, "data_offsets [4,12] run past the end of the data section (8 bytes"},
      {"overlap",
       safetensors_bytes(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}})",
                         10),
       kInv, "tensors 'a' [0,8) and 'b' [6,10) overlap"},
      {"same begin",
       safetensors_bytes(R"({"b":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                         R"("a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})",
                         8),
       kInv, "tensors 'a' [0,4) and 'b' [0,8) overlap"},
      {"duplicate name",
       safetensors_bytes(R"({"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                         R"("t":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
                         8),
       kInv, "duplicate tensor name 't'"},
      {"duplicate key in entry",
       safetensors_bytes(entry(R"("dtype":"U8","dtype":"F32","shape":[8],"data_offsets":[0,8])"), 8), kInv,
       "duplicate key 'dtype' in 't'"},
      {"metadata not object", safetensors_bytes(R"({"__metadata__":[]})", 0), kInv,
       "\"__metadata__\" is an array, not an object of strings"},
      {"metadata value not string", safetensors_bytes(R"({"__metadata__":{"step":3}})", 0), kInv,
       "\"__metadata__\" value of 'step' is an unsigned integer, not a string"},
  };
}

TEST(SafetensorsTest, EveryMalformationHasItsOwnError) {
  for (const BadCase& c : bad_cases()) {
    SCOPED_TRACE(c.label);
    auto h = parse(c.bytes);
    ASSERT_FALSE(h);
    EXPECT_EQ(h.error().code, c.code) << h.error().to_string();
    EXPECT_THAT(h.error().message, HasSubstr(c.message_part));
    EXPECT_THAT(h.error().message, ::testing::StartsWith("t.safetensors: "));
  }
}

TEST(SafetensorsTest, PrefixMustCoverTheHeader) {
  const std::string file = one_tensor_file();
  auto short_prefix = parse_safetensors_header(std::string_view(file).substr(0, 20), file.size(), "f");
  ASSERT_FALSE(short_prefix);
  EXPECT_EQ(short_prefix.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(short_prefix.error().message, HasSubstr("header bytes were given"));
  auto too_long = parse_safetensors_header(file, file.size() - 1, "f");
  ASSERT_FALSE(too_long);
  EXPECT_EQ(too_long.error().code, ErrorCode::kInvalidArgument);
  // The header alone suffices: the data section is not needed.
  auto header_only = parse_safetensors_header(std::string_view(file).substr(0, file.size() - 16), file.size(), "f");
  ASSERT_TRUE(header_only) << header_only.error().to_string();
  EXPECT_EQ(header_only->data_bytes, 16u);
}

TEST(SafetensorsTest, ReadsHeaderFromFile) {
  ScratchDir dir;
  write_file(dir / "m.safetensors", one_tensor_file("layer.w"));
  auto h = read_safetensors_header(dir / "m.safetensors");
  ASSERT_TRUE(h) << h.error().to_string();
  ASSERT_EQ(h->tensors.size(), 1u);
  EXPECT_EQ(h->tensors[0].name, "layer.w");
  EXPECT_EQ(h->tensors[0].shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(h->data_bytes, 16u);

  // Truncated data: the message names the path.
  const std::string full = one_tensor_file();
  write_file(dir / "cut.safetensors", std::string_view(full).substr(0, full.size() - 3));
  auto cut = read_safetensors_header(dir / "cut.safetensors");
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().code, ErrorCode::kDataLoss);
  EXPECT_THAT(cut.error().message, HasSubstr((dir / "cut.safetensors").string() + ": tensor 'w'"));

  // A hostile length is refused before anything is allocated for it.
  write_file(dir / "huge.safetensors", le64(~0ull >> 1) + "{}");
  EXPECT_EQ(read_safetensors_header(dir / "huge.safetensors").error().code, ErrorCode::kInvalidArgument);
}

TEST(SafetensorsTest, FileErrors) {
  ScratchDir dir;
  auto missing = read_safetensors_header(dir / "nope.safetensors");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr("nope.safetensors"));
  auto folder = read_safetensors_header(dir.path());
  ASSERT_FALSE(folder);
  EXPECT_EQ(folder.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(folder.error().message, HasSubstr("not a regular file"));
}

// tests/data/bad/safetensors/<case>.<CODE>.safetensors, from make_bad_safetensors.py.
TEST(SafetensorsTest, BadFileCorpusGivesExpectedCodes) {
  const fs::path corpus = fs::path(TP_TEST_DATA_DIR) / "bad" / "safetensors";
  int count = 0;
  for (const auto& e : fs::directory_iterator(corpus)) {
    const fs::path path = e.path();
    if (path.extension() != ".safetensors") continue;
    SCOPED_TRACE(path.filename().string());
    const std::string expected = path.stem().extension().string().substr(1);  // "DATA_LOSS"
    auto h = read_safetensors_header(path);
    ASSERT_FALSE(h);
    EXPECT_EQ(error_code_name(h.error().code), expected) << h.error().message;
    ++count;
  }
  EXPECT_GE(count, 10);
}

TEST(SafetensorsTest, RefusesPickles) {
  ScratchDir dir;
  for (const char* name : {"model.bin", "model.ckpt", "model.pt", "model.PTH"}) {
    write_file(dir / name, "irrelevant");
    Status s = check_weights_file_format(dir / name);
    ASSERT_FALSE(s) << name;
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(s.error().message, HasSubstr("never executes pickles"));
    EXPECT_THAT(s.error().message, HasSubstr("convert it to safetensors"));
  }
  // Content, whatever the name.
  write_file(dir / "renamed.safetensors", std::string("\x80\x02}q\x00.", 6));
  EXPECT_THAT(check_weights_file_format(dir / "renamed.safetensors").error().message, HasSubstr("pickle protocol"));
  write_file(dir / "zipped.safetensors", std::string("PK\x03\x04rest", 8));
  EXPECT_THAT(check_weights_file_format(dir / "zipped.safetensors").error().message, HasSubstr("zip archive"));
  // A real safetensors file whose length bytes look like pickle magic passes:
  // header of 0x0280 = 640 bytes starts 0x80 0x02.
  std::string header = R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})";
  header.resize(0x280, ' ');
  write_file(dir / "ok.safetensors", safetensors_bytes(header, 1));
  EXPECT_TRUE(check_weights_file_format(dir / "ok.safetensors"));
  EXPECT_TRUE(read_safetensors_header(dir / "ok.safetensors"));
  EXPECT_EQ(check_weights_file_format(dir / "absent.safetensors").error().code, ErrorCode::kNotFound);
}

std::string index_json(std::string_view weight_map) {
  return R"({"metadata":{"total_size":32},"weight_map":)" + std::string(weight_map) + "}";
}

TEST(SafetensorsIndexTest, ReadsShardedIndex) {
  ScratchDir dir;
  write_file(dir / "model-00001-of-00002.safetensors", one_tensor_file("a"));
  write_file(dir / "model-00002-of-00002.safetensors", one_tensor_file("b"));
  write_file(dir / "model.safetensors.index.json",
             index_json(R"({"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors",)"
                        R"("c":"model-00002-of-00002.safetensors"})"));
  auto idx = read_safetensors_index(dir / "model.safetensors.index.json");
  ASSERT_TRUE(idx) << idx.error().to_string();
  EXPECT_EQ(idx->total_size, 32u);
  EXPECT_EQ(idx->weight_map.size(), 3u);
  EXPECT_EQ(idx->weight_map.at("c"), "model-00002-of-00002.safetensors");
  EXPECT_EQ(idx->shards, (std::vector<fs::path>{dir / "model-00001-of-00002.safetensors",
                                                dir / "model-00002-of-00002.safetensors"}));
}

TEST(SafetensorsIndexTest, RejectsBadIndexes) {
  ScratchDir dir;
  write_file(dir / "s.safetensors", one_tensor_file());
  write_file(dir / "s.bin", "pickle");
  struct Case {
    std::string json;
    ErrorCode code;
    const char* part;
  };
  const std::vector<Case> cases = {
      {index_json(R"({"a":"../s.safetensors"})"), ErrorCode::kInvalidArgument, "is not a relative path inside"},
      {index_json(R"({"a":"sub/../../s.safetensors"})"), ErrorCode::kInvalidArgument, "is not a relative path"},
      {index_json(R"({"a":"/etc/passwd"})"), ErrorCode::kInvalidArgument, "shard '/etc/passwd' is not a relative"},
      {index_json(R"({"a":""})"), ErrorCode::kInvalidArgument, "is not a relative path"},
      {index_json(R"({"a":"gone.safetensors"})"), ErrorCode::kNotFound,
       "tensor 'a': shard 'gone.safetensors' does not exist"},
      {index_json(R"({"a":"s.bin"})"), ErrorCode::kInvalidArgument, "never executes pickles"},
      {index_json(R"({"a":7})"), ErrorCode::kInvalidArgument, "shard is an unsigned integer, not a file name"},
      {index_json("{}"), ErrorCode::kInvalidArgument, "must be a non-empty object"},
      {R"({"metadata":{}})", ErrorCode::kInvalidArgument, "missing \"weight_map\""},
      {R"({"metadata":{"total_size":-1},"weight_map":{"a":"s.safetensors"}})", ErrorCode::kInvalidArgument,
       "total_size\" is a negative integer"},
      {R"({"weight_map":{"a":"s.safetensors","a":"s.safetensors"}})", ErrorCode::kInvalidArgument,
       "duplicate key 'a' in 'weight_map'"},
      {"[]", ErrorCode::kInvalidArgument, "not an object"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.json);
    write_file(dir / "i.safetensors.index.json", c.json);
    auto idx = read_safetensors_index(dir / "i.safetensors.index.json");
    ASSERT_FALSE(idx);
    EXPECT_EQ(idx.error().code, c.code) << idx.error().to_string();
    EXPECT_THAT(idx.error().message, HasSubstr(c.part));
  }
  EXPECT_EQ(read_safetensors_index(dir / "absent.index.json").error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace tp
