// Registry hot paths: acquire+release of a resident model, list() and victim
// selection at 1000 models. BM_Mutex_LockUnlock is the in-run reference.
#include <benchmark/benchmark.h>

#include <mutex>

#include "twistedpic/registry.h"
#include "twistedpic/testing/simulated_backend.h"
#include "twistedpic/testing/simulated_device.h"

namespace tp {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

std::unique_ptr<ModelRegistry> make_registry(int models, uint64_t bytes_each) {
  auto device = std::make_shared<SimulatedDevice>(static_cast<uint64_t>(models) * bytes_each * 2);
  RegistryConfig c;
  for (int i = 0; i < models; ++i) {
    ModelConfig m;
    m.name = "model_" + std::to_string(i);
    m.source = "/models/" + m.name;
    m.size_bytes = bytes_each;
    m.priority = i % 5;
    c.models.push_back(m);
  }
  c.host_budget_bytes = 0;
  RegistryOptions o;
  o.backend = std::make_shared<SimulatedBackend>(device);
  o.monitor = device;
  o.background_thread = false;
  return ModelRegistry::create(std::move(c), std::move(o)).value();
}

void BM_Mutex_LockUnlock(benchmark::State& state) {
  static std::mutex mu;
  for (auto _ : state) {
    std::lock_guard<std::mutex> lock(mu);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_Mutex_LockUnlock)->Threads(1)->Threads(2);

void BM_Registry_AcquireRelease(benchmark::State& state) {
  static std::unique_ptr<ModelRegistry> registry;
  if (state.thread_index() == 0) {
    registry = make_registry(4, kMiB);
    for (int i = 0; i < 4; ++i) (void)registry->preload("model_" + std::to_string(i));
  }
  // Google Benchmark starts the timing loop on every thread only after thread 0's setup.
  const std::string name = "model_" + std::to_string(state.thread_index() % 4);
  for (auto _ : state) {
    auto lease = registry->acquire(name);
    benchmark::DoNotOptimize(lease);
  }
  if (state.thread_index() == 0) state.counters["models"] = 4;
}
BENCHMARK(BM_Registry_AcquireRelease)->Threads(1)->Threads(2)->UseRealTime();

void BM_Registry_List1000(benchmark::State& state) {
  auto registry = make_registry(1000, kMiB);
  for (int i = 0; i < 1000; i += 2) (void)registry->preload("model_" + std::to_string(i));
  for (auto _ : state) {
    auto rows = registry->list();
    benchmark::DoNotOptimize(rows.data());
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_Registry_List1000);

void BM_Policy_RankVictims1000(benchmark::State& state) {
  std::vector<ModelConfig> configs(1000);
  RegistryView view;
  view.host_budget_bytes = 400 * kMiB;
  for (int i = 0; i < 1000; ++i) {
    configs[i].name = "model_" + std::to_string(i);
    configs[i].priority = i % 5;
    ModelView v;
    v.config = &configs[i];
    v.name = configs[i].name;
    v.state = ModelState::kResident;
    v.device_bytes = v.weight_bytes = (1 + i % 7) * kMiB;
    v.leases = i % 10 == 0 ? 1 : 0;
    v.last_use = TimePoint(std::chrono::seconds((i * 7919) % 1000));
    view.models.push_back(v);
  }
  for (auto _ : state) {
    auto victims = rank_victims(view, 500 * kMiB, Reason::kPressure);
    benchmark::DoNotOptimize(victims.data());
  }
}
BENCHMARK(BM_Policy_RankVictims1000);

}  // namespace
}  // namespace tp

BENCHMARK_MAIN();
