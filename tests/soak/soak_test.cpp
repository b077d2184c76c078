// The soak test: N threads run random registry operations across every policy
// setup for a bounded time, checking invariants as they go and at quiescent
// checkpoints, while the resident set size must stay bounded.
//
//   TP_SOAK_SECONDS   total duration (default 10, for CI); 0: a fixed, small number of operations
//   TP_SOAK_THREADS   worker threads (default 4)
//
// The registry runs over a SimulatedDevice and a SimulatedBackend with a
// ManualClock, so it is torch-free and runs under TSAN too. Setups are run
// round-robin, each for a slice of the duration, with a fresh registry each
// time (creation and destruction are soaked too). The first round is the
// warm-up; RSS is read after it and at the end.
//
// Operations: acquire (sometimes pre-cancelled) and hold for a while, release,
// preload, unload to host or disk, unload_all, tick after advancing the clock,
// list, info, stats, plan, other processes' usage changing on the device, and
// injected failures (device allocations, disk reads, pinned host copies).
//
// Invariants, continuously: a leased model is on the device; in list(), a
// model with leases is resident and device bytes are held exactly by the
// resident or unloading ones; host bytes never exceed the host budget; every
// error is one the operation may return. At each checkpoint (threads joined,
// no lease live): accounted device bytes == SimulatedDevice::allocated_bytes(),
// host bytes == SimulatedBackend::host_bytes(), states settled, and
// unload_all(disk) returns every byte.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "twistedpic/registry.h"
#include "twistedpic/testing/manual_clock.h"
#include "twistedpic/testing/simulated_backend.h"
#include "twistedpic/testing/simulated_device.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TP_SOAK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TP_SOAK_SANITIZED 1
#endif
#endif

namespace tp {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;
constexpr int kModels = 8;
constexpr uint64_t kDeviceBytes = 8 * kGiB;
constexpr uint64_t kHostBudget = 6 * kGiB;

#ifdef TP_SOAK_SANITIZED
// ASan's quarantine alone holds up to 256 MiB of freed memory.
constexpr uint64_t kMaxRssGrowth = 384 * kMiB;
#else
constexpr uint64_t kMaxRssGrowth = 32 * kMiB;
#endif

double env_number(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  double d = std::strtod(v, &end);
  return end && *end == '\0' && d >= 0 ? d : fallback;
}

uint64_t rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

// ---- the setups -------------------------------------------------------------------

struct PolicySetup {
  std::string name;
  std::function<void(RegistryConfig&)> apply;
  uint64_t host_capacity = 0;  // SimulatedBackend's pinned limit; 0: none
};

ModelConfig model(int i) {
  ModelConfig m;
  m.name = "m" + std::to_string(i);
  m.source = "/models/" + m.name;
  m.size_bytes = (1 + i % 3) * kGiB;
  return m;
}

std::vector<PolicySetup> setups() {
  auto preset = [](const char* name) {
    return [name](RegistryConfig& c) {
      c.preset = name;
      c.policy = policy_preset(name).value();
    };
  };
  return {
      {"lazy", [](RegistryConfig&) {}},
      {"unload_after_host", [](RegistryConfig& c) { c.policy.unload_after = Tier::kHost; }},
      {"unload_after_disk", [](RegistryConfig& c) { c.policy.unload_after = Tier::kDisk; }},
      {"lru_count", [](RegistryConfig& c) { c.policy.lru_max_models = 2; }},
      {"lru_bytes", [](RegistryConfig& c) { c.policy.lru_max_bytes = 4 * kGiB; }},
      {"idle_timeout_host",
       [](RegistryConfig& c) {
         c.policy.idle_timeout_s = 3;
         c.policy.idle_unload_to = Tier::kHost;
       }},
      {"idle_timeout_disk",
       [](RegistryConfig& c) {
         c.policy.idle_timeout_s = 2;
         c.policy.idle_unload_to = Tier::kDisk;
       }},
      {"idle_timeout_zero", [](RegistryConfig& c) { c.policy.idle_timeout_s = 0; }},
      {"pressure_headroom", [](RegistryConfig& c) { c.policy.min_free_bytes = 2 * kGiB; }},
      {"device_budget", [](RegistryConfig& c) { c.device_budget_bytes = 5 * kGiB; }},
      {"pinned_priority_mix",
       [](RegistryConfig& c) {
         for (int i = 0; i < kModels; ++i) {
           c.models[i].priority = (i * 5) % 4 - 1;
           c.models[i].pinned = i == 2 || i == 7;
           c.models[i].workspace_bytes = (i % 2) * 256 * kMiB;
         }
         c.policy.eager = true;  // pinned first, then by priority, within the budget
       }},
      {"per_model_overrides",
       [](RegistryConfig& c) {
         c.policy.unload_after = Tier::kHost;
         c.policy.lru_max_models = 3;
         c.models[0].policy.unload_after = Tier::kDevice;
         c.models[1].policy.unload_after = Tier::kDisk;
         c.models[2].policy.idle_timeout_s = 1;
         c.models[2].policy.idle_unload_to = Tier::kDisk;
         c.models[3].eager = true;
         c.models[4].pinned = true;
         c.models[5].priority = 9;
       }},
      {"host_capacity", [](RegistryConfig& c) { c.policy.unload_after = Tier::kHost; }, 3 * kGiB},
      {"preset_max_gpu_availability", preset("max_gpu_availability")},
      {"preset_balanced", preset("balanced")},
      {"preset_max_speed", preset("max_speed")},
      {"everything",
       [](RegistryConfig& c) {
         c.policy.unload_after = Tier::kHost;
         c.policy.idle_timeout_s = 4;
         c.policy.lru_max_models = 4;
         c.policy.lru_max_bytes = 6 * kGiB;
         c.policy.min_free_bytes = 1 * kGiB;
         c.models[6].pinned = true;
         c.models[1].priority = 3;
       }},
  };
}

// ---- one run of one setup ----------------------------------------------------------

struct Totals {
  std::atomic<uint64_t> ops{0}, leases{0}, failures_injected{0}, expected_errors{0};
};

struct SoakRun {
  std::shared_ptr<SimulatedDevice> device = std::make_shared<SimulatedDevice>(kDeviceBytes);
  std::shared_ptr<SimulatedBackend> backend;
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  std::unique_ptr<ModelRegistry> registry;

