// The torch layer on a real GPU (label gpu): tensor views of a CUDA arena,
// default_registry_options on cuda:0, the bytes an unload returns to the
// driver, and torch's caching allocator emptied. Each test skips without a
// device (fails in GPU mode, gpu_test_util.h).
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "gpu/gpu_test_util.h"
#include "support/weights_test_util.h"
#include "torch/tensors.h"
#include "twistedpic/registry.h"
#include "twistedpic/runtime.h"
#include "weights/tensor_weights.h"

namespace tp {
namespace {

using gpu_test::Spec;
using testing_util::ScratchDir;

// The bytes of a view, copied to the host.
std::string view_bytes(const at::Tensor& t) {
  at::Tensor host = t.contiguous().cpu();
  return std::string(static_cast<const char*>(host.data_ptr()), host.nbytes());
}

// Views of the mixed fixture (every dtype, an odd offset) plus an empty last
// tensor: each on cuda:0, aliasing the arena at its offset, holding the
// host's bytes; the empty one points one past the arena.
TEST(TensorViewsGpuTest, ViewsAliasTheCudaArenaWithTheHostsValuesAndAnEmptyLastTensor) {
  TP_REQUIRE_GPU();
  ScratchDir dir;
  std::vector<Spec> specs = gpu_test::mixed_specs();
  specs.push_back({"z.empty", DType::kF32, {0, 4}});  // after h.empty: the arena's last tensor
  auto written = gpu_test::write_safetensors(dir / "m.safetensors", specs, 11);
  auto device = make_cuda_device(0).value();
  for (std::optional<DType> to : {std::optional<DType>(), std::optional(DType::kBF16)}) {
    SCOPED_TRACE(to ? "bf16" : "as in the file");
    auto pool = std::make_shared<PinnedPool>(device, 1 << 20, 4);
    auto weights = TensorWeights::open({{dir / "m.safetensors", ""}}, to, device, pool, {1 << 20, 2}).value();
    ASSERT_TRUE(weights->load_to_device({}));
    const WeightTensor* z = weights->find("z.empty");
    ASSERT_NE(z, nullptr);
    ASSERT_EQ(z->offset, weights->device_bytes()) << "the fixture's empty tensor no longer ends the arena";
    EXPECT_EQ(torch_bridge::device_of(*weights), at::Device("cuda:0"));
    auto views = torch_bridge::tensor_views(*weights);
    ASSERT_TRUE(views) << views.error().message;
    const char* arena = static_cast<const char*>(weights->device_data());
    for (const WeightTensor& t : weights->tensors()) {
      SCOPED_TRACE(t.name);
      const at::Tensor& v = views->at(t.name);
      EXPECT_EQ(v.device(), at::Device("cuda:0"));
      EXPECT_EQ(v.scalar_type(), torch_bridge::scalar_type(t.dtype));
      EXPECT_EQ(v.sizes(), at::IntArrayRef(t.shape));
      EXPECT_EQ(v.storage().data_ptr().get(), arena + t.offset);
      EXPECT_EQ(view_bytes(v), gpu_test::expected_bytes(t, written.at(t.name)));
    }
    // torch computes on them: a kernel on torch's stream, noted before the free.
    const at::Tensor& a = views->at("a.f32");
    double sum = a.to(at::kDouble).sum().item<double>();
    EXPECT_TRUE(std::isfinite(sum));
    EXPECT_EQ(views->at("z.empty").sum().item<float>(), 0.0f);
    torch_bridge::note_use(*weights);
    views->clear();
    weights->drop_device();
  }
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

// A 256 MiB model through default_registry_options: the weights are on
// cuda:0, and the unload returns at least 99 % of them to the driver within
// 100 ms (the registry measures it).
TEST(RegistryGpuTest, AnUnloadReturnsTheArenaToTheDriver) {
  TP_REQUIRE_GPU();
  ScratchDir dir;
  const uint64_t mib = 256;
  gpu_test::write_safetensors(dir / "big.safetensors",
                              {{"w", DType::kF16, {static_cast<int64_t>(mib << 19)}}, {"b", DType::kF16, {7}}}, 5);
  auto options = default_registry_options(0);
  ASSERT_TRUE(options) << options.error().message;
  RegistryConfig config;
  ModelConfig m;
  m.name = "big";
  m.source = (dir / "big.safetensors").string();
  m.dtype = DType::kF16;
  config.models.push_back(m);
  auto registry = ModelRegistry::create(config, *options);
  ASSERT_TRUE(registry) << registry.error().message;
  uint64_t device_bytes = 0;
  {
    auto lease = (*registry)->acquire("big");
    ASSERT_TRUE(lease) << lease.error().message;
    auto& w = dynamic_cast<TensorWeights&>(lease->weights());
    EXPECT_EQ(w.device().name(), "cuda:0") << "default_registry_options did not pick the GPU";
    EXPECT_EQ(torch_bridge::device_of(w), at::Device("cuda:0"));
    device_bytes = w.device_bytes();
    EXPECT_GE(device_bytes, mib << 20);
  }
  auto report = (*registry)->unload("big", Tier::kDisk);
  ASSERT_TRUE(report) << report.error().message;
  const double ratio = static_cast<double>(report->bytes_returned) / static_cast<double>(device_bytes);
  std::printf("RESULT test_returned_ratio=%.4f (%llu of %llu bytes)\n", ratio,
              static_cast<unsigned long long>(report->bytes_returned), static_cast<unsigned long long>(device_bytes));
  RecordProperty("returned_ratio", std::to_string(ratio));
  EXPECT_GE(ratio, 0.99);
  EXPECT_EQ((*registry)->stats().device_bytes, 0u);
}

// Torch's caching allocator keeps freed blocks from the driver;
// empty_torch_cuda_cache gives them back.
TEST(RegistryGpuTest, EmptyingTorchsCacheReturnsItsBlocks) {
  TP_REQUIRE_GPU();
  constexpr int64_t kBytes = 256ll << 20;
  empty_torch_cuda_cache();
  // What stays reserved (cuBLAS workspaces of earlier tests in this process, if any).
  const int64_t reserved0 = c10::cuda::CUDACachingAllocator::getDeviceStats(0).reserved_bytes[0].current;
  {
    at::Tensor t = at::empty({kBytes}, at::TensorOptions().dtype(at::kByte).device(at::Device("cuda:0")));
    t.fill_(1);
    ASSERT_EQ(t.device(), at::Device("cuda:0"));
    c10::cuda::device_synchronize();
  }
  const uint64_t cached = gpu_test::free_device_bytes();
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
  EXPECT_GE(stats.reserved_bytes[0].current, reserved0 + kBytes) << "torch no longer caches a freed block";
  empty_torch_cuda_cache();
  const uint64_t after = gpu_test::free_device_bytes();
  std::printf("RESULT test_empty_cache_returned_mib=%.1f\n", (static_cast<double>(after) - cached) / (1 << 20));
  EXPECT_GE(after, cached + static_cast<uint64_t>(kBytes) * 99 / 100) << "emptyCache returned too little";
  EXPECT_LE(c10::cuda::CUDACachingAllocator::getDeviceStats(0).reserved_bytes[0].current, reserved0);
}

}  // namespace
}  // namespace tp
