#include "tools/demi_tool.h"

#include <demi/sga.h>

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

}  // namespace
}  // namespace demi::tools
