// GPU tests (label: gpu). Each skips cleanly without a usable CUDA device.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include <cuda_runtime_api.h>

#include "cuda/cuda_runtime.h"
#include "twistedpic/device_monitor.h"

namespace tp {
namespace {

#define TP_REQUIRE_GPU()                                                     \
  do {                                                                       \
    auto n = cuda::device_count();                                           \
    if (!n) GTEST_SKIP() << "no usable CUDA device: " << n.error().message;  \
  } while (0)

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

}  // namespace
}  // namespace tp