  explicit SoakRun(const PolicySetup& s) {
    SimulatedBackend::Hooks hooks;
    hooks.host_capacity_bytes = s.host_capacity;
    backend = std::make_shared<SimulatedBackend>(device, hooks);
    RegistryConfig c;
    for (int i = 0; i < kModels; ++i) c.models.push_back(model(i));
    c.host_budget_bytes = kHostBudget;
    c.admission_timeout = std::chrono::milliseconds(1);
    s.apply(c);
    RegistryOptions o;
    o.backend = backend;
    o.monitor = device;
    o.clock = clock;
    o.background_thread = false;
    auto r = ModelRegistry::create(std::move(c), std::move(o));
    EXPECT_TRUE(r) << r.error().to_string();
    if (r) registry = std::move(*r);
  }
};

// Invariant violations: counted, and the first few described.
class Violations {
 public:
  void add(std::string what) {
    ++count_;
    std::lock_guard<std::mutex> lock(mu_);
    if (first_.size() < 8) first_.push_back(std::move(what));
  }
  uint64_t count() const { return count_.load(); }
  std::string describe() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const auto& w : first_) out += "\n  " + w;
    return out;
  }

 private:
  std::atomic<uint64_t> count_{0};
  mutable std::mutex mu_;
  std::vector<std::string> first_;
};

std::string row(const ModelInfo& m) {
  return m.name + " state=" + std::string(state_name(m.state)) + " leases=" + std::to_string(m.leases) +
         " device_bytes=" + std::to_string(m.device_bytes) + " host_bytes=" + std::to_string(m.host_bytes);
}

// A snapshot of list() must be coherent: it is taken under the registry's lock.
void check_host_bytes(uint64_t host, const char* where, Violations& violations) {
  if (host > kHostBudget)
    violations.add(std::string(where) + ": host bytes " + std::to_string(host) + " over the budget " +
                   std::to_string(kHostBudget));
}

void check_snapshot(const std::vector<ModelInfo>& rows, Violations& violations) {
  uint64_t host = 0;
  for (const ModelInfo& m : rows) {
    bool holds_device = m.state == ModelState::kResident || m.state == ModelState::kUnloading;
    if (m.leases > 0 && m.state != ModelState::kResident) violations.add("leased but not resident: " + row(m));
    if ((m.device_bytes > 0) != holds_device) violations.add("device bytes vs state: " + row(m));
    host += m.host_bytes;
  }
  check_host_bytes(host, "list()", violations);
}

bool expected(ErrorCode code, std::initializer_list<ErrorCode> allowed) {
  return std::find(allowed.begin(), allowed.end(), code) != allowed.end();
}

