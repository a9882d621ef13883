#include "demi/qtoken_table.h"

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/types/optional.h"
#include "gtest/gtest.h"

namespace demi {
namespace {

// Completes the pop `qt` with `length` bytes (no buffer, no source).
void CompletePop(QTokenTable& table, demi_qtoken_t qt, uint32_t length) {
  table.CompletePop(qt, nullptr, nullptr, length, sockaddr_in{});
}

absl::optional<demi_qresult_t> Take(QTokenTable& table, demi_qtoken_t qt) {
  demi_qresult_t result;
  if (!table.Take(qt, &result)) return absl::nullopt;
  return result;
}

absl::optional<demi_qresult_t> TakeNextDone(QTokenTable& table) {
  demi_qresult_t result;
  if (!table.TakeNextDone(&result)) return absl::nullopt;
  return result;
}

TEST(QTokenTableTest, TokensAreNeverZeroOrReused) {
  QTokenTable table;
  demi_qtoken_t a = table.Add(3, DEMI_OPC_POP);
  demi_qtoken_t b = table.Add(3, DEMI_OPC_POP);
  EXPECT_NE(a, 0u);
  EXPECT_NE(a, b);
  EXPECT_FALSE(table.Contains(0));
  EXPECT_FALSE(table.Contains(UINT64_MAX));
}

TEST(QTokenTableTest, ResultIsTakenOnceWithQdAndToken) {
  QTokenTable table;
  demi_qtoken_t qt = table.Add(7, DEMI_OPC_POP);
  EXPECT_FALSE(Take(table, qt).has_value());  // Still pending.
  CompletePop(table, qt, 42);
  absl::optional<demi_qresult_t> result = Take(table, qt);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->qr_opcode, DEMI_OPC_POP);
  EXPECT_EQ(result->qr_qd, 7);
  EXPECT_EQ(result->qr_qt, qt);
  EXPECT_EQ(result->qr_value.sga.sga_segs[0].sgaseg_len, 42u);
  EXPECT_FALSE(table.Contains(qt));
  EXPECT_FALSE(Take(table, qt).has_value());
}

TEST(QTokenTableTest, SucceedAndCompletePopFillTheResult) {
  QTokenTable table;
  demi_qtoken_t push = table.Add(2, DEMI_OPC_PUSH);
  demi_qtoken_t pop = table.Add(2, DEMI_OPC_POP);
  table.Succeed(push, DEMI_OPC_PUSH);
  char bytes[8] = {};
  sockaddr_in from = {};
  from.sin_port = 77;
  table.CompletePop(pop, &bytes, bytes + 2, 6, from);
  absl::optional<demi_qresult_t> got = Take(table, push);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->qr_opcode, DEMI_OPC_PUSH);
  EXPECT_EQ(got->qr_ret, 0);
  got = Take(table, pop);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->qr_opcode, DEMI_OPC_POP);
  const demi_sgarray_t& sga = got->qr_value.sga;
  EXPECT_EQ(sga.sga_buf, static_cast<void*>(&bytes));
  EXPECT_EQ(sga.sga_numsegs, 1u);
  EXPECT_EQ(sga.sga_segs[0].sgaseg_buf, static_cast<void*>(bytes + 2));
  EXPECT_EQ(sga.sga_segs[0].sgaseg_len, 6u);
  sockaddr_in got_from = sga.sga_addr;
  EXPECT_EQ(got_from.sin_port, 77);
}

TEST(QTokenTableTest, CompleteAcceptFillsTheNewConnection) {
  QTokenTable table;
  demi_qtoken_t qt = table.Add(5, DEMI_OPC_ACCEPT);
  sockaddr_in peer = {};
  peer.sin_port = 99;
  table.CompleteAccept(qt, 12, peer);
  demi_qresult_t result;
  std::memset(&result, 0xff, sizeof(result));
  ASSERT_TRUE(table.TakeNextDone(&result));
  EXPECT_EQ(result.qr_opcode, DEMI_OPC_ACCEPT);
  EXPECT_EQ(result.qr_qd, 5);
  EXPECT_EQ(result.qr_qt, qt);
  EXPECT_EQ(result.qr_ret, 0);
  EXPECT_EQ(result.qr_value.ares.qd, 12);
  sockaddr_in got_peer = result.qr_value.ares.addr;
  EXPECT_EQ(got_peer.sin_port, 99);
}

