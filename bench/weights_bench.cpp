// Loading a safetensors file from the page cache: the raw read() ceiling and
// our loader into CPU tensors, side by side. The file comes from
// $TP_BENCH_WEIGHTS (scripts/bench_weights.py makes it and compares with
// safetensors and torch.load in the same run).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <set>
#include <thread>
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

// The ceiling: state.range(0) threads pread()ing the data section, each its own
// contiguous share, into a buffer already in memory. bench_weights.py takes the
// best of 1, 2 and every core, since our loader reads with several threads.
void BM_Read_Ceiling(benchmark::State& state) {
  auto header = read_safetensors_header(weights_path());
  if (!header) return state.SkipWithError(header.error().message.c_str());
  std::vector<char> buffer(header->data_bytes);
  for (auto& c : buffer) c = 1;  // touched once, outside the timing
  const int fd = open(weights_path(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return state.SkipWithError("cannot open the weights");
  const uint64_t threads = static_cast<uint64_t>(state.range(0));
  const uint64_t share = (buffer.size() + threads - 1) / threads;
  auto read_range = [&](uint64_t begin, uint64_t end) {
    for (uint64_t done = begin; done < end;) {
      const ssize_t n = pread(fd, buffer.data() + done, std::min<uint64_t>(end - done, 16u << 20),
                              static_cast<off_t>(header->data_offset + done));
      if (n <= 0) return false;
      done += static_cast<uint64_t>(n);
    }
    return true;
  };
  for (auto _ : state) {
    std::vector<std::thread> workers;
    std::atomic<bool> ok{true};
    for (uint64_t t = 0; t < threads; ++t) {
      const uint64_t begin = std::min<uint64_t>(t * share, buffer.size());
      const uint64_t end = std::min<uint64_t>(begin + share, buffer.size());
      workers.emplace_back([&, begin, end] {
        if (!read_range(begin, end)) ok = false;
      });
    }
    for (auto& w : workers) w.join();
    if (!ok) {
      close(fd);
      return state.SkipWithError("read failed");
    }
    benchmark::DoNotOptimize(buffer.data());
  }
  close(fd);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * header->data_bytes));
}
BENCHMARK(BM_Read_Ceiling)
    ->Apply([](benchmark::internal::Benchmark* b) {
      const std::set<int64_t> threads{1, 2, std::max<int64_t>(1, std::thread::hardware_concurrency())};
      for (int64_t n : threads) b->Arg(n);
    })
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Ours: a fresh arena on the CPU device each time (what a load costs), filled by the engine.
void BM_Load_CpuTensors(benchmark::State& state) {
  auto device = std::make_shared<CpuDevice>(64ull << 30);
  auto pool = std::make_shared<PinnedPool>(device, 16ull << 20, 8);
  auto weights = TensorWeights::open({{weights_path(), ""}}, std::nullopt, device, pool);
  if (!weights) return state.SkipWithError(weights.error().message.c_str());
  // One untimed load first, in every repetition: the first load of a fresh
  // device and pool is several times slower (first touches), and it is not
  // what a reload costs.
  if (auto st = (*weights)->load_to_device({}); !st) return state.SkipWithError(st.error().message.c_str());
  (*weights)->drop_device();
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
