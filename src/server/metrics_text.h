// Private (server): Prometheus text format: label values and latency histograms.
// SecondsHistogram is not synchronised: its owner guards it.
#pragma once

#include <array>
#include <cstdint>
#include <sstream>
#include <string>

namespace tp::server {

// A Prometheus label value, escaped.
std::string label(const std::string& v);

// Seconds, fixed buckets, Prometheus-style (cumulative when written).
struct SecondsHistogram {
  static constexpr std::array<double, 12> kBounds{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
  std::array<uint64_t, kBounds.size()> buckets{};  // non-cumulative; above the last: count - sum(buckets)
  uint64_t count = 0;
  double sum = 0;
  void record(double s);
};

// Writes `name`_bucket/_sum/_count lines for a histogram of n bounds.
void write_histogram(std::ostringstream& out, const std::string& name, const std::string& labels, const double* bounds,
                     const uint64_t* buckets, size_t n, uint64_t count, double sum);

}  // namespace tp::server
