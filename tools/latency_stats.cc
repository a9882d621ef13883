#include "tools/latency_stats.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"

namespace demi::tools {

double Quantile(const std::vector<double>& sorted, double q) {
  size_t rank = static_cast<size_t>(std::ceil(q * sorted.size()));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

LatencySummary Summarize(std::vector<double>& samples) {
  LatencySummary s;
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  s.count = samples.size();
  s.min = samples.front();
  s.max = samples.back();
  s.p50 = Quantile(samples, 0.50);
  s.p90 = Quantile(samples, 0.90);
  s.p99 = Quantile(samples, 0.99);
  s.p999 = Quantile(samples, 0.999);
  double sum = 0;
  for (double v : samples) sum += v;
  s.mean = sum / s.count;
  double squares = 0;
  for (double v : samples) squares += (v - s.mean) * (v - s.mean);
  s.stdev = std::sqrt(squares / s.count);
  return s;
}

std::string TableHeader() {
  return absl::StrFormat("%-10s %-9s %9s %9s %9s %9s %9s %9s %9s %9s", "#bytes",
                         "#samples", "min[us]", "p50[us]", "p90[us]", "p99[us]",
                         "p99.9[us]", "max[us]", "mean[us]", "stdev[us]");
}

std::string TableRow(size_t bytes, const LatencySummary& s) {
  return absl::StrFormat(
      "%-10d %-9d %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f", bytes,
      s.count, s.min, s.p50, s.p90, s.p99, s.p999, s.max, s.mean, s.stdev);
}

std::string ToJson(size_t bytes, const LatencySummary& s) {
  return absl::StrFormat(
      "{\"bytes\":%d,\"count\":%d,\"min_us\":%.3f,\"p50_us\":%.3f,"
      "\"p90_us\":%.3f,\"p99_us\":%.3f,\"p999_us\":%.3f,\"max_us\":%.3f,"
      "\"mean_us\":%.3f,\"stdev_us\":%.3f}",
      bytes, s.count, s.min, s.p50, s.p90, s.p99, s.p999, s.max, s.mean,
      s.stdev);
}

}  // namespace demi::tools