// A result without a value (a push, a failure) says so with an empty sga,
// whatever the caller's result held before.
TEST(QTokenTableTest, ResultsWithoutValueHaveAnEmptySga) {
  QTokenTable table;
  demi_qtoken_t push = table.Add(1, DEMI_OPC_PUSH);
  demi_qtoken_t pop = table.Add(1, DEMI_OPC_POP);
  table.Succeed(push, DEMI_OPC_PUSH);
  table.Fail(pop, ECONNRESET);
  for (demi_qtoken_t qt : {push, pop}) {
    demi_qresult_t result;
    std::memset(&result, 0xff, sizeof(result));
    ASSERT_TRUE(table.Take(qt, &result));
    EXPECT_EQ(result.qr_value.sga.sga_buf, nullptr);
    EXPECT_EQ(result.qr_value.sga.sga_numsegs, 0u);
  }
}

TEST(QTokenTableTest, FailSetsOpcodeAndErrno) {
  QTokenTable table;
  demi_qtoken_t qt = table.Add(1, DEMI_OPC_PUSH);
  table.Fail(qt, ECONNRESET);
  CompletePop(table, qt, 1);  // A second completion is ignored.
  absl::optional<demi_qresult_t> result = Take(table, qt);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(result->qr_ret, ECONNRESET);
}

TEST(QTokenTableTest, AddFailedIsDoneAsFailedInDoneOrder) {
  QTokenTable table;
  demi_qtoken_t pending = table.Add(3, DEMI_OPC_POP);
  demi_qtoken_t failed = table.AddFailed(3, DEMI_OPC_PUSH, EIO);
  EXPECT_TRUE(table.IsDone(failed));
  EXPECT_FALSE(table.IsDone(pending));
  demi_qresult_t result;
  ASSERT_TRUE(table.TakeNextDone(&result));
  EXPECT_EQ(result.qr_qt, failed);
  EXPECT_EQ(result.qr_qd, 3);
  EXPECT_EQ(result.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(result.qr_ret, EIO);
  EXPECT_FALSE(table.TakeNextDone(&result));
}

TEST(QTokenTableTest, NextDoneFollowsCompletionOrderAndSkipsTaken) {
  QTokenTable table;
  demi_qtoken_t a = table.Add(1, DEMI_OPC_PUSH);
  demi_qtoken_t b = table.Add(1, DEMI_OPC_PUSH);
  demi_qtoken_t c = table.Add(1, DEMI_OPC_PUSH);
  table.Fail(c, EIO);
  table.Fail(a, EIO);
  table.Fail(b, EIO);
  ASSERT_TRUE(Take(table, a).has_value());
  EXPECT_EQ(TakeNextDone(table)->qr_qt, c);
  EXPECT_EQ(TakeNextDone(table)->qr_qt, b);
  EXPECT_FALSE(TakeNextDone(table).has_value());
}

TEST(QTokenTableTest, ManyTakenTokensDoNotAccumulate) {
  QTokenTable table;
  for (int i = 0; i < 100000; ++i) {
    demi_qtoken_t qt = table.Add(1, DEMI_OPC_PUSH);
    demi_qtoken_t other = table.Add(1, DEMI_OPC_PUSH);
    table.Fail(other, EIO);
    table.Fail(qt, EIO);
    Take(table, qt);
    Take(table, other);
  }
  EXPECT_EQ(table.size(), 0u);
  EXPECT_FALSE(TakeNextDone(table).has_value());
}

// An operation done as it starts (an inline push): its result is in at
// once, in completion order (after those done before it, before those
// done after it), for the waits' inline takes too, and is taken only once;
// the same as Add and Succeed, also in a slot a failed token used, and when
// its ring slot holds a live older token.
TEST(QTokenTableTest, AddDoneIsInAtOnceInCompletionOrder) {
  QTokenTable table;
  demi_qtoken_t pending = table.Add(2, DEMI_OPC_POP);
  demi_qtoken_t earlier = table.Add(1, DEMI_OPC_PUSH);
  table.Succeed(earlier, DEMI_OPC_PUSH);
  demi_qtoken_t done = table.AddDone(5, DEMI_OPC_PUSH);
  EXPECT_TRUE(table.IsDone(done));
  EXPECT_FALSE(table.IsDone(pending));
  EXPECT_EQ(table.size(), 3u);
  table.CompletePop(pending, nullptr, nullptr, 7, sockaddr_in{});
  demi_qresult_t result;
  ASSERT_TRUE(table.TakeNextDoneInRing(&result));
  EXPECT_EQ(result.qr_qt, earlier);
  ASSERT_TRUE(table.TakeNextDoneInRing(&result));
  EXPECT_EQ(result.qr_qt, done);
  EXPECT_EQ(result.qr_qd, 5);
  EXPECT_EQ(result.qr_opcode, DEMI_OPC_PUSH);
  EXPECT_EQ(result.qr_ret, 0);
  EXPECT_EQ(result.qr_value.sga.sga_numsegs, 0u);
  EXPECT_FALSE(Take(table, done).has_value());
  EXPECT_FALSE(table.Contains(done));
  ASSERT_TRUE(table.TakeNextDoneInRing(&result));
  EXPECT_EQ(result.qr_qt, pending);
  EXPECT_EQ(table.size(), 0u);

  // Every slot of the ring once held a failed token: a done one written
  // there has no error.
  for (int i = 0; i < 1024; ++i) {
    demi_qtoken_t qt = table.Add(1, DEMI_OPC_PUSH);
    table.Fail(qt, EIO);
    ASSERT_TRUE(table.TakeInRing(qt, &result));
    ASSERT_EQ(result.qr_ret, EIO);
  }
  done = table.AddDone(6, DEMI_OPC_PUSH);
  ASSERT_TRUE(table.TakeInRing(done, &result));
  EXPECT_EQ(result.qr_opcode, DEMI_OPC_PUSH);
  EXPECT_EQ(result.qr_ret, 0);
  EXPECT_FALSE(table.TakeInRing(done, &result));

  // Done tokens that come to the slot of `waiting` move it out of the
  // ring; it stays pending.
  demi_qtoken_t waiting = table.Add(2, DEMI_OPC_POP);
  for (int i = 0; i < 3000; ++i) {
    demi_qtoken_t qt = table.AddDone(1, DEMI_OPC_PUSH);
    ASSERT_TRUE(Take(table, qt).has_value());
  }
  EXPECT_TRUE(table.Contains(waiting));
  EXPECT_FALSE(TakeNextDone(table).has_value());
  table.CompletePop(waiting, nullptr, nullptr, 7, sockaddr_in{});
  absl::optional<demi_qresult_t> last = TakeNextDone(table);
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->qr_qt, waiting);
  EXPECT_EQ(last->qr_value.sga.sga_segs[0].sgaseg_len, 7u);
  EXPECT_EQ(table.size(), 0u);
}

