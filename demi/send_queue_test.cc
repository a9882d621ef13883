#include "demi/send_queue.h"

#include <vector>

#include "gtest/gtest.h"

namespace demi {
namespace {

// What the device was given, and whether it accepts the next post.
std::vector<ibv_send_wr> posted;
int next_rc = 0;

int RecordPost(ibv_qp*, ibv_send_wr* wr, ibv_send_wr**) {
  if (next_rc != 0) return next_rc;
  posted.push_back(*wr);
  return 0;
}

class SendQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    posted.clear();
    next_rc = 0;
  }
  // Posts a slot of `kind`; returns its wr_id.
  uint64_t PostOne(SendQueue& queue, bool must_signal = false,
                   uint64_t cookie = 0, SendSlot::Kind kind = SendSlot::kRead) {
    ibv_send_wr wr = {};
    SendSlot slot(kind);
    slot.read_cookie = cookie;
    EXPECT_EQ(queue.Post(wr, slot, must_signal), 0);
    return wr.wr_id;
  }
};

TEST_F(SendQueueTest, WrIdsAreSequenceNumbersAndSignalsAreSpaced) {
  SendQueue queue(nullptr, 8, 4, RecordPost);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(PostOne(queue), uint64_t(i));
  EXPECT_EQ(queue.room(), 0u);
  // Every 4th unsignalled one is signalled, so completions keep coming.
  std::vector<bool> signaled;
  for (const ibv_send_wr& wr : posted) {
    signaled.push_back((wr.send_flags & IBV_SEND_SIGNALED) != 0);
  }
  EXPECT_EQ(signaled, std::vector<bool>({false, false, false, true, false,
                                         false, false, true}));
  EXPECT_TRUE(queue.has_signaled());
}

TEST_F(SendQueueTest, SignaledSendsInFlightAreCountedAcrossQueues) {
  uint32_t total = 0;
  auto ignore = [](SendSlot&, int) {};
  {
    SendQueue a(nullptr, 8, 4, RecordPost, &total);
    SendQueue b(nullptr, 8, 4, RecordPost, &total);
    PostOne(a);
    EXPECT_EQ(total, 0u);  // Unsignalled: no completion will come.
    uint64_t first = PostOne(a, /*must_signal=*/true);
    PostOne(b, /*must_signal=*/true);
    uint64_t last = PostOne(a, /*must_signal=*/true);
    EXPECT_EQ(total, 3u);
    EXPECT_TRUE(a.Complete(first, 0, ignore));
    EXPECT_EQ(total, 2u);
    next_rc = ENOMEM;  // A failed post counts nothing.
    ibv_send_wr wr = {};
    SendSlot slot;
    EXPECT_EQ(a.Post(wr, slot, true), ENOMEM);
    EXPECT_EQ(total, 2u);
    next_rc = 0;
    EXPECT_TRUE(a.Complete(last, 0, ignore));
    EXPECT_EQ(total, 1u);
  }
  // A queue that goes with a signalled request posted takes it along.
  EXPECT_EQ(total, 0u);
}

TEST_F(SendQueueTest, ACompletionRetiresEverySlotUpToItInOrder) {
  SendQueue queue(nullptr, 8, 4, RecordPost);
  for (uint64_t i = 0; i < 6; ++i) PostOne(queue, false, 100 + i);
  std::vector<std::pair<uint64_t, int>> retired;
  auto record = [&](SendSlot& slot, int err) {
    retired.push_back({slot.read_cookie, err});
  };
  EXPECT_TRUE(queue.Complete(3, 5, record));
  EXPECT_EQ(retired, (std::vector<std::pair<uint64_t, int>>{
                         {100, 0}, {101, 0}, {102, 0}, {103, 5}}));
  EXPECT_EQ(queue.posted(), 2u);
  // Stale or unknown wr_ids change nothing.
  EXPECT_FALSE(queue.Complete(2, 0, record));
  EXPECT_FALSE(queue.Complete(6, 0, record));
  EXPECT_EQ(queue.posted(), 2u);
  EXPECT_FALSE(queue.has_signaled());  // The one signalled slot retired.
}

TEST_F(SendQueueTest, ControlSlotsThatHoldNothingAreRetiredOnlyWhenLast) {
  SendQueue queue(nullptr, 8, 8, RecordPost);
  PostOne(queue, false, 1, SendSlot::kControl);
  PostOne(queue, false, 2);
  PostOne(queue, false, 3, SendSlot::kControl);
  PostOne(queue, false, 4, SendSlot::kControl);
  std::vector<std::pair<uint64_t, int>> retired;
  auto record = [&](SendSlot& slot, int err) {
    retired.push_back({slot.read_cookie, err});
  };
  // The last carries the completion's error, whatever its kind.
  EXPECT_TRUE(queue.Complete(3, 7, record));
  EXPECT_EQ(retired, (std::vector<std::pair<uint64_t, int>>{{2, 0}, {4, 7}}));
  EXPECT_EQ(queue.posted(), 0u);
  // A skipped slot is reused like any other.
  PostOne(queue, false, 5);
  EXPECT_TRUE(queue.Complete(4, 0, record));
  EXPECT_EQ(retired.back(), (std::pair<uint64_t, int>{5, 0}));
}

TEST_F(SendQueueTest, TheRingWrapsAndARetireMayPostIntoTheFreedSlot) {
  SendQueue queue(nullptr, 4, 2, RecordPost);
  for (int i = 0; i < 4; ++i) PostOne(queue, false, i);
  std::vector<uint64_t> cookies;
  // Retiring slot 0 frees room for one post, which lands in slot 0's place.
  queue.Complete(0, 0, [&](SendSlot& slot, int) {
    cookies.push_back(slot.read_cookie);
    PostOne(queue, false, 40);
  });
  EXPECT_EQ(cookies, std::vector<uint64_t>({0}));
  EXPECT_EQ(queue.posted(), 4u);
  std::vector<uint64_t> all;
  queue.ForEachPosted([&](SendSlot& slot) { all.push_back(slot.read_cookie); });
  EXPECT_EQ(all, std::vector<uint64_t>({1, 2, 3, 40}));
  queue.Complete(
      4, 0, [&](SendSlot& slot, int) { cookies.push_back(slot.read_cookie); });
  EXPECT_EQ(cookies, std::vector<uint64_t>({0, 1, 2, 3, 40}));
  EXPECT_EQ(queue.posted(), 0u);
}

TEST_F(SendQueueTest, AFailedPostLeavesTheSlotToTheCaller) {
  SendQueue queue(nullptr, 4, 2, RecordPost);
  next_rc = ENOMEM;
  ibv_send_wr wr = {};
  SendSlot slot;
  slot.read_cookie = 7;
  EXPECT_EQ(queue.Post(wr, slot, true), ENOMEM);
  EXPECT_EQ(slot.read_cookie, 7u);
  EXPECT_EQ(queue.posted(), 0u);
  EXPECT_FALSE(queue.has_signaled());
}

}  // namespace
}  // namespace demi
