// A renamed selection of a file's tensors (weights/tensor_selection.h): rows
// of a fused tensor at their own offsets, reshaped and transposed tensors,
// read back byte-exact by the transfer engine, and the errors that name the pick.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "device/device.h"
#include "support/weights_test_util.h"
#include "weights/tensor_selection.h"
#include "weights/tensor_weights.h"

namespace tp {
namespace {

using testing_util::ScratchDir;
using ::testing::HasSubstr;

// qkv: F32 (6, 4), 96 bytes at 0; proj: F32 (3, 2), 24 bytes at 96; conv: F32
// (2, 2, 1, 1), 16 bytes at 120; other: F16 (4,), 8 bytes at 136. Byte i of
// the data section is i & 0xff.
constexpr std::string_view kHeader =
    R"({"qkv":{"dtype":"F32","shape":[6,4],"data_offsets":[0,96]},)"
    R"("proj":{"dtype":"F32","shape":[3,2],"data_offsets":[96,120]},)"
    R"("conv":{"dtype":"F32","shape":[2,2,1,1],"data_offsets":[120,136]},)"
    R"("other":{"dtype":"F16","shape":[4],"data_offsets":[136,144]}})";

std::filesystem::path write_fixture(const ScratchDir& dir) {
  const auto path = dir / "m.safetensors";
  testing_util::write_file(path, testing_util::safetensors_bytes(kHeader, 144));
  return path;
}

// The data section's bytes [begin, end) as written by safetensors_bytes.
std::string data_bytes(uint64_t begin, uint64_t end) {
  std::string out;
  for (uint64_t i = begin; i < end; ++i) out.push_back(static_cast<char>(i & 0xff));
  return out;
}

TensorPick pick(std::string name, std::string source) {
  TensorPick p;
  p.name = std::move(name);
  p.source = std::move(source);
  return p;
}

// q, k, v: two rows each of qkv; w: proj read transposed; c: conv as (2, 2).
TensorSelection fixture_selection() {
  TensorSelection s;
  s.what = "the test part (x.*)";
  const char* names[3] = {"attn.q.weight", "attn.k.weight", "attn.v.weight"};
  for (int64_t i = 0; i < 3; ++i) {
    TensorPick p = pick(names[i], "qkv");
    p.row_begin = 2 * i;
    p.row_end = 2 * i + 2;
    s.picks.push_back(p);
  }
  TensorPick w = pick("proj.weight", "proj");
  w.transposed = true;
  s.picks.push_back(w);
  TensorPick c = pick("linear.weight", "conv");
  c.shape = {2, 2};
  s.picks.push_back(c);
  return s;
}

TEST(TensorSelectionTest, ResolvesRowsReshapesAndTransposes) {
  ScratchDir dir;
  auto header = read_safetensors_header(write_fixture(dir)).value();
  auto selected = select_tensors(header, fixture_selection(), "m.safetensors").value();
  ASSERT_EQ(selected.size(), 5u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(selected[i].shape, (std::vector<int64_t>{2, 4}));
    EXPECT_EQ(selected[i].begin, 32u * i);
    EXPECT_EQ(selected[i].end, 32u * i + 32);
    EXPECT_FALSE(selected[i].transposed);
  }
  EXPECT_EQ(selected[3].name, "proj.weight");
  EXPECT_EQ(selected[3].shape, (std::vector<int64_t>{2, 3}));  // the stored (3, 2), transposed
  EXPECT_TRUE(selected[3].transposed);
  EXPECT_EQ(selected[3].begin, 96u);
  EXPECT_EQ(selected[4].shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(selected[4].begin, 120u);
  EXPECT_EQ(selected[4].end, 136u);
}

TEST(TensorSelectionTest, TheEngineReadsOnlyThePicksUnderTheirNames) {
  ScratchDir dir;
  const auto path = write_fixture(dir);
  auto selection = std::make_shared<const TensorSelection>(fixture_selection());
  auto device = std::make_shared<CpuDevice>(1ull << 30);
  auto pool = std::make_shared<PinnedPool>(device, 64, 4);
  TransferOptions o;
  o.chunk_bytes = 64;  // pieces split across chunks too
  auto weights = TensorWeights::open({{path, "p/", selection}}, std::nullopt, device, pool, o).value();
  ASSERT_EQ(weights->tensors().size(), 5u);
  EXPECT_EQ(weights->find("p/other"), nullptr);
  EXPECT_EQ(weights->find("p/qkv"), nullptr);
  ASSERT_TRUE(weights->load_to_device({}));
  auto bytes = [&](std::string_view name) {
    const WeightTensor* t = weights->find(name);
    EXPECT_NE(t, nullptr) << name;
    return t ? std::string(static_cast<const char*>(weights->device_data()) + t->offset, t->bytes) : std::string();
  };
  EXPECT_EQ(bytes("p/attn.q.weight"), data_bytes(0, 32));
  EXPECT_EQ(bytes("p/attn.k.weight"), data_bytes(32, 64));
  EXPECT_EQ(bytes("p/attn.v.weight"), data_bytes(64, 96));
  EXPECT_EQ(bytes("p/proj.weight"), data_bytes(96, 120));  // the file's bytes: the view transposes
  EXPECT_EQ(bytes("p/linear.weight"), data_bytes(120, 136));
  EXPECT_TRUE(weights->find("p/proj.weight")->transposed);
  EXPECT_EQ(weights->find("p/proj.weight")->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_FALSE(weights->find("p/attn.k.weight")->transposed);
  EXPECT_EQ(weights->find("p/linear.weight")->shape, (std::vector<int64_t>{2, 2}));
}

TEST(TensorSelectionTest, ConvertedRowsEqualTheSameRowsOfTheWholeTensor) {
  ScratchDir dir;
  const auto path = write_fixture(dir);
  auto device = std::make_shared<CpuDevice>(1ull << 30);
  auto pool = std::make_shared<PinnedPool>(device, 1 << 16, 4);
  TransferOptions o;
  o.chunk_bytes = 1 << 16;
  auto part = TensorWeights::open({{path, "", std::make_shared<const TensorSelection>(fixture_selection())}},
                                  DType::kBF16, device, pool, o)
                  .value();
  auto whole = TensorWeights::open({{path, ""}}, DType::kBF16, device, pool, o).value();
  ASSERT_TRUE(part->load_to_device({}));
  ASSERT_TRUE(whole->load_to_device({}));
  const WeightTensor* qkv = whole->find("qkv");
  const WeightTensor* v = part->find("attn.v.weight");
  ASSERT_TRUE(qkv && v);
  EXPECT_EQ(v->dtype, DType::kBF16);
  EXPECT_EQ(v->bytes, qkv->bytes / 3);
  EXPECT_EQ(std::string(static_cast<const char*>(part->device_data()) + v->offset, v->bytes),
            std::string(static_cast<const char*>(whole->device_data()) + qkv->offset + 2 * v->bytes, v->bytes));
}

TEST(TensorSelectionTest, ErrorsNameTheFileThePartAndThePick) {
  ScratchDir dir;
  auto header = read_safetensors_header(write_fixture(dir)).value();
  auto fails = [&](TensorPick p) {
    TensorSelection s{"the test part (x.*)", {std::move(p)}};
    auto r = select_tensors(header, s, "m.safetensors");
    EXPECT_FALSE(r);
    return r ? Error{} : r.error();
  };
  Error missing = fails(pick("a", "nope"));
  EXPECT_EQ(missing.code, ErrorCode::kNotFound);
  EXPECT_THAT(missing.message, HasSubstr("m.safetensors: the test part (x.*): the file has no tensor 'nope'"));

  TensorPick rows = pick("a", "qkv");
  rows.row_begin = 4;
  rows.row_end = 7;
  Error outside = fails(rows);
  EXPECT_EQ(outside.code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(outside.message, HasSubstr("'a' (from 'qkv'): rows [4, 7) are outside the tensor's 6 rows"));

  TensorPick reshape = pick("a", "proj");
  reshape.shape = {4, 2};
  EXPECT_THAT(fails(reshape).message, HasSubstr("shape (3, 2) cannot be read as (4, 2)"));

  TensorPick transposed = pick("a", "conv");
  transposed.transposed = true;
  EXPECT_THAT(fails(transposed).message, HasSubstr("only a 2-D tensor reads transposed"));

  TensorPick scalar_rows = pick("a", "other");
  scalar_rows.row_begin = 1;
  EXPECT_TRUE(select_tensors(header, {"w", {scalar_rows}}, "m").has_value());  // rows of a 1-D tensor are fine

  TensorSelection twice{"the test part (x.*)", {pick("a", "qkv"), pick("a", "proj")}};
  auto dup = select_tensors(header, twice, "m.safetensors");
  ASSERT_FALSE(dup);
  EXPECT_THAT(dup.error().message, HasSubstr("'a' (from 'proj'): the name is picked twice"));
}

}  // namespace
}  // namespace tp
