#include "demi/fifo_ring.h"

#include <cstdint>
#include <deque>

#include "gtest/gtest.h"

namespace demi {
namespace {

// Against std::deque, through wrap-arounds and growth at every offset.
TEST(FifoRingTest, KeepsOrderAcrossWrapsAndGrowth) {
  FifoRing<uint64_t> ring;
  std::deque<uint64_t> model;
  uint64_t next = 1;
  for (int round = 0; round < 200; ++round) {
    int pushes = (round * 7) % 45;
    int pops = (round * 5) % 40;
    for (int i = 0; i < pushes; ++i) {
      ring.push_back(next);
      model.push_back(next++);
    }
    for (int i = 0; i < pops && !model.empty(); ++i) {
      ASSERT_FALSE(ring.empty());
      ASSERT_EQ(ring.front(), model.front());
      ring.pop_front();
      model.pop_front();
    }
    ASSERT_EQ(ring.size(), model.size());
  }
  while (!model.empty()) {
    ASSERT_EQ(ring.front(), model.front());
    ring.pop_front();
    model.pop_front();
  }
  EXPECT_TRUE(ring.empty());
}

TEST(FifoRingTest, RetainIfKeepsTheChosenInOrder) {
  FifoRing<int> ring;
  for (int i = 0; i < 10; ++i) ring.push_back(i);
  for (int i = 0; i < 6; ++i) ring.pop_front();
  for (int i = 10; i < 30; ++i) ring.push_back(i);  // Wraps, then grows.
  ring.RetainIf([](int v) { return v % 3 == 0; });
  for (int want : {6, 9, 12, 15, 18, 21, 24, 27}) {
    ASSERT_FALSE(ring.empty());
    EXPECT_EQ(ring.front(), want);
    ring.pop_front();
  }
  EXPECT_TRUE(ring.empty());
  ring.push_back(42);
  EXPECT_EQ(ring.front(), 42);
  EXPECT_EQ(ring.size(), 1u);
}

}  // namespace
}  // namespace demi
