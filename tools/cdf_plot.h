// Latency CDF plots as PNG, drawn by gnuplot.
#ifndef DEMI_TOOLS_CDF_PLOT_H_
#define DEMI_TOOLS_CDF_PLOT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace demi::tools {

struct CdfSeries {
  std::string label;
  std::vector<double> sorted_us;  // Ascending samples, microseconds.
};

// Writes a PNG of the cumulative distribution of each series to `path`
// (log-scaled latency axis). Needs `gnuplot` on the PATH: UNAVAILABLE
// without it, INTERNAL if it fails (its messages go to stderr, nothing to
// stdout), INVALID_ARGUMENT for a `path` with a newline.
absl::Status PlotCdf(const std::string& path, const std::string& title,
                     const std::vector<CdfSeries>& series);

}  // namespace demi::tools

#endif  // DEMI_TOOLS_CDF_PLOT_H_
