// Summary statistics of a set of latency samples, and their text and JSON
// forms, shared by the latency probe and the benchmark harness.
#ifndef DEMI_TOOLS_LATENCY_STATS_H_
#define DEMI_TOOLS_LATENCY_STATS_H_

#include <cstddef>
#include <string>
#include <vector>

namespace demi::tools {

// All figures in microseconds.
struct LatencySummary {
  size_t count = 0;
  double min = 0;
  double p50 = 0;
  double p90 = 0;
  double p99 = 0;
  double p999 = 0;
  double max = 0;
  double mean = 0;
  double stdev = 0;  // Population standard deviation.
};

// The value at quantile `q` (0..1) of `sorted` (ascending, non-empty), by
// the nearest-rank method: the smallest sample with at least q of all
// samples at or below it.
double Quantile(const std::vector<double>& sorted, double q);

// Summarizes `samples` (any order; sorted in place). Empty: all zero.
LatencySummary Summarize(std::vector<double>& samples);

// The perftest-like table header and one row for `bytes`.
std::string TableHeader();
std::string TableRow(size_t bytes, const LatencySummary& s);

// One JSON object: {"bytes":..,"count":..,"min_us":.., ...}.
std::string ToJson(size_t bytes, const LatencySummary& s);

}  // namespace demi::tools

#endif  // DEMI_TOOLS_LATENCY_STATS_H_
