// The transfer engine on a real GPU (label gpu): TensorWeights through the
// CUDA device's pinned staging, its non-blocking lanes and the convert
// kernel, read back with a plain cudaMemcpy and compared byte for byte with
// the host's conversion of the file. Each test skips without a device (fails
// in GPU mode, gpu_test_util.h).
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "device/device.h"
#include "gpu/gpu_test_util.h"
#include "support/weights_test_util.h"
#include "weights/tensor_weights.h"

namespace tp {
namespace {

using gpu_test::mismatched_tensors;
using gpu_test::read_arena;
using gpu_test::Spec;
using testing_util::ScratchDir;

std::string dtype_label(std::optional<DType> d) {
  return d ? std::string(dtype_safetensors_name(*d)) : std::string("none");
}

std::shared_ptr<Device> cuda0() {
  auto d = make_cuda_device(0, 4);
  EXPECT_TRUE(d) << d.error().message;
  if (!d) return nullptr;
  EXPECT_EQ((*d)->name(), "cuda:0");
  return *d;
}

// Loads `file` with the given options, compares the arena with the host's
// bytes, frees it, and checks that the device got its memory back.
void load_and_compare(const std::shared_ptr<Device>& device, const std::filesystem::path& file,
                      const std::map<std::string, std::string>& written, std::optional<DType> to, uint64_t chunk,
                      int readers) {
  const std::string what = "to " + dtype_label(to) + ", chunk " + std::to_string(chunk) + ", " +
                           std::to_string(readers) + " reader(s)";
  SCOPED_TRACE(what);
  TransferOptions o;
  o.chunk_bytes = chunk;
  o.readers = readers;
  auto pool = std::make_shared<PinnedPool>(device, chunk, 2 * static_cast<size_t>(readers));
  auto weights = TensorWeights::open({{file, ""}}, to, device, pool, o);
  ASSERT_TRUE(weights) << weights.error().message;
  auto st = (*weights)->load_to_device({});
  ASSERT_TRUE(st) << st.error().to_string();
  ASSERT_TRUE((*weights)->on_device());
  const std::string arena = read_arena(**weights);
  EXPECT_EQ(mismatched_tensors(**weights, arena, written, what), 0);
  for (const WeightTensor& t : (*weights)->tensors()) EXPECT_EQ(t.offset % 256, 0u) << t.name;
  (*weights)->drop_device();
  EXPECT_FALSE((*weights)->on_device());
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

// The comparison the tests below rely on, checked on the CPU device (no GPU
// needed, so it runs everywhere): it passes a correct arena in every dtype,
// and catches a single wrong byte.
TEST(GpuFixtureTest, TheComparisonPassesACorrectArenaAndCatchesOneWrongByte) {
  ScratchDir dir;
  auto written = gpu_test::write_safetensors(dir / "m.safetensors", gpu_test::mixed_specs());
  auto device = std::make_shared<CpuDevice>(1ull << 30);
  for (std::optional<DType> to : {std::optional<DType>(), std::optional(DType::kBF16), std::optional(DType::kF16),
                                  std::optional(DType::kF32)}) {
    SCOPED_TRACE("to " + dtype_label(to));
    auto pool = std::make_shared<PinnedPool>(device, 4104, 4);
    auto weights = TensorWeights::open({{dir / "m.safetensors", ""}}, to, device, pool, {4104, 2}).value();
    ASSERT_TRUE(weights->load_to_device({}));
    std::string arena(static_cast<const char*>(weights->device_data()), weights->device_bytes());
    EXPECT_EQ(mismatched_tensors(*weights, arena, written, "cpu"), 0);
    arena[weights->find("g.scalar")->offset + 1] ^= 0x10;
    ::testing::TestPartResultArray failures;
    int bad = 0;
    {
      ::testing::ScopedFakeTestPartResultReporter reporter(
          ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &failures);
      bad = mismatched_tensors(*weights, arena, written, "cpu");
    }
    EXPECT_EQ(bad, 1);
    ASSERT_EQ(failures.size(), 1);
    EXPECT_NE(std::string(failures.GetTestPartResult(0).message()).find("g.scalar"), std::string::npos);
  }
}

// Every chunk size from 64 B to 16 MiB, 1 and 4 readers, with and without
// conversion: the pieces of a tensor cross chunks, readers and lanes.
TEST(TensorWeightsGpuTest, ChunkSizesReadersAndConversionsMatchTheHostByteForByte) {
  TP_REQUIRE_GPU();
  ScratchDir dir;
  const std::vector<Spec> specs = {{"w.f32", DType::kF32, {257, 131}},  {"odd.u8", DType::kU8, {3}},
                                   {"w.f16", DType::kF16, {1023, 65}},  {"w.bf16", DType::kBF16, {333, 97}},
                                   {"ids.i64", DType::kI64, {11}},      {"v.f32", DType::kF32, {4097}},
                                   {"tail.f16", DType::kF16, {0}}};
  auto written = gpu_test::write_safetensors(dir / "m.safetensors", specs, 7);
  auto device = cuda0();
  ASSERT_TRUE(device);
  // A first load with conversion loads the kernels' module (lazy loading takes device memory once).
  load_and_compare(device, dir / "m.safetensors", written, DType::kBF16, 1ull << 20, 4);
  const uint64_t free_before = gpu_test::free_device_bytes();
  for (std::optional<DType> to : {std::optional<DType>(), std::optional(DType::kBF16), std::optional(DType::kF16),
                                  std::optional(DType::kF32)})
    for (uint64_t chunk : {64ull, 4104ull, 1ull << 20, 16ull << 20})
      for (int readers : {1, 4}) load_and_compare(device, dir / "m.safetensors", written, to, chunk, readers);
  // Arenas and staging scratch are cudaMalloc'd outside any cache: all of it went back.
  EXPECT_GE(gpu_test::free_device_bytes() + (2ull << 20), free_before);
}

// The repository's mixed fixture: "g.scalar" (F32) sits at data offset 6039,
// so a converted piece staged where it lies in the file would be misaligned
// (cudaErrorMisalignedAddress, fatal to the context).
TEST(TensorWeightsGpuTest, TheMixedOddOffsetFixtureLoadsInEveryDtypeAndChunking) {
  TP_REQUIRE_GPU();
  ScratchDir dir;
  auto written = gpu_test::write_safetensors(dir / "m.safetensors", gpu_test::mixed_specs());
  auto device = cuda0();
  ASSERT_TRUE(device);
  {
    auto pool = std::make_shared<PinnedPool>(device, 1 << 20, 2);
    auto probe = TensorWeights::open({{dir / "m.safetensors", ""}}, DType::kBF16, device, pool).value();
    ASSERT_NE(probe->find("g.scalar"), nullptr);
    ASSERT_NE(probe->find("g.scalar")->file_offset % 4, 0u) << "the fixture no longer has a misaligned F32 tensor";
  }
  for (std::optional<DType> to : {std::optional<DType>(), std::optional(DType::kBF16), std::optional(DType::kF16),
                                  std::optional(DType::kF32)})
    for (uint64_t chunk : {64ull, 256ull, 4104ull, 16ull << 20})
      for (int readers : {1, 4}) load_and_compare(device, dir / "m.safetensors", written, to, chunk, readers);
}

// The device scratch pool (issue #23): converting loads on the GPU borrow
// their staging scratch from the pool (cudaMalloc'd once, not per load, and
// no device-stalling cudaFree after each), and trim() hands it back to the
// driver, measured by cudaMemGetInfo.
TEST(TensorWeightsGpuTest, ScratchIsPooledAcrossLoadsAndTrimmedBackToTheDriver) {
  TP_REQUIRE_GPU();
  ScratchDir dir;
  auto written = gpu_test::write_safetensors(dir / "m.safetensors", {{"w.f32", DType::kF32, {8 << 20}}}, 3);
  auto device = cuda0();
  ASSERT_TRUE(device);
  TransferOptions o;
  o.chunk_bytes = 4ull << 20;
  o.readers = 2;
  auto pinned = std::make_shared<PinnedPool>(device, o.chunk_bytes, 4);
  auto scratch = std::make_shared<ScratchPool>(device, o.chunk_bytes, 4);
  auto weights = TensorWeights::open({{dir / "m.safetensors", ""}}, DType::kBF16, device, pinned, o, scratch).value();
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(weights->load_to_device({}));
    EXPECT_EQ(mismatched_tensors(*weights, read_arena(*weights), written, "load " + std::to_string(i)), 0);
    weights->drop_device();
  }
  const uint64_t held = scratch->held_bytes();
  EXPECT_GE(scratch->allocations(), 2u);
  EXPECT_LE(scratch->allocations(), 4u) << "4 loads x 2 readers x 2 buffers would be 16 without the pool";
  EXPECT_EQ(held, scratch->allocations() * o.chunk_bytes);
  const uint64_t free_before = gpu_test::free_device_bytes();
  EXPECT_EQ(scratch->trim(), held);
  EXPECT_EQ(scratch->held_bytes(), 0u);
  // cudaFree returns whole 2 MiB pages; the buffers are 4 MiB each.
  EXPECT_GE(gpu_test::free_device_bytes() + (2ull << 20), free_before + held);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

// offload -> reload from the pinned host tier -> reload from disk, bytes equal
// each time, and the device's memory returned at every unload.
TEST(TensorWeightsGpuTest, OffloadThenReloadFromHostThenFromDisk) {
  TP_REQUIRE_GPU();
  ScratchDir dir;
  // ~48 MiB across several tensors, one of them at an odd offset.
  const std::vector<Spec> specs = {{"a.f32", DType::kF32, {2048, 2048}}, {"b.u8", DType::kU8, {5}},
                                   {"c.f16", DType::kF16, {4096, 1024}}, {"d.bf16", DType::kBF16, {1024, 4097}},
                                   {"e.f32", DType::kF32, {3, 1000}}};
  auto written = gpu_test::write_safetensors(dir / "m.safetensors", specs, 3);
  auto device = cuda0();
  ASSERT_TRUE(device);
  for (std::optional<DType> to : {std::optional<DType>(), std::optional(DType::kBF16)}) {
    SCOPED_TRACE("to " + dtype_label(to));
    TransferOptions o;
    o.chunk_bytes = 4ull << 20;
    o.readers = 4;
    auto pool = std::make_shared<PinnedPool>(device, o.chunk_bytes, 8);
    auto weights = TensorWeights::open({{dir / "m.safetensors", ""}}, to, device, pool, o).value();
    const uint64_t free0 = gpu_test::free_device_bytes();
    ASSERT_TRUE(weights->load_to_device({}));
    EXPECT_EQ(mismatched_tensors(*weights, read_arena(*weights), written, "from disk"), 0);

    ASSERT_TRUE(weights->offload_to_host({}));
    EXPECT_FALSE(weights->on_device());
    ASSERT_NE(weights->host_data(), nullptr);
    EXPECT_EQ(weights->host_bytes(), weights->device_bytes());
    EXPECT_GE(gpu_test::free_device_bytes() + (16ull << 20), free0) << "the offload kept device memory";
    cudaPointerAttributes attr{};
    ASSERT_EQ(cudaPointerGetAttributes(&attr, weights->host_data()), cudaSuccess);
    EXPECT_EQ(attr.type, cudaMemoryTypeHost) << "the host tier is not pinned";

    ASSERT_TRUE(weights->load_to_device({}));  // from the host tier
    EXPECT_EQ(mismatched_tensors(*weights, read_arena(*weights), written, "from the host tier"), 0);
    weights->drop_host();
    weights->drop_device();
    EXPECT_EQ(weights->host_bytes(), 0u);
    ASSERT_TRUE(weights->load_to_device({}));  // from disk again
    EXPECT_EQ(mismatched_tensors(*weights, read_arena(*weights), written, "from disk again"), 0);
    weights->drop_device();
    EXPECT_GE(gpu_test::free_device_bytes() + (16ull << 20), free0);
  }
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

// A 1-2 GiB model (TP_GPU_BIG_MIB, default 1024) in 64 MiB tensors, loaded in
// 16 MiB chunks by 4 readers, five times: every load byte-exact, every
// unload gives the arena back.
TEST(TensorWeightsGpuTest, AMultiChunkLoadOfAGibibyteFiveTimes) {
  TP_REQUIRE_GPU();
  const uint64_t mib = std::stoull(gpu_test::env_or("TP_GPU_BIG_MIB", "1024"));
  ASSERT_GE(mib, 64u);
  ScratchDir dir;
  const uint64_t tensor_bytes = 64ull << 20;
  const uint64_t count = mib / 64;
  std::string header = "{";
  for (uint64_t i = 0; i < count; ++i)
    header += (i ? "," : "") + std::string("\"t") + std::to_string(i) + "\":{\"dtype\":\"F16\",\"shape\":[" +
              std::to_string(tensor_bytes / 2) + "],\"data_offsets\":[" + std::to_string(i * tensor_bytes) + "," +
              std::to_string((i + 1) * tensor_bytes) + "]}";
  header += "}";
  while (header.size() % 8) header += ' ';
  std::string data(count * tensor_bytes, '\0');
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t k = 0; k + 8 <= data.size(); k += 8) {  // xorshift64: fast, and no two tensors alike
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::memcpy(&data[k], &x, 8);
  }
  {
    std::ofstream out(dir / "big.safetensors", std::ios::binary);
    const std::string prefix = testing_util::le64(header.size()) + header;
    out.write(prefix.data(), static_cast<std::streamsize>(prefix.size()));
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    ASSERT_TRUE(out.good());
  }
  auto device = cuda0();
  ASSERT_TRUE(device);
  TransferOptions o;  // the defaults: 16 MiB chunks, 4 readers
  auto pool = std::make_shared<PinnedPool>(device, o.chunk_bytes, 8);
  auto weights = TensorWeights::open({{dir / "big.safetensors", ""}}, std::nullopt, device, pool, o).value();
  const uint64_t free0 = gpu_test::free_device_bytes();
  std::string arena;
  double best_s = 1e9;
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    auto t0 = std::chrono::steady_clock::now();
    auto st = weights->load_to_device({});
    ASSERT_TRUE(st) << st.error().to_string();
    best_s = std::min(best_s, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    arena = read_arena(*weights);
    size_t bad = 0;
    for (const WeightTensor& t : weights->tensors())
      bad += arena.compare(t.offset, t.bytes, data, t.file_offset - 8 - header.size(), t.bytes) != 0;
    EXPECT_EQ(bad, 0u);
    weights->drop_device();
    EXPECT_GE(gpu_test::free_device_bytes() + (16ull << 20), free0) << "the arena did not go back";
  }
  std::printf("RESULT big_load_gib_per_s=%.2f (%llu MiB, best of 5, page cache)\n",
              static_cast<double>(count * tensor_bytes) / (1ull << 30) / best_s, static_cast<unsigned long long>(mib));
  EXPECT_LE(pool->allocations(), 8u) << "staging buffers were not reused across loads";
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

}  // namespace
}  // namespace tp
