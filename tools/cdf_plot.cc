#include "tools/cdf_plot.h"

#include <sys/wait.h>

#include <cstdio>

#include "absl/strings/str_cat.h"

namespace demi::tools {
namespace {

// Points drawn per series: enough for a smooth curve and the tail.
constexpr size_t kMaxPoints = 4000;

}  // namespace

absl::Status PlotCdf(const std::string& path, const std::string& title,
                     const std::vector<CdfSeries>& series) {
  FILE* gp = popen("gnuplot", "w");
  if (gp == nullptr) return absl::UnavailableError("cannot run gnuplot");
  std::fprintf(gp,
               "set terminal pngcairo size 900,560 noenhanced\n"
               "set output '%s'\n"
               "set title '%s'\n"
               "set xlabel 'latency [us]'\nset ylabel 'fraction of samples'\n"
               "set logscale x\nset grid\nset key bottom right\n"
               "set yrange [0:1]\nplot ",
               path.c_str(), title.c_str());
  for (size_t i = 0; i < series.size(); ++i) {
    std::fprintf(gp, "%s'-' using 1:2 with lines lw 2 title '%s'",
                 i == 0 ? "" : ", ", series[i].label.c_str());
  }
  std::fprintf(gp, "\n");
  for (const CdfSeries& s : series) {
    size_t n = s.sorted_us.size();
    size_t step = n > kMaxPoints ? n / kMaxPoints : 1;
    for (size_t k = 0; k < n; k += step) {
      std::fprintf(gp, "%.3f %.6f\n", s.sorted_us[k],
                   static_cast<double>(k + 1) / n);
    }
    // The tail's last point, so the curve reaches 1.
    if (n > 0) std::fprintf(gp, "%.3f 1.0\n", s.sorted_us[n - 1]);
    std::fprintf(gp, "e\n");
  }
  int status = pclose(gp);
  if (status != 0) {
    return absl::InternalError(
        absl::StrCat("gnuplot failed (status ", status, ") writing ", path));
  }
  return absl::OkStatus();
}

}  // namespace demi::tools
