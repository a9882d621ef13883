#include "tools/cdf_plot.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace demi::tools {
namespace {

using ::testing::HasSubstr;

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

// Samples enough for more plot data than a pipe holds (64 KiB): a gnuplot
// that is gone by then makes the writes fail.
std::vector<CdfSeries> ManySamples() {
  CdfSeries s{"64 B", {}};
  for (int i = 0; i < 100000; ++i) s.sorted_us.push_back(1 + i * 0.001);
  return {s, s};
}

// Runs the test with PATH set to `path`, then puts it back.
class PathTest : public ::testing::Test {
 protected:
  void SetUp() override { saved_ = std::getenv("PATH"); }
  void TearDown() override { setenv("PATH", saved_.c_str(), 1); }
  // A directory alone on the PATH, with a `gnuplot` running `script`
  // (empty: none).
  std::string OnlyGnuplot(const std::string& name, const std::string& script) {
    std::string dir = TempDir() + "/" + name;
    mkdir(dir.c_str(), 0755);
    if (!script.empty()) {
      std::string gnuplot = dir + "/gnuplot";
      std::ofstream(gnuplot) << "#!/bin/sh\n" << script << "\n";
      chmod(gnuplot.c_str(), 0755);
    }
    setenv("PATH", dir.c_str(), 1);
    return dir;
  }

 private:
  std::string saved_;
};

TEST_F(PathTest, NoGnuplotIsAnErrorNotSigpipe) {
  OnlyGnuplot("no_gnuplot", "");
  absl::Status status =
      PlotCdf(TempDir() + "/none.png", "no gnuplot", ManySamples());
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("cannot run gnuplot"));
}

// gnuplot writes the plot to its standard output when it cannot open the
// file: that must not land in the probe's (its JSON).
TEST_F(PathTest, GnuplotsOutputNeverReachesStdout) {
  OnlyGnuplot("png_on_stdout", "/bin/cat > /dev/null; echo PNG; exit 1");
  ::testing::internal::CaptureStdout();
  absl::Status status = PlotCdf("/nonexistent/x.png", "t", ManySamples());
  std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(out, "");
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("gnuplot failed"));
  EXPECT_THAT(status.message(), HasSubstr("/nonexistent/x.png"));
}

TEST(PlotCdfTest, WritesToAPathWithAQuote) {
  if (std::system("command -v gnuplot > /dev/null") != 0) {
    GTEST_SKIP() << "no gnuplot (tools/install_deps.sh installs it)";
  }
  std::string path = TempDir() + "/it's.png";
  std::remove(path.c_str());
  ASSERT_TRUE(PlotCdf(path, "it's", ManySamples()).ok());
  std::ifstream png(path);
  std::stringstream head;
  head << png.rdbuf();
  EXPECT_EQ(head.str().substr(1, 3), "PNG");
}

TEST(PlotCdfTest, RefusesANewlineInThePath) {
  absl::Status status = PlotCdf(TempDir() + "/a\nb.png", "t", ManySamples());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace demi::tools
