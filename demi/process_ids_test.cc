#include "demi/process_ids.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace demi {
namespace {

constexpr int kIds = (1 << kTokenIdBits) - 2;

TEST(TokenRangeTest, ALiveLibOsesRangeIsNeverTakenAgain) {
  // A thread that lives on while thread after thread comes and goes, three
  // rounds of every number: none gets its range.
  uint64_t held = TakeTokenRange();
  for (int i = 0; i < 3 * kIds; ++i) {
    uint64_t range = TakeTokenRange();
    ASSERT_NE(range, held) << "after " << i << " others";
    GiveBackTokenRange(range);
  }
  GiveBackTokenRange(held);
}

TEST(TokenRangeTest, ARangeGivenBackWaitsForItsTurn) {
  uint64_t first = TakeTokenRange();
  GiveBackTokenRange(first);
  uint64_t next = TakeTokenRange();
  EXPECT_NE(next, first);
  GiveBackTokenRange(next);
}

TEST(TokenRangeTest, NoTokenOfARangeIsZeroOrAllOnes) {
  std::vector<uint64_t> ranges;
  for (int i = 0; i < kIds; ++i) {
    uint64_t range = TakeTokenRange();
    EXPECT_NE(range, 0u);
    // The last token of the range, 2^48 - 1 after the first.
    EXPECT_NE(range + ((uint64_t{1} << (64 - kTokenIdBits)) - 2), UINT64_MAX);
    ranges.push_back(range);
  }
  for (uint64_t range : ranges) GiveBackTokenRange(range);
}

}  // namespace
}  // namespace demi
