#include "tools/cdf_plot.h"

#include <signal.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace demi::tools {
namespace {

// Points drawn per series: enough for a smooth curve and the tail.
constexpr size_t kMaxPoints = 4000;

// A gnuplot string literal: in single quotes a quote is doubled.
std::string Quoted(const std::string& text) {
  return absl::StrCat("'", absl::StrReplaceAll(text, {{"'", "''"}}), "'");
}

}  // namespace

absl::Status PlotCdf(const std::string& path, const std::string& title,
                     const std::vector<CdfSeries>& series) {
  // A newline would end the command in the middle of the name.
  if (absl::StrContains(path, '\n')) {
    return absl::InvalidArgumentError("--plot: a file name without newlines");
  }
  // gnuplot writes the plot to its standard output when it cannot open the
  // file: never into ours, which may be the JSON. Its errors go to stderr.
  FILE* gp = popen("exec gnuplot > /dev/null", "w");
  if (gp == nullptr) return absl::UnavailableError("cannot run gnuplot");
  // A gnuplot that is missing or quits early must not kill the probe with
  // SIGPIPE after its measurement: the writes fail instead (and pclose
  // says why). Ignored only now, so gnuplot itself does not inherit it.
  struct sigaction ignore = {}, saved = {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore, &saved);
  std::fprintf(gp,
               "set terminal pngcairo size 900,560 noenhanced\n"
               "set output %s\n"
               "set title %s\n"
               "set xlabel 'latency [us]'\nset ylabel 'fraction of samples'\n"
               "set logscale x\nset grid\nset key bottom right\n"
               "set yrange [0:1]\nplot ",
               Quoted(path).c_str(), Quoted(title).c_str());
  for (size_t i = 0; i < series.size(); ++i) {
    std::fprintf(gp, "%s'-' using 1:2 with lines lw 2 title %s",
                 i == 0 ? "" : ", ", Quoted(series[i].label).c_str());
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
  int err = errno;
  sigaction(SIGPIPE, &saved, nullptr);
  if (status == -1) {
    return absl::InternalError(absl::StrCat("gnuplot: ", std::strerror(err)));
  }
  // 127: the shell found no gnuplot to run.
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    return absl::UnavailableError(
        "cannot run gnuplot (is it installed? tools/install_deps.sh)");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat(
        "gnuplot failed writing ", path,
        WIFEXITED(status) ? absl::StrCat(" (exit ", WEXITSTATUS(status), ")")
                          : absl::StrCat(" (signal ", WTERMSIG(status), ")"),
        "; its messages are above"));
  }
  return absl::OkStatus();
}

}  // namespace demi::tools
