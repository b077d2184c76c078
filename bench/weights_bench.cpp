// Loading a safetensors file from the page cache: the raw read() ceiling and
// our loader into CPU tensors, side by side. The file comes from
// $TP_BENCH_WEIGHTS (scripts/bench_weights.py makes it and compares with
// safetensors and torch.load in the same run).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "device/device.h"
#include "weights/safetensors.h"
#include "weights/tensor_weights.h"

namespace tp {
namespace {

const char* weights_path() {
  const char* p = std::getenv("TP_BENCH_WEIGHTS");
  return p ? p : "";
}

// The ceiling: one thread read()ing the data section into a buffer already in memory.
void BM_Read_Ceiling(benchmark::State& state) {
  auto header = read_safetensors_header(weights_path());
  if (!header) return state.SkipWithError(header.error().message.c_str());
  std::vector<char> buffer(header->data_bytes);
  for (auto& c : buffer) c = 1;  // touched once, outside the timing
  int fd = open(weights_path(), O_RDONLY | O_CLOEXEC);
  for (auto _ : state) {
    uint64_t done = 0;
    while (done < buffer.size()) {
      ssize_t n = pread(fd, buffer.data() + done, std::min<uint64_t>(buffer.size() - done, 16u << 20),
                        static_cast<off_t>(header->data_offset + done));
      if (n <= 0) return state.SkipWithError("read failed");
      done += static_cast<uint64_t>(n);
    }
    benchmark::DoNotOptimize(buffer.data());
  }
  close(fd);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * header->data_bytes));
}
BENCHMARK(BM_Read_Ceiling)->Unit(benchmark::kMillisecond)->UseRealTime();

// Ours: a fresh arena on the CPU device each time (what a load costs), filled by the engine.
void BM_Load_CpuTensors(benchmark::State& state) {
  auto device = std::make_shared<CpuDevice>(64ull << 30);
  auto pool = std::make_shared<PinnedPool>(device, 16ull << 20, 8);
  auto weights = TensorWeights::open({{weights_path(), ""}}, std::nullopt, device, pool);
  if (!weights) return state.SkipWithError(weights.error().message.c_str());
  for (auto _ : state) {
    if (auto st = (*weights)->load_to_device({}); !st) return state.SkipWithError(st.error().message.c_str());
    state.PauseTiming();
    (*weights)->drop_device();
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * (*weights)->device_bytes()));
}
BENCHMARK(BM_Load_CpuTensors)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace tp

BENCHMARK_MAIN();
