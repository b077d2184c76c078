#include "server/metrics_text.h"

namespace tp::server {

std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void SecondsHistogram::record(double s) {
  for (size_t i = 0; i < kBounds.size(); ++i)
    if (s <= kBounds[i]) {
      ++buckets[i];
      break;
    }
  ++count;
  sum += s;
}

void write_histogram(std::ostringstream& out, const std::string& name, const std::string& labels, const double* bounds,
                     const uint64_t* buckets, size_t n, uint64_t count, double sum) {
  uint64_t cumulative = 0;
  const std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i < n; ++i) {
    cumulative += buckets[i];
    out << name << "_bucket{" << labels << sep << "le=\"" << bounds[i] << "\"} " << cumulative << "\n";
  }
  out << name << "_bucket{" << labels << sep << "le=\"+Inf\"} " << count << "\n";
  out << name << "_sum" << (labels.empty() ? "" : "{" + labels + "}") << " " << sum << "\n";
  out << name << "_count" << (labels.empty() ? "" : "{" + labels + "}") << " " << count << "\n";
}

}  // namespace tp::server
