#include "demi/pool_limit.h"

#include <cstdint>
#include <string>

#include "demi/limits.h"
#include "gtest/gtest.h"

namespace demi {
namespace {

constexpr size_t kMaxMb = SIZE_MAX >> 20;

TEST(PoolLimitTest, APositiveNumberOfMibIsThatManyBytes) {
  EXPECT_EQ(PoolLimitFromText("1"), size_t{1} << 20);
  EXPECT_EQ(PoolLimitFromText("12"), size_t{12} << 20);
  EXPECT_EQ(PoolLimitFromText("4096"), size_t{4} << 30);
  EXPECT_EQ(PoolLimitFromText(std::to_string(kMaxMb).c_str()), kMaxMb << 20);
}

TEST(PoolLimitTest, ValuesThatAreNotAPositiveNumberGiveTheDefault) {
  for (const char* text : {"", "abc", "12abc", "0", "-1", "1.5"}) {
    EXPECT_EQ(PoolLimitFromText(text), kDefaultPoolLimit) << text;
  }
  EXPECT_EQ(PoolLimitFromText(nullptr), kDefaultPoolLimit);
}

// More MiB than a size_t counts in bytes: out of range, as a number too
// large for a size_t is. 2^44 MiB used to wrap to a limit of 0.
TEST(PoolLimitTest, ValuesTooLargeToCountInBytesGiveTheDefault) {
  for (const std::string& text :
       {std::to_string(kMaxMb + 1), std::to_string(uint64_t{1} << 44),
        std::to_string(uint64_t{1} << 63), std::to_string(SIZE_MAX),
        std::string("18446744073709551616")}) {
    EXPECT_EQ(PoolLimitFromText(text.c_str()), kDefaultPoolLimit) << text;
  }
}

}  // namespace
}  // namespace demi