void worker(SoakRun& run, unsigned seed, Clock::time_point deadline, uint64_t max_ops, Totals& totals,
            Violations& violations) {
  std::mt19937 rng(seed);
  std::vector<ModelLease> held;
  std::atomic<bool> cancelled{true};
  ModelRegistry& r = *run.registry;
  auto report = [&](const Error& e, std::initializer_list<ErrorCode> allowed, const char* op) {
    if (expected(e.code, allowed)) {
      ++totals.expected_errors;
    } else {
      ADD_FAILURE() << op << ": unexpected " << e.to_string();
    }
  };
  for (uint64_t i = 0; i < max_ops && (max_ops != UINT64_MAX || Clock::now() < deadline); ++i) {
    const std::string name = "m" + std::to_string(rng() % kModels);
    switch (rng() % 20) {
      case 0: case 1: case 2: case 3: case 4: {  // acquire and hold
        AcquireOptions o;
        if (rng() % 16 == 0) o.cancel = &cancelled;
        auto lease = r.acquire(name, o);
        if (lease) {
          ++totals.leases;
          if (!lease->weights().on_device()) violations.add("a new lease's model is off the device: " + name);
          if (held.size() < 2) held.push_back(std::move(*lease));
        } else {
          report(lease.error(),
                 {ErrorCode::kResourceExhausted, ErrorCode::kDataLoss, ErrorCode::kCancelled}, "acquire");
        }
        break;
      }
      case 5: case 6: case 7:  // release
        if (!held.empty()) held.erase(held.begin() + static_cast<std::ptrdiff_t>(rng() % held.size()));
        break;
      case 8:
        if (auto st = r.preload(name); !st)
          report(st.error(), {ErrorCode::kResourceExhausted, ErrorCode::kDataLoss}, "preload");
        break;
      case 9: {
        auto u = r.unload(name, rng() % 2 ? Tier::kHost : Tier::kDisk);
        if (!u) report(u.error(), {ErrorCode::kFailedPrecondition}, "unload");
        break;
      }
      case 10:
        if (rng() % 8 == 0)
          if (auto st = r.unload_all(rng() % 2 ? Tier::kHost : Tier::kDisk); !st)
            report(st.error(), {ErrorCode::kFailedPrecondition}, "unload_all");
        break;
      case 11:
        run.clock->advance(std::chrono::milliseconds(rng() % 5000));
        r.tick();
        break;
      case 12:
        check_snapshot(r.list(), violations);
        break;
      case 13: {
        auto info = r.info(name);
        if (!info || info->name != name) violations.add("info(" + name + ") failed");
        RegistryStats s = r.stats();
        check_host_bytes(s.host_bytes, "stats()", violations);
        if (s.peak_device_bytes > kDeviceBytes)
          violations.add("peak device bytes " + std::to_string(s.peak_device_bytes) + " exceed the device");
        break;
      }
      case 14: {
        auto p = r.plan(name);
        if (!p) ADD_FAILURE() << "plan: " << p.error().to_string();
        else if (p->needed_bytes < p->bytes_to_move) violations.add("plan(" + name + ") needs less than it moves");
        break;
      }
      case 15:
        run.device->set_external_bytes((rng() % 4) * kGiB);
        break;
      case 16:
        if (rng() % 4 == 0) {
          ++totals.failures_injected;
          switch (rng() % 3) {
            case 0: run.device->fail_next_allocations(1); break;
            case 1: run.backend->fail_next_load(name); break;
            case 2: run.backend->fail_next_host_allocations(1); break;
          }
        }
        break;
      default:  // hold a while
        std::this_thread::yield();
        break;
    }
    for (const auto& l : held)
      if (!l.weights().on_device()) violations.add("a held lease's model left the device: " + l.name());
    ++totals.ops;
  }
}

// Threads joined, no lease live: the books balance.
void checkpoint(SoakRun& run, const std::string& setup, Violations& violations) {
  SCOPED_TRACE(setup);
  ModelRegistry& r = *run.registry;
  run.device->set_external_bytes(0);
  run.device->fail_next_allocations(0);
  run.backend->fail_next_host_allocations(0);
  uint64_t device_sum = 0, host_sum = 0;
  for (const ModelInfo& m : r.list()) {
    SCOPED_TRACE(m.name);
    EXPECT_EQ(m.leases, 0u);
    EXPECT_NE(m.state, ModelState::kLoading);
    EXPECT_NE(m.state, ModelState::kUnloading);
    EXPECT_EQ(m.device_bytes > 0, m.state == ModelState::kResident);
    device_sum += m.device_bytes;
    host_sum += m.host_bytes;
  }
  RegistryStats s = r.stats();
  EXPECT_EQ(device_sum, run.device->allocated_bytes());
  EXPECT_EQ(s.device_bytes, device_sum);
  EXPECT_EQ(host_sum, run.backend->host_bytes());
  EXPECT_EQ(s.host_bytes, host_sum);
  check_host_bytes(host_sum, "checkpoint", violations);
  EXPECT_TRUE(r.unload_all(Tier::kDisk));
  EXPECT_EQ(run.device->allocated_bytes(), 0u);
  EXPECT_EQ(run.backend->host_bytes(), 0u);
  // And the registry still serves every model (after a read failure injected
  // last, which the first try drains), each from an empty device.
  for (int i = 0; i < kModels; ++i) {
    const std::string name = "m" + std::to_string(i);
    auto lease = r.acquire(name);
    if (!lease && lease.error().code == ErrorCode::kDataLoss) lease = r.acquire(name);
    EXPECT_TRUE(lease) << name << ": " << lease.error().to_string();
    if (lease) lease->release();
    EXPECT_TRUE(r.unload(name, Tier::kDisk));
  }
  EXPECT_TRUE(r.unload_all(Tier::kDisk));
  EXPECT_EQ(run.device->allocated_bytes(), 0u);
}

