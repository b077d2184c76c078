// What the torch layer owes the weights it reads (issue "GPU truth"): views
// made without asking CUDA about their pointers (an empty last tensor points
// one past the arena), the last use noted before a lease ends, and the
// dtype the networks compute in.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstring>

#include "pipeline/common/bound_network.h"
#include "support/fenced_device.h"
#include "support/weights_test_util.h"
#include "torch/tensors.h"

namespace tp {
namespace {

using testing_util::FencedDevice;
using testing_util::ScratchDir;

// x: F32 [2, 3] = 0..5, then "z.empty": F32 [0, 4], the last tensor of the arena.
void write_empty_last(const std::filesystem::path& path) {
  std::string header = R"({"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
                       R"("z.empty":{"dtype":"F32","shape":[0,4],"data_offsets":[24,24]}})";
  while (header.size() % 8) header += ' ';
  std::string data(24, '\0');
  for (int i = 0; i < 6; ++i) {
    float f = static_cast<float>(i);
    std::memcpy(&data[i * 4], &f, 4);
  }
  testing_util::write_file(path, testing_util::le64(header.size()) + header + data);
}

std::unique_ptr<TensorWeights> load(const std::filesystem::path& file, std::shared_ptr<Device> device,
                                    std::optional<DType> dtype = std::nullopt) {
  auto pool = std::make_shared<PinnedPool>(device, 1 << 20, 2);
  TransferOptions o;
  o.chunk_bytes = 1 << 20;
  auto weights = TensorWeights::open({{file, ""}}, dtype, std::move(device), pool, o).value();
  EXPECT_TRUE(weights->load_to_device({}));
  return weights;
}

TEST(WeightUseTest, AnEmptyLastTensorViewsOnePastTheArena) {
  ScratchDir dir;
  write_empty_last(dir / "m.safetensors");
  auto weights = load(dir / "m.safetensors", std::make_shared<CpuDevice>(1ull << 30));
  const WeightTensor* z = weights->find("z.empty");
  ASSERT_NE(z, nullptr);
  ASSERT_EQ(z->offset, weights->device_bytes()) << "the fixture's empty tensor no longer ends the arena";
  auto views = torch_bridge::tensor_views(*weights);
  ASSERT_TRUE(views) << views.error().message;
  EXPECT_TRUE(at::equal(views->at("x"), at::arange(6, at::kFloat).reshape({2, 3})));
  EXPECT_EQ(views->at("z.empty").sizes(), (at::IntArrayRef{0, 4}));
  EXPECT_EQ(views->at("z.empty").numel(), 0);
}

// On a GPU, from_blob asks cudaPointerGetAttributes where each pointer lives,
// and one past an arena may be unregistered memory. The views must name their
// device instead. A device called "cuda:0" whose memory is the host's proves it
// without a GPU: any pointer query fails here, and the views are never read.
TEST(WeightUseTest, ViewsNameTheirDeviceWithoutAskingCudaAboutPointers) {
  ScratchDir dir;
  write_empty_last(dir / "m.safetensors");
  auto device = std::make_shared<FencedDevice>(1ull << 30, /*host_memory=*/false, "cuda:0");
  auto weights = load(dir / "m.safetensors", device);
  auto views = torch_bridge::tensor_views(*weights);
  ASSERT_TRUE(views) << views.error().message;
  const char* arena = static_cast<const char*>(weights->device_data());
  const at::Tensor& x = views->at("x");
  const at::Tensor& z = views->at("z.empty");
  EXPECT_EQ(x.device(), at::Device("cuda:0"));
  EXPECT_EQ(z.device(), at::Device("cuda:0"));
  EXPECT_EQ(x.scalar_type(), at::kFloat);
  EXPECT_EQ(x.sizes(), (at::IntArrayRef{2, 3}));
  EXPECT_EQ(z.sizes(), (at::IntArrayRef{0, 4}));
  EXPECT_EQ(x.data_ptr(), arena + weights->find("x")->offset);
  EXPECT_EQ(z.storage().data_ptr().get(), arena + weights->device_bytes()) << "one past the arena";
}

// The torch layer notes the last use of the weights when a bound network is
// dropped (its last copy), and dropping the device copy waits for it.
TEST(WeightUseTest, ABoundNetworkNotesItsLastUseAndTheFreeWaitsForIt) {
  ScratchDir dir;
  write_empty_last(dir / "m.safetensors");
  auto device = std::make_shared<FencedDevice>(1ull << 30);
  auto weights = load(dir / "m.safetensors", device);
  {
    std::shared_ptr<const void> guard = nn::use_guard(*weights);
    auto copy = guard;
    guard.reset();
    EXPECT_EQ(device->uses_recorded(), 0) << "noted while a copy still runs the network";
  }
  EXPECT_EQ(device->uses_recorded(), 1);
  torch_bridge::note_use(*weights);
  EXPECT_EQ(device->uses_recorded(), 2);
  weights->drop_device();
  EXPECT_EQ(device->uses_waited(), 2);
  EXPECT_EQ(device->frees_with_pending_reads(), 0);
  torch_bridge::note_use(*weights);  // off the device: nothing to note
  EXPECT_EQ(device->uses_recorded(), 2);
}

// The pipeline's dtype: the configured one first (the weights' conversion
// target), else the first floating tensor in file order; never an integer's.
TEST(WeightUseTest, TheNetworksDtypeComesFromTheConfigThenTheFloatingTensors) {
  ScratchDir dir;
  // ids: I64 [2]; d: F64 [1] (never converted); w: F16 [4].
  std::string header = R"({"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},)"
                       R"("d":{"dtype":"F64","shape":[1],"data_offsets":[16,24]},)"
                       R"("w":{"dtype":"F16","shape":[4],"data_offsets":[24,32]}})";
  while (header.size() % 8) header += ' ';
  testing_util::write_file(dir / "m.safetensors", testing_util::le64(header.size()) + header + std::string(32, '\0'));
  std::string ints = R"({"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},)"
                     R"("n":{"dtype":"I32","shape":[2],"data_offsets":[16,24]}})";
  while (ints.size() % 8) ints += ' ';
  testing_util::write_file(dir / "ints.safetensors", testing_util::le64(ints.size()) + ints + std::string(24, '\0'));
  auto device = std::make_shared<CpuDevice>(1ull << 30);
  EXPECT_EQ(nn::weights_dtype(*load(dir / "m.safetensors", device, DType::kBF16)), at::kBFloat16);
  EXPECT_EQ(nn::weights_dtype(*load(dir / "m.safetensors", device, DType::kF32)), at::kFloat);
  EXPECT_EQ(nn::weights_dtype(*load(dir / "m.safetensors", device)), at::kDouble);  // file order: d before w
  EXPECT_EQ(nn::weights_dtype(*load(dir / "ints.safetensors", device)), at::kFloat);
  EXPECT_EQ(nn::weights_dtype(*load(dir / "ints.safetensors", device, DType::kF16)), at::kHalf);
}

}  // namespace
}  // namespace tp
