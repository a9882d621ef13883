#include "demi/qd_counter.h"

#include <climits>
#include <set>

#include "gtest/gtest.h"

namespace demi {
namespace {

TEST(QdCounterTest, CountsUpFromOne) {
  QdCounter counter;
  auto none = [](int) { return false; };
  EXPECT_EQ(counter.Next(none), 1);
  EXPECT_EQ(counter.Next(none), 2);
  EXPECT_EQ(counter.Next(none), 3);
}

TEST(QdCounterTest, WrapsPastIntMaxToOneNeverToANegativeOrZero) {
  QdCounter counter;
  counter.SetNext(INT_MAX - 1);
  auto none = [](int) { return false; };
  EXPECT_EQ(counter.Next(none), INT_MAX - 1);
  EXPECT_EQ(counter.Next(none), INT_MAX);
  EXPECT_EQ(counter.Next(none), 1);
  EXPECT_EQ(counter.Next(none), 2);
}

TEST(QdCounterTest, SkipsQdsStillInUseAfterTheWrap) {
  QdCounter counter;
  std::set<int> open = {INT_MAX, 1, 2, 4};
  auto in_use = [&](int qd) { return open.count(qd) != 0; };
  counter.SetNext(INT_MAX);
  EXPECT_EQ(counter.Next(in_use), 3);
  EXPECT_EQ(counter.Next(in_use), 5);
}

TEST(QdCounterTest, ANonPositiveStartBecomesOne) {
  QdCounter counter;
  counter.SetNext(-1);
  EXPECT_EQ(counter.Next([](int) { return false; }), 1);
  counter.SetNext(INT_MIN);
  EXPECT_EQ(counter.Next([](int) { return false; }), 1);
}

}  // namespace
}  // namespace demi
