#include "demi/send_queue.h"

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace demi {
namespace {

// What the device was given (each request, and the bytes of its first
// segment), in how many posts, and which request of the next post it fails
// (-1: none) with which errno.
std::vector<ibv_send_wr> posted;
std::vector<std::string> posted_bytes;
int posts = 0;
int fail_at = -1;
int fail_rc = ENOMEM;

int RecordPost(ibv_qp*, ibv_send_wr* wr, ibv_send_wr** bad) {
  ++posts;
  for (int i = 0; wr != nullptr; wr = wr->next, ++i) {
    if (i == fail_at) {
      *bad = wr;
      return fail_rc;
    }
    posted.push_back(*wr);
    posted_bytes.emplace_back(
        wr->num_sge > 0 ? reinterpret_cast<const char*>(wr->sg_list[0].addr)
                        : "",
        wr->num_sge > 0 ? wr->sg_list[0].length : 0);
  }
  return 0;
}

auto NoStaged() {
  return [](demi_qtoken_t, int) { ADD_FAILURE() << "nothing was staged"; };
}

using Reports = std::vector<std::pair<demi_qtoken_t, int>>;

class SendQueueTest : public ::testing::Test {
 protected:
  // A `done` for Post, Flush and DropStaged that records into `reports`.
  auto Report() {
    return [this](demi_qtoken_t qt, int err) { reports.push_back({qt, err}); };
  }
  Reports reports;

  void SetUp() override {
    posted.clear();
    posted_bytes.clear();
    posts = 0;
    fail_at = -1;
    fail_rc = ENOMEM;
  }
  // Posts a slot of `kind`; returns its wr_id.
  uint64_t PostOne(SendQueue& queue, bool must_signal = false,
                   uint64_t cookie = 0, SendSlot::Kind kind = SendSlot::kRead) {
    ibv_send_wr wr = {};
    SendSlot slot(kind);
    slot.read_id = cookie;
    EXPECT_EQ(queue.Post(wr, slot, must_signal, NoStaged()), 0);
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

TEST_F(SendQueueTest, ADepthBelowAPowerOfTwoHoldsThatManyAndWraps) {
  // As a QP of 63 requests (rxe's 64 slots): the ring rounds up, and every
  // slot keeps its own until it retires, across wraps.
  SendQueue queue(nullptr, 7, 4, RecordPost);
  EXPECT_EQ(queue.ring_size(), 8u);
  std::vector<uint64_t> retired;
  auto record = [&](SendSlot& slot, int) { retired.push_back(slot.read_id); };
  uint64_t next = 0;
  for (int round = 0; round < 3; ++round) {
    while (queue.room() > 0) PostOne(queue, false, 1000 + next++);
    EXPECT_EQ(queue.posted(), 7u);
    EXPECT_TRUE(queue.Complete(next - 1, 0, record));
    EXPECT_EQ(queue.posted(), 0u);
  }
  ASSERT_EQ(retired.size(), 21u);
  for (uint64_t i = 0; i < retired.size(); ++i) {
    EXPECT_EQ(retired[i], 1000 + i);
  }
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
    fail_at = 0;  // A failed post counts nothing.
    ibv_send_wr wr = {};
    SendSlot slot;
    EXPECT_EQ(a.Post(wr, slot, true, NoStaged()), ENOMEM);
    EXPECT_EQ(total, 2u);
    fail_at = -1;
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
    retired.push_back({slot.read_id, err});
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
    retired.push_back({slot.read_id, err});
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
    cookies.push_back(slot.read_id);
    PostOne(queue, false, 40);
  });
  EXPECT_EQ(cookies, std::vector<uint64_t>({0}));
  EXPECT_EQ(queue.posted(), 4u);
  std::vector<uint64_t> all;
  queue.ForEachPosted([&](SendSlot& slot) { all.push_back(slot.read_id); });
  EXPECT_EQ(all, std::vector<uint64_t>({1, 2, 3, 40}));
  queue.Complete(4, 0,
                 [&](SendSlot& slot, int) { cookies.push_back(slot.read_id); });
  EXPECT_EQ(cookies, std::vector<uint64_t>({0, 1, 2, 3, 40}));
  EXPECT_EQ(queue.posted(), 0u);
}

TEST_F(SendQueueTest, AFailedPostLeavesTheSlotToTheCaller) {
  SendQueue queue(nullptr, 4, 2, RecordPost);
  fail_at = 0;
  ibv_send_wr wr = {};
  SendSlot slot;
  slot.read_id = 7;
  EXPECT_EQ(queue.Post(wr, slot, true, NoStaged()), ENOMEM);
  EXPECT_EQ(slot.read_id, 7u);
  EXPECT_EQ(queue.posted(), 0u);
  EXPECT_FALSE(queue.has_signaled());
}

// Stages an inline send of `text` for `qt`.
bool Stage(SendQueue& queue, std::string text, demi_qtoken_t qt) {
  ibv_sge sges[2] = {{reinterpret_cast<uintptr_t>(text.data()), 1, 0},
                     {reinterpret_cast<uintptr_t>(text.data() + 1),
                      static_cast<uint32_t>(text.size() - 1), 0}};
  bool staged = queue.StageInline(sges, 2, IBV_WR_SEND_WITH_IMM,
                                  static_cast<uint32_t>(qt) + 1000, qt);
  text.assign(text.size(), 'x');  // Copied: the caller's bytes are free.
  return staged;
}

TEST_F(SendQueueTest,
       ABarePostTakesAnEmptySlotSpacesSignalsAndGoesAfterStaged) {
  SendQueue queue(nullptr, 4, 2, RecordPost);
  auto report = Report();
  ASSERT_TRUE(Stage(queue, "one", 11));
  ibv_send_wr wr = {};
  ASSERT_EQ(queue.PostBare(wr, report), 0);
  EXPECT_EQ(posts, 1);  // Behind the staged send, in the same post.
  ASSERT_EQ(posted.size(), 2u);
  EXPECT_EQ(posted[1].wr_id, 1u);
  EXPECT_NE(posted[1].send_flags & IBV_SEND_SIGNALED, 0u);  // 2nd in a row.
  EXPECT_EQ(reports, (Reports{{11, 0}}));
  EXPECT_TRUE(queue.has_signaled());
  // Its slot holds nothing: retired only as the last, with the error.
  std::vector<std::pair<int, int>> retired;
  EXPECT_TRUE(queue.Complete(1, 9, [&](SendSlot& slot, int err) {
    EXPECT_EQ(slot.push, nullptr);
    EXPECT_FALSE(slot.piece);
    EXPECT_EQ(slot.qt, 0u);
    retired.push_back({slot.kind, err});
  }));
  EXPECT_EQ(retired,
            (std::vector<std::pair<int, int>>{{SendSlot::kControl, 9}}));
  EXPECT_FALSE(queue.has_signaled());
  // A failed bare post takes no slot.
  fail_at = 0;
  ibv_send_wr failing = {};
  EXPECT_EQ(queue.PostBare(failing, NoStaged()), ENOMEM);
  EXPECT_EQ(queue.posted(), 0u);
}

TEST_F(SendQueueTest, StagedSendsGoFirstInTheNextPostInOrder) {
  SendQueue queue(nullptr, 8, 8, RecordPost);
  auto report = Report();
  ASSERT_TRUE(Stage(queue, "one", 11));
  ASSERT_TRUE(Stage(queue, "two", 12));
  EXPECT_EQ(queue.staged(), 2u);
  EXPECT_EQ(queue.posted(), 2u);  // They hold their slots already.
  EXPECT_EQ(queue.room(), 6u);
  EXPECT_EQ(posts, 0);
  ibv_send_wr wr = {};
  SendSlot slot(SendSlot::kRead);
  ASSERT_EQ(queue.Post(wr, slot, false, report), 0);
  EXPECT_EQ(posts, 1);  // One doorbell for all three.
  ASSERT_EQ(posted.size(), 3u);
  EXPECT_EQ(posted_bytes[0], "one");
  EXPECT_EQ(posted_bytes[1], "two");
  for (uint64_t i = 0; i < 3; ++i) EXPECT_EQ(posted[i].wr_id, i);
  EXPECT_EQ(posted[0].opcode, IBV_WR_SEND_WITH_IMM);
  EXPECT_EQ(posted[0].imm_data, 1011u);
  EXPECT_NE(posted[0].send_flags & IBV_SEND_INLINE, 0u);
  EXPECT_EQ(reports, (Reports{{11, 0}, {12, 0}}));
  EXPECT_EQ(queue.staged(), 0u);
  EXPECT_EQ(queue.posted(), 3u);
}

TEST_F(SendQueueTest, FlushPostsABatchInOnePostAndABatchHasALimit) {
  SendQueue queue(nullptr, 2 * kDoorbellBatch, kDoorbellBatch, RecordPost);
  auto report = Report();
  EXPECT_EQ(queue.Flush(report), 0);  // Nothing staged: nothing posted.
  EXPECT_EQ(posts, 0);
  for (uint32_t i = 0; i < kDoorbellBatch; ++i) {
    ASSERT_TRUE(Stage(queue, "m" + std::to_string(i), 100 + i));
  }
  EXPECT_FALSE(Stage(queue, "full", 999));
  ASSERT_EQ(queue.Flush(report), 0);
  EXPECT_EQ(posts, 1);
  ASSERT_EQ(posted.size(), kDoorbellBatch);
  EXPECT_EQ(posted_bytes.back(), "m" + std::to_string(kDoorbellBatch - 1));
  ASSERT_EQ(reports.size(), kDoorbellBatch);
  EXPECT_EQ(reports.back(),
            (std::pair<demi_qtoken_t, int>{100 + kDoorbellBatch - 1, 0}));
  // The signalling rule runs through staged sends too.
  EXPECT_NE(posted.back().send_flags & IBV_SEND_SIGNALED, 0u);
  EXPECT_TRUE(queue.has_signaled());
  ASSERT_TRUE(Stage(queue, "again", 7));  // Room in the batch again.
}

TEST_F(SendQueueTest, AFailedChainReportsWhatWasNotPostedAndTakesItsSlotsBack) {
  uint32_t total = 0;
  SendQueue queue(nullptr, 8, 2, RecordPost, &total);
  auto report = Report();
  ASSERT_TRUE(Stage(queue, "a", 1));
  ASSERT_TRUE(Stage(queue, "b", 2));  // Signalled (every 2nd).
  ASSERT_TRUE(Stage(queue, "c", 3));
  EXPECT_EQ(total, 1u);
  fail_at = 1;
  fail_rc = EINVAL;
  ibv_send_wr wr = {};
  SendSlot slot(SendSlot::kRead);
  slot.read_id = 9;
  EXPECT_EQ(queue.Post(wr, slot, true, report), EINVAL);
  EXPECT_EQ(reports, (Reports{{1, 0}, {2, EINVAL}, {3, EINVAL}}));
  EXPECT_EQ(slot.read_id, 9u);  // Still the caller's.
  EXPECT_EQ(queue.posted(), 1u);
  EXPECT_EQ(queue.staged(), 0u);
  EXPECT_EQ(total, 0u);  // The signalled one never went out.
  // The next request takes the first slot not posted.
  fail_at = -1;
  ibv_send_wr next = {};
  SendSlot again(SendSlot::kRead);
  ASSERT_EQ(queue.Post(next, again, false, NoStaged()), 0);
  EXPECT_EQ(next.wr_id, 1u);
}

TEST_F(SendQueueTest, DroppedStagedSendsReportTheErrorAndFreeTheirSlots) {
  uint32_t total = 0;
  SendQueue queue(nullptr, 8, 1, RecordPost, &total);
  auto report = Report();
  ASSERT_TRUE(Stage(queue, "a", 5));
  ASSERT_TRUE(Stage(queue, "b", 0));  // No token: nothing to report.
  EXPECT_EQ(total, 2u);
  queue.DropStaged(ECONNRESET, report);
  EXPECT_EQ(reports, (Reports{{5, ECONNRESET}}));
  EXPECT_EQ(queue.posted(), 0u);
  EXPECT_EQ(total, 0u);
  EXPECT_FALSE(queue.has_signaled());
  EXPECT_EQ(posts, 0);
}

TEST_F(SendQueueTest, APostThatNamesNoRequestPostedNone) {
  SendQueue queue(nullptr, 8, 8, [](ibv_qp*, ibv_send_wr*, ibv_send_wr**) {
    return -1;  // Not even an errno.
  });
  auto report = Report();
  ASSERT_TRUE(Stage(queue, "a", 5));
  EXPECT_EQ(queue.Flush(report), EIO);
  EXPECT_EQ(reports, (Reports{{5, EIO}}));
  EXPECT_EQ(queue.posted(), 0u);
}

}  // namespace
}  // namespace demi
