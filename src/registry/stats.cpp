// Registry statistics: Histogram and the counting functions (see stats.h).
#include "registry/stats.h"

#include <algorithm>
#include <cmath>

namespace tp {
inline namespace v0 {

void Histogram::record(double ms) {
  size_t i = 0;
  while (i < kBoundsMs.size() && ms > kBoundsMs[i]) ++i;
  ++buckets[i];
  ++count;
  sum_ms += ms;
  max_ms = std::max(max_ms, ms);
}

double Histogram::quantile(double q) const {
  if (count == 0) return 0;
  auto target = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count)));
  if (target == 0) target = 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets.size(); ++i) {
    seen += buckets[i];
    if (seen >= target) return i < kBoundsMs.size() ? std::min(kBoundsMs[i], max_ms) : max_ms;
  }
  return max_ms;
}

}  // namespace v0
}  // namespace tp

namespace tp::detail {

void count_load(RegistryStats& s, Tier from, uint64_t bytes, double ms, uint64_t held) {
  if (from == Tier::kHost) {
    ++s.reloads;
    s.reload_ms.record(ms);
  } else {
    ++s.loads;
    s.load_ms.record(ms);
  }
  s.bytes_to_device += bytes;
  s.peak_device_bytes = std::max(s.peak_device_bytes, held);
}

void count_eviction(RegistryStats& s, Reason reason, uint64_t new_host_bytes, int64_t bytes_returned) {
  s.evictions_by_reason[static_cast<size_t>(reason)]++;
  s.bytes_to_host += new_host_bytes;
  if (bytes_returned > 0) s.bytes_returned += static_cast<uint64_t>(bytes_returned);
}

RegistryStats snapshot(const RegistryStats& s, uint64_t device_bytes, uint64_t host_bytes) {
  RegistryStats out = s;
  out.device_bytes = device_bytes;
  out.host_bytes = host_bytes;
  return out;
}

}  // namespace tp::detail