// A token that stays pending while many newer ones come and go (a long
// demi_accept, say), and one whose result nobody takes for a long time.
TEST(QTokenTableTest, OldTokensOutliveManyNewerOnes) {
  QTokenTable table;
  demi_qtoken_t waiting = table.Add(3, DEMI_OPC_ACCEPT);
  demi_qtoken_t untaken = table.Add(4, DEMI_OPC_PUSH);
  table.Fail(untaken, EIO);
  std::vector<demi_qtoken_t> seen;
  for (int i = 0; i < 5000; ++i) {
    demi_qtoken_t qt = table.Add(1, DEMI_OPC_POP);
    seen.push_back(qt);
    table.Fail(qt, EIO);
    ASSERT_TRUE(Take(table, qt).has_value());
  }
  EXPECT_EQ(table.size(), 2u);
  EXPECT_TRUE(table.Contains(waiting));
  EXPECT_FALSE(table.IsDone(waiting));
  for (demi_qtoken_t qt : seen) ASSERT_FALSE(table.Contains(qt));
  table.Fail(waiting, ECONNRESET);
  absl::optional<demi_qresult_t> result = Take(table, waiting);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->qr_qd, 3);
  EXPECT_EQ(result->qr_ret, ECONNRESET);
  EXPECT_EQ(TakeNextDone(table)->qr_qt, untaken);
  EXPECT_EQ(table.size(), 0u);
  EXPECT_FALSE(table.Contains(waiting));
}

