#include "tools/demi_tool.h"

#include <demi/sga.h>

#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace demi::tools {
namespace {

TEST(ParseSizeTest, TakesBytesAndBinaryUnits) {
  EXPECT_EQ(*ParseSize("64"), 64u);
  EXPECT_EQ(*ParseSize("4K"), 4096u);
  EXPECT_EQ(*ParseSize("4k"), 4096u);
  EXPECT_EQ(*ParseSize("16M"), size_t{DEMI_MAX_MESSAGE_SIZE});
}

TEST(ParseSizeTest, RefusesSizesOutOfRange) {
  EXPECT_FALSE(ParseSize("0").ok());
  EXPECT_FALSE(ParseSize("").ok());
  EXPECT_FALSE(ParseSize("K").ok());
  EXPECT_FALSE(ParseSize("-1").ok());
  EXPECT_FALSE(ParseSize("17M").ok());
  EXPECT_FALSE(ParseSize("16385K").ok());
  EXPECT_FALSE(ParseSize("16777217").ok());
}

// 2^44 + 1 MiB is 2^64 + 2^20 bytes: in size_t, that wraps around to 1 MiB.
TEST(ParseSizeTest, RefusesSizesWhoseBytesOverflow) {
  EXPECT_FALSE(ParseSize("17592186044417M").ok());
  EXPECT_FALSE(ParseSize("18014398509481985K").ok());
}

// A microsecond to 10^6 s; NaN, infinities and what rounds to no duration
// at all are refused, naming the flag.
TEST(CheckSecondsTest, TakesAMicrosecondToAMillionSeconds) {
  EXPECT_TRUE(CheckSeconds("--timeout", 1e-6).ok());
  EXPECT_TRUE(CheckSeconds("--timeout", 0.5).ok());
  EXPECT_TRUE(CheckSeconds("--timeout", 1e6).ok());
  for (double bad : {0.0, -1.0, 1e-7, std::numeric_limits<double>::denorm_min(),
                     1e6 + 1, std::numeric_limits<double>::infinity(),
                     -std::numeric_limits<double>::infinity(), std::nan("")}) {
    absl::Status status = CheckSeconds("--seconds", bad);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(status.message().find("--seconds must be"), std::string::npos);
  }
}

}  // namespace
}  // namespace demi::tools
