#include "tools/latency_stats.h"

#include <numeric>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace demi::tools {
namespace {

TEST(QuantileTest, NearestRank) {
  std::vector<double> v(100);
  std::iota(v.begin(), v.end(), 1.0);  // 1..100
  EXPECT_EQ(Quantile(v, 0.0), 1.0);
  EXPECT_EQ(Quantile(v, 0.5), 50.0);
  EXPECT_EQ(Quantile(v, 0.9), 90.0);
  EXPECT_EQ(Quantile(v, 0.99), 99.0);
  EXPECT_EQ(Quantile(v, 0.999), 100.0);
  EXPECT_EQ(Quantile(v, 1.0), 100.0);
}

TEST(QuantileTest, OneSample) {
  std::vector<double> v = {7.0};
  EXPECT_EQ(Quantile(v, 0.0), 7.0);
  EXPECT_EQ(Quantile(v, 0.999), 7.0);
}

TEST(SummarizeTest, UnsortedInput) {
  std::vector<double> v = {4, 2, 8, 6};
  LatencySummary s = Summarize(v);
  EXPECT_EQ(s.count, 4u);
  EXPECT_EQ(s.min, 2);
  EXPECT_EQ(s.max, 8);
  EXPECT_EQ(s.p50, 4);
  EXPECT_DOUBLE_EQ(s.mean, 5);
  EXPECT_DOUBLE_EQ(s.stdev, std::sqrt(5.0));
}

TEST(SummarizeTest, EmptyIsZero) {
  std::vector<double> v;
  LatencySummary s = Summarize(v);
  EXPECT_EQ(s.count, 0u);
  EXPECT_EQ(s.max, 0);
}

TEST(FormatTest, RowAndJson) {
  std::vector<double> v = {1.5, 2.5};
  LatencySummary s = Summarize(v);
  EXPECT_THAT(TableRow(64, s), ::testing::StartsWith("64         2 "));
  EXPECT_EQ(ToJson(64, s),
            "{\"bytes\":64,\"count\":2,\"min_us\":1.500,\"p50_us\":1.500,"
            "\"p90_us\":2.500,\"p99_us\":2.500,\"p999_us\":2.500,"
            "\"max_us\":2.500,\"mean_us\":2.000,\"stdev_us\":0.500}");
}

}  // namespace
}  // namespace demi::tools