TEST(SoakTest, RandomOperationsAcrossAllPoliciesKeepInvariants) {
  const double seconds = env_number("TP_SOAK_SECONDS", 10);
  const int threads = std::max(1, static_cast<int>(env_number("TP_SOAK_THREADS", 4)));
  const std::vector<PolicySetup> all = setups();
  // Rounds of every setup; a round lasts at least a second so short soaks still cover each setup.
  const double round_s = std::max(1.0, std::min(seconds / 4, 30.0));
  const bool fixed = seconds == 0;
  const uint64_t fixed_ops = 300;

  Totals totals;
  Violations violations;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  uint64_t rss_after_warmup = 0, warmup_ops = 0;
  double warmup_s = 0;
  int rounds = 0;
  uint64_t seed = 1;
  do {
    for (const PolicySetup& setup : all) {
      SoakRun run(setup);
      ASSERT_TRUE(run.registry);
      const auto slice_end = fixed ? Clock::now()
                                   : std::min(end, Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                                      std::chrono::duration<double>(round_s / all.size())));
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; ++t)
        pool.emplace_back(worker, std::ref(run), static_cast<unsigned>(seed++), slice_end,
                          fixed ? fixed_ops : UINT64_MAX, std::ref(totals), std::ref(violations));
      for (auto& t : pool) t.join();
      checkpoint(run, setup.name, violations);
      ASSERT_EQ(violations.count(), 0u) << "invariants violated in setup " << setup.name << ":"
                                        << violations.describe();
      if (::testing::Test::HasFailure()) return;
    }
    if (++rounds == 1) {
      rss_after_warmup = rss_bytes();
      warmup_ops = totals.ops.load();
      warmup_s = std::chrono::duration<double>(Clock::now() - start).count();
    }
  } while (!fixed && Clock::now() < end);

  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const uint64_t rss_end = rss_bytes();
  const int64_t growth = static_cast<int64_t>(rss_end) - static_cast<int64_t>(rss_after_warmup);
  // After the warm-up when there was more than one round; over the whole run otherwise.
  const double ops_per_s = rounds > 1 ? static_cast<double>(totals.ops - warmup_ops) / (elapsed - warmup_s)
                                      : static_cast<double>(totals.ops) / std::max(elapsed, 1e-9);
  std::printf("soak: %d threads, %zu setups x %d rounds, %.1f s, %" PRIu64 " ops (%.0f ops/s), %" PRIu64
              " leases, %" PRIu64 " injected failures, %" PRIu64 " expected errors; RSS %.1f MiB after warm-up, "
              "%.1f MiB at the end (growth %+.2f MiB, limit %.0f MiB)\n",
              threads, all.size(), rounds, elapsed, totals.ops.load(), ops_per_s, totals.leases.load(),
              totals.failures_injected.load(), totals.expected_errors.load(),
              static_cast<double>(rss_after_warmup) / kMiB, static_cast<double>(rss_end) / kMiB,
              static_cast<double>(growth) / kMiB, static_cast<double>(kMaxRssGrowth) / kMiB);
  RecordProperty("ops", std::to_string(totals.ops.load()));
  RecordProperty("ops_per_s", std::to_string(static_cast<uint64_t>(ops_per_s)));
  RecordProperty("rss_growth_bytes", std::to_string(growth));

  EXPECT_EQ(violations.count(), 0u) << violations.describe();
  EXPECT_GT(totals.leases.load(), 0u);
  EXPECT_GT(totals.expected_errors.load(), 0u);  // the faults were exercised
  if (fixed) {
    EXPECT_EQ(totals.ops.load(), fixed_ops * threads * all.size());
  }
  EXPECT_LT(growth, static_cast<int64_t>(kMaxRssGrowth)) << "RSS grew by " << growth << " bytes after the warm-up";
}

}  // namespace
}  // namespace tp
