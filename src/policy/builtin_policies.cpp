// The built-in memory policies (eager, unload-after, idle-timeout, LRU) and
// the default victim order used for admission and pressure.
#include <algorithm>
#include <chrono>
#include <cmath>

#include "twistedpic/memory_policy.h"

namespace tp {
inline namespace v0 {

const ModelView* RegistryView::find(std::string_view name) const {
  for (const auto& m : models)
    if (m.name == name) return &m;
  return nullptr;
}

std::vector<std::string> MemoryPolicy::preload(const RegistryView&) { return {}; }
std::optional<Eviction> MemoryPolicy::on_idle(const RegistryView&, const ModelView&) { return std::nullopt; }
std::optional<TimePoint> MemoryPolicy::expires_at(const ModelView&) { return std::nullopt; }
std::vector<Eviction> MemoryPolicy::enforce_limits(const RegistryView&, const ModelView*) { return {}; }
std::vector<Eviction> MemoryPolicy::select_victims(const RegistryView&, uint64_t, Reason) { return {}; }
void MemoryPolicy::on_access(const ModelView&) {}

namespace {

// Nominal bandwidths for ranking reload cost: a pinned host copy comes back
// over PCIe; anything else is read from disk (page cache or NVMe).
constexpr double kHostToDeviceBytesPerSec = 20e9;
constexpr double kDiskToDeviceBytesPerSec = 2e9;

// Where an evicted model should go: the host tier when its copy fits there.
Tier eviction_tier(const RegistryView& view, const ModelView& m, uint64_t& host_planned) {
  if (m.host_bytes > 0) return Tier::kHost;  // already has a copy: offload is free
  if (view.host_bytes + host_planned + m.device_bytes <= view.host_budget_bytes) {
    host_planned += m.device_bytes;
    return Tier::kHost;
  }
  return Tier::kDisk;
}

class EagerPolicy final : public MemoryPolicy {
 public:
  explicit EagerPolicy(bool default_eager) : default_eager_(default_eager) {}
  std::string_view name() const override { return "eager"; }
  std::vector<std::string> preload(const RegistryView& view) override {
    std::vector<const ModelView*> picked;
    for (const auto& m : view.models)
      if (m.config->eager.value_or(default_eager_)) picked.push_back(&m);
    std::stable_sort(picked.begin(), picked.end(), [](const ModelView* a, const ModelView* b) {
      if (a->config->pinned != b->config->pinned) return a->config->pinned;
      return a->config->priority > b->config->priority;
    });
    std::vector<std::string> names;
    for (const auto* m : picked) names.emplace_back(m->name);
    return names;
  }

 private:
  bool default_eager_;
};

class UnloadAfterPolicy final : public MemoryPolicy {
 public:
  std::string_view name() const override { return "unload-after"; }
  std::optional<Eviction> on_idle(const RegistryView&, const ModelView& m) override {
    if (m.unload_after == Tier::kDevice) return std::nullopt;
    return Eviction{std::string(m.name), m.unload_after, Reason::kUnloadAfter};
  }
};

class IdleTimeoutPolicy final : public MemoryPolicy {
 public:
  std::string_view name() const override { return "idle-timeout"; }
  std::optional<TimePoint> expires_at(const ModelView& m) override {
    if (m.idle_timeout_s < 0 || m.state != ModelState::kResident || m.leases > 0) return std::nullopt;
    return m.last_use + std::chrono::duration_cast<Duration>(std::chrono::duration<double>(m.idle_timeout_s));
  }
};

class LruPolicy final : public MemoryPolicy {
 public:
  LruPolicy(size_t max_models, uint64_t max_bytes) : max_models_(max_models), max_bytes_(max_bytes) {}
  std::string_view name() const override { return "lru"; }

  std::vector<Eviction> enforce_limits(const RegistryView& view, const ModelView* incoming) override {
    size_t count = incoming ? 1 : 0;
    uint64_t bytes = incoming ? incoming->weight_bytes : 0;
    std::vector<const ModelView*> candidates;
    for (const auto& m : view.models) {
      if (m.state != ModelState::kResident && m.state != ModelState::kLoading) continue;
      if (incoming && m.name == incoming->name) continue;
      ++count;
      bytes += m.device_bytes;
      if (m.evictable()) candidates.push_back(&m);
    }
    std::sort(candidates.begin(), candidates.end(),
              [](const ModelView* a, const ModelView* b) { return a->last_use < b->last_use; });
    std::vector<Eviction> out;
    uint64_t host_planned = 0;
    for (const ModelView* m : candidates) {
      bool over = (max_models_ && count > max_models_) || (max_bytes_ && bytes > max_bytes_);
      if (!over) break;
      out.push_back({std::string(m->name), eviction_tier(view, *m, host_planned), Reason::kLru});
      --count;
      bytes -= m->device_bytes;
    }
    return out;
  }

 private:
  size_t max_models_;
  uint64_t max_bytes_;
};

}  // namespace

std::vector<Eviction> rank_victims(const RegistryView& view, uint64_t need_bytes, Reason reason) {
  std::vector<const ModelView*> candidates;
  for (const auto& m : view.models)
    if (m.evictable() && m.device_bytes > 0) candidates.push_back(&m);
  auto reload_seconds = [&view](const ModelView* m) {
    bool host = m->host_bytes > 0 || view.host_bytes + m->device_bytes <= view.host_budget_bytes;
    return static_cast<double>(m->device_bytes) / (host ? kHostToDeviceBytesPerSec : kDiskToDeviceBytesPerSec);
  };
  std::sort(candidates.begin(), candidates.end(), [&](const ModelView* a, const ModelView* b) {
    if (a->config->priority != b->config->priority) return a->config->priority < b->config->priority;
    double ca = reload_seconds(a), cb = reload_seconds(b);
    if (ca != cb) return ca < cb;
    return a->last_use < b->last_use;
  });
  // Take in order until the need is covered...
  std::vector<const ModelView*> taken;
  uint64_t freed = 0;
  for (const ModelView* m : candidates) {
    if (freed >= need_bytes) break;
    taken.push_back(m);
    freed += m->device_bytes;
  }
  // ...then give back, most expensive first, any victim the others cover without.
  if (freed >= need_bytes) {
    for (size_t i = taken.size(); i-- > 0;) {
      if (freed - taken[i]->device_bytes >= need_bytes) {
        freed -= taken[i]->device_bytes;
        taken.erase(taken.begin() + static_cast<std::ptrdiff_t>(i));
      }
    }
  }
  std::vector<Eviction> out;
  uint64_t host_planned = 0;
  for (const ModelView* m : taken) out.push_back({std::string(m->name), eviction_tier(view, *m, host_planned), reason});
  return out;
}

std::vector<std::shared_ptr<MemoryPolicy>> make_builtin_policies(const RegistryConfig& config) {
  std::vector<std::shared_ptr<MemoryPolicy>> out;
  out.push_back(std::make_shared<EagerPolicy>(config.policy.eager));
  out.push_back(std::make_shared<UnloadAfterPolicy>());
  out.push_back(std::make_shared<IdleTimeoutPolicy>());
  if (config.policy.lru_max_models || config.policy.lru_max_bytes)
    out.push_back(std::make_shared<LruPolicy>(config.policy.lru_max_models, config.policy.lru_max_bytes));
  return out;
}

}  // namespace v0
}  // namespace tp
