// GPU tests (label: gpu): the CUDA runtime, the monitor, the convert kernel and
// the CUDA device. Each skips cleanly without a usable CUDA device, and fails
// instead in GPU mode (TP_GPU_REQUIRED=1, gpu_test_util.h).
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <tuple>
#include <vector>

#include <cuda_runtime_api.h>

#include "cuda/cuda_runtime.h"
#include "device/device.h"
#include "gpu/gpu_test_util.h"
#include "support/weights_test_util.h"
#include "twistedpic/device_monitor.h"
#include "weights/tensor_weights.h"

namespace tp {
namespace {

TEST(CudaMonitorTest, UnavailableWithoutGpuIsAnErrorNotACrash) {
  auto n = cuda::device_count();
  auto m = make_cuda_device_monitor(0);
  EXPECT_EQ(n.has_value(), m.has_value());
  if (!n) {
    EXPECT_EQ(m.error().code, ErrorCode::kUnavailable) << m.error().message;
  }
}

TEST(CudaMonitorTest, FreeMemoryFollowsAllocationsAndFreesReturnToTheDriver) {
  TP_REQUIRE_GPU();
  auto monitor = make_cuda_device_monitor(0).value();
  DeviceMemoryInfo before = monitor->query().value();
  EXPECT_GT(before.total_bytes, 0u);
  EXPECT_LE(before.free_bytes, before.total_bytes);
  constexpr size_t kBytes = 1ull << 30;
  void* p = nullptr;
  ASSERT_EQ(cudaMalloc(&p, kBytes), cudaSuccess);
  ASSERT_EQ(cudaMemset(p, 1, kBytes), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  DeviceMemoryInfo held = monitor->query().value();
  EXPECT_GE(before.free_bytes - held.free_bytes, kBytes);
  if (held.process_bytes > 0) {
    EXPECT_GE(held.process_bytes, kBytes);  // NVML per-process accounting works here
  }
  ASSERT_EQ(cudaFree(p), cudaSuccess);
  auto t0 = std::chrono::steady_clock::now();
  DeviceMemoryInfo after{};
  do {
    after = monitor->query().value();
  } while (after.free_bytes - held.free_bytes < kBytes * 99 / 100 &&
           std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(100));
  EXPECT_GE(after.free_bytes - held.free_bytes, kBytes * 99 / 100) << "freed memory did not return within 100 ms";
}

uint16_t bf16_round(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fff + ((u >> 16) & 1);  // round to nearest even
  return static_cast<uint16_t>(u >> 16);
}

TEST(CudaConvertTest, Fp32ToBf16MatchesHostRounding) {
  TP_REQUIRE_GPU();
  constexpr size_t n = 1 << 20;
  std::vector<float> host(n);
  for (size_t i = 0; i < n; ++i) host[i] = static_cast<float>(i) * 0.37f - 1000.0f;
  void* src = nullptr;
  void* dst = nullptr;
  ASSERT_EQ(cudaMalloc(&src, n * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dst, n * 2), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(src, host.data(), n * 4, cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_TRUE(cuda::convert(src, DType::kF32, dst, DType::kBF16, n, nullptr));
  std::vector<uint16_t> out(n);
  ASSERT_EQ(cudaMemcpy(out.data(), dst, n * 2, cudaMemcpyDeviceToHost), cudaSuccess);
  size_t mismatches = 0;
  for (size_t i = 0; i < n; ++i) mismatches += out[i] != bf16_round(host[i]);
  EXPECT_EQ(mismatches, 0u);
  cudaFree(src);
  cudaFree(dst);
}

// A misaligned typed access kills the context (cudaErrorMisalignedAddress):
// convert refuses before launching, so this needs no GPU.
TEST(CudaConvertTest, RefusesMisalignedPointersBeforeLaunching) {
  auto* aligned = reinterpret_cast<void*>(uintptr_t{0x10000});
  auto* odd = reinterpret_cast<void*>(uintptr_t{0x10001});
  auto* even = reinterpret_cast<void*>(uintptr_t{0x10002});
  for (auto [src, from, dst, to] : {std::tuple{odd, DType::kF32, aligned, DType::kBF16},
                                    std::tuple{even, DType::kF32, aligned, DType::kF16},
                                    std::tuple{aligned, DType::kF16, even, DType::kF32},
                                    std::tuple{odd, DType::kBF16, aligned, DType::kF32}}) {
    Status st = cuda::convert(src, from, dst, to, 16, nullptr);
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument) << st.error().message;
  }
}

// The engine on a GPU: a tensor at an odd file offset converted to BF16
// (kMixed's "g.scalar" case), the use fences, and the arena's end.
TEST(CudaDeviceTest, LoadsAnOddlyPlacedTensorConvertedAndFreesAfterUses) {
  TP_REQUIRE_GPU();
  testing_util::ScratchDir dir;
  // u: U8 [7] at [0, 7); f: F32 [1000] at [7, 4007); e: F16 [0] at the end.
  std::string header = R"({"u":{"dtype":"U8","shape":[7],"data_offsets":[0,7]},)"
                       R"("f":{"dtype":"F32","shape":[1000],"data_offsets":[7,4007]},)"
                       R"("e":{"dtype":"F16","shape":[0],"data_offsets":[4007,4007]}})";
  while (header.size() % 8) header += ' ';
  std::string data(7, '\x01');
  std::vector<float> f(1000);
  for (size_t i = 0; i < f.size(); ++i) f[i] = static_cast<float>(i) * 0.37f - 100.0f;
  data.append(reinterpret_cast<const char*>(f.data()), f.size() * 4);
  testing_util::write_file(dir / "m.safetensors", testing_util::le64(header.size()) + header + data);
  auto device = make_cuda_device(0, 2).value();
  auto pool = std::make_shared<PinnedPool>(device, 16ull << 20, 4);
  auto weights = TensorWeights::open({{dir / "m.safetensors", ""}}, DType::kBF16, device, pool).value();
  auto st = weights->load_to_device({});
  ASSERT_TRUE(st) << st.error().message;
  const WeightTensor* t = weights->find("f");
  std::vector<uint16_t> out(1000);
  ASSERT_EQ(cudaMemcpy(out.data(), static_cast<char*>(weights->device_data()) + t->offset, 2000, cudaMemcpyDeviceToHost),
            cudaSuccess);
  size_t mismatches = 0;
  for (size_t i = 0; i < f.size(); ++i) mismatches += out[i] != bf16_round(f[i]);
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(weights->find("e")->offset, weights->device_bytes());

  // Work on a user stream that reads the arena; the free waits for it.
  cudaStream_t user = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&user, cudaStreamNonBlocking), cudaSuccess);
  void* sink = nullptr;
  ASSERT_EQ(cudaMalloc(&sink, 64ull << 20), cudaSuccess);
  for (int i = 0; i < 64; ++i)  // slow enough to be pending at the free
    ASSERT_EQ(cudaMemsetAsync(sink, i, 64ull << 20, user), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(sink, weights->device_data(), weights->device_bytes(), cudaMemcpyDeviceToDevice, user),
            cudaSuccess);
  weights->note_use(user);
  weights->drop_device();
  EXPECT_EQ(cudaStreamQuery(user), cudaSuccess) << "the arena was freed before the work that read it";
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  cudaFree(sink);
  cudaStreamDestroy(user);
}

}  // namespace
}  // namespace tp