// The waits' inline takes handle the common case only, and decline (taking
// nothing) what the full takes then handle: a token moved out of the ring,
// a done order whose head was taken already.
TEST(QTokenTableTest, RingTakesDeclineWhatTheFullTakesHandle) {
  QTokenTable table;
  demi_qresult_t result = {};
  demi_qtoken_t old = table.Add(5, DEMI_OPC_POP);
  for (int i = 0; i < 2000; ++i) {
    demi_qtoken_t qt = table.Add(1, DEMI_OPC_PUSH);
    table.Succeed(qt, DEMI_OPC_PUSH);
    ASSERT_TRUE(table.TakeInRing(qt, &result));
    EXPECT_EQ(result.qr_qt, qt);
    EXPECT_EQ(result.qr_opcode, DEMI_OPC_PUSH);
    EXPECT_EQ(result.qr_value.sga.sga_numsegs, 0u);
  }
  CompletePop(table, old, 9);  // Out of the ring by now.
  EXPECT_FALSE(table.TakeInRing(old, &result));
  EXPECT_FALSE(table.TakeNextDoneInRing(&result));
  EXPECT_TRUE(table.IsDone(old));
  absl::optional<demi_qresult_t> taken = TakeNextDone(table);
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->qr_qt, old);
  EXPECT_EQ(taken->qr_qd, 5);
  EXPECT_EQ(taken->qr_value.sga.sga_segs[0].sgaseg_len, 9u);
  EXPECT_FALSE(table.Contains(old));

  demi_qtoken_t a = table.Add(1, DEMI_OPC_PUSH);
  demi_qtoken_t b = table.Add(2, DEMI_OPC_POP);
  table.Succeed(a, DEMI_OPC_PUSH);
  CompletePop(table, b, 7);
  ASSERT_TRUE(table.TakeInRing(b, &result));  // Not the head: stays there.
  EXPECT_EQ(result.qr_qd, 2);
  EXPECT_EQ(result.qr_value.sga.sga_segs[0].sgaseg_len, 7u);
  ASSERT_TRUE(table.TakeNextDoneInRing(&result));
  EXPECT_EQ(result.qr_qt, a);
  // b's place in the done order, taken already, is now the head.
  EXPECT_FALSE(table.TakeNextDoneInRing(&result));
  EXPECT_FALSE(TakeNextDone(table).has_value());
  EXPECT_FALSE(table.TakeInRing(a, &result));  // Taken twice: nothing.
  EXPECT_EQ(table.size(), 0u);
}

// Results taken out of completion order leave their places in the done
// order behind; the ring take declines once they pile up, and Take (a
// wait's slow path) compacts them.
TEST(QTokenTableTest, RingTakesLeaveCompactingTheDoneOrderToTake) {
  QTokenTable table;
  demi_qresult_t result = {};
  table.Add(9, DEMI_OPC_POP);  // Pending throughout.
  int declined = 0;
  for (int i = 0; i < 2000; ++i) {
    demi_qtoken_t x = table.Add(1, DEMI_OPC_PUSH);
    demi_qtoken_t y = table.Add(1, DEMI_OPC_PUSH);
    table.Succeed(x, DEMI_OPC_PUSH);
    table.Succeed(y, DEMI_OPC_PUSH);
    for (demi_qtoken_t qt : {y, x}) {
      if (!table.TakeInRing(qt, &result)) {
        ++declined;
        ASSERT_TRUE(table.IsDone(qt));
        ASSERT_TRUE(table.Take(qt, &result));
      }
      ASSERT_EQ(result.qr_qt, qt);
    }
  }
  // About every 500 rounds: 2 places left per round, 1,024 allowed.
  EXPECT_GE(declined, 3);
  EXPECT_LE(declined, 4);
  EXPECT_EQ(table.size(), 1u);
  EXPECT_FALSE(TakeNextDone(table).has_value());
}

// Erase forgets a token that never started, in the ring or out of it.
TEST(QTokenTableTest, EraseForgets) {
  QTokenTable table;
  demi_qtoken_t qt = table.Add(1, DEMI_OPC_PUSH);
  table.Erase(qt);
  EXPECT_FALSE(table.Contains(qt));
  EXPECT_EQ(table.size(), 0u);
  demi_qtoken_t old = table.Add(1, DEMI_OPC_PUSH);
  for (int i = 0; i < 2000; ++i) table.Erase(table.Add(1, DEMI_OPC_POP));
  EXPECT_TRUE(table.Contains(old));
  table.Erase(old);
  EXPECT_FALSE(table.Contains(old));
  EXPECT_EQ(table.size(), 0u);
}

}  // namespace
}  // namespace demi
