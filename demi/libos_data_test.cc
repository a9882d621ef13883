// The C API on an RDMA device, in one process: waits, and the data path
// between two queues of a loopback connection (part of libos_test, which
// initializes the library).
#include <demi/libos.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "demi/limits.h"
#include "gtest/gtest.h"
#include "testing/demi_helpers.h"
#include "testing/rdma_env.h"

namespace {

using demi::testing::ClosePair;
using demi::testing::DemiPair;
using demi::testing::MakePair;
using demi::testing::Ms;
using demi::testing::Pattern;
using demi::testing::PopString;
using demi::testing::PushString;
using demi::testing::SameBytes;
using demi::testing::SgaBytes;
using demi::testing::WaitOrFail;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnonnull"

TEST(WaitTest, BadTokensAndArgumentsAreEinval) {
  demi_qresult_t qr;
  int offset = 0;
  timespec zero = Ms(0);
  EXPECT_EQ(demi_wait(&qr, 0, &zero), EINVAL);
  EXPECT_EQ(demi_wait(&qr, UINT64_MAX, &zero), EINVAL);
  EXPECT_EQ(demi_wait(nullptr, 1, &zero), EINVAL);
  demi_qtoken_t bad = UINT64_MAX;
  EXPECT_EQ(demi_wait_any(&qr, &offset, &bad, 1, &zero), EINVAL);
  EXPECT_EQ(demi_wait_any(&qr, &offset, &bad, -1, &zero), EINVAL);
  EXPECT_EQ(demi_wait_any(nullptr, &offset, &bad, 1, &zero), EINVAL);
  EXPECT_EQ(demi_wait_any(&qr, nullptr, &bad, 1, &zero), EINVAL);
  EXPECT_EQ(demi_wait_any(&qr, &offset, nullptr, 1, &zero), EINVAL);
  EXPECT_EQ(demi_wait_any(&qr, &offset, nullptr, 0, &zero), ETIMEDOUT);
  EXPECT_EQ(demi_wait_next_n(&qr, 0, &offset, &zero), EINVAL);
  EXPECT_EQ(demi_wait_next_n(nullptr, 1, &offset, &zero), EINVAL);
  EXPECT_EQ(demi_wait_next_n(&qr, 1, nullptr, &zero), EINVAL);
  timespec negative = {-1, 0};
  EXPECT_EQ(demi_wait_any(&qr, &offset, nullptr, 0, &negative), EINVAL);
}

TEST(WaitTest, TimeoutsAreHonouredAndTokensConsumedOnce) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  demi_qtoken_t pop_qt = 0;
  ASSERT_EQ(demi_pop(&pop_qt, pair.server), 0);
  demi_qresult_t qr;
  timespec zero = Ms(0);
  EXPECT_EQ(demi_wait(&qr, pop_qt, &zero), ETIMEDOUT);
  timespec short_wait = Ms(100);
  absl::Time start = absl::Now();
  EXPECT_EQ(demi_wait(&qr, pop_qt, &short_wait), ETIMEDOUT);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(100));
  demi_qtoken_t push_qt = PushString(pair.client, "hello");
  ASSERT_EQ(demi_wait(&qr, pop_qt, nullptr), 0);  // NULL: until done.
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_POP);
  EXPECT_EQ(qr.qr_qt, pop_qt);
  EXPECT_EQ(qr.qr_qd, pair.server);
  EXPECT_EQ(SgaBytes(qr.qr_value.sga), "hello");
  EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
  EXPECT_EQ(demi_wait(&qr, pop_qt, &zero), EINVAL);  // Consumed.
  EXPECT_EQ(WaitOrFail(push_qt).qr_opcode, DEMI_OPC_PUSH);
  EXPECT_EQ(demi_wait(&qr, push_qt, &zero), EINVAL);
  ClosePair(pair);
}

TEST(WaitTest, WaitAnyOverAThousandOutstandingTokens) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  constexpr int kTokens = 1000;
  std::vector<demi_qtoken_t> pops(kTokens);
  for (auto& qt : pops) ASSERT_EQ(demi_pop(&qt, pair.server), 0);
  demi_qresult_t qr;
  int offset = -1;
  timespec zero = Ms(0);
  EXPECT_EQ(demi_wait_any(&qr, &offset, pops.data(), kTokens, &zero),
            ETIMEDOUT);
  std::vector<demi_qtoken_t> pushes;
  for (int i = 0; i < kTokens; ++i) {
    pushes.push_back(PushString(pair.client, "m" + std::to_string(i)));
  }
  // Pops complete in order, so each wait_any finds the lowest pending one.
  for (int i = 0; i < kTokens; ++i) {
    timespec deadline = absl::ToTimespec(absl::Seconds(60));
    ASSERT_EQ(
        demi_wait_any(&qr, &offset, pops.data() + i, kTokens - i, &deadline),
        0);
    ASSERT_EQ(offset, 0);
    ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP);
    EXPECT_EQ(SgaBytes(qr.qr_value.sga), "m" + std::to_string(i));
    EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
  }
  for (demi_qtoken_t qt : pushes) {
    EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
  }
  ClosePair(pair);
}

TEST(WaitTest, WaitAnyReportsTheIndexOfTheCompletedToken) {
  DemiPair a, b;
  ASSERT_TRUE(MakePair(&a));
  ASSERT_TRUE(MakePair(&b));
  std::vector<demi_qtoken_t> qts(500);
  for (auto& qt : qts) ASSERT_EQ(demi_pop(&qt, a.server), 0);
  demi_qtoken_t last = 0;
  ASSERT_EQ(demi_pop(&last, b.server), 0);
  qts.push_back(last);
  demi_qtoken_t push = PushString(b.client, "to b");
  demi_qresult_t qr;
  int offset = -1;
  timespec deadline = absl::ToTimespec(absl::Seconds(60));
  ASSERT_EQ(demi_wait_any(&qr, &offset, qts.data(), qts.size(), &deadline), 0);
  EXPECT_EQ(offset, 500);
  EXPECT_EQ(SgaBytes(qr.qr_value.sga), "to b");
  EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
  EXPECT_EQ(WaitOrFail(push).qr_opcode, DEMI_OPC_PUSH);
  // Local close fails the 500 pending pops with EBADF.
  EXPECT_EQ(demi_close(a.server), 0);
  for (int i = 0; i < 500; ++i) {
    demi_qresult_t failed = WaitOrFail(qts[i]);
    EXPECT_EQ(failed.qr_opcode, DEMI_OPC_FAILED);
    EXPECT_EQ(failed.qr_ret, EBADF);
  }
  for (int qd : {a.client, a.listener, b.client, b.server, b.listener}) {
    EXPECT_EQ(demi_close(qd), 0);
  }
}

TEST(WaitTest, WaitNextNReturnsCompletionsWithoutTokens) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  demi_qtoken_t pops[3];
  for (auto& qt : pops) ASSERT_EQ(demi_pop(&qt, pair.server), 0);
  demi_qtoken_t pushes[3];
  for (int i = 0; i < 3; ++i) {
    pushes[i] = PushString(pair.client, std::string(10 + i, 'a' + i));
  }
  std::vector<demi_qresult_t> results;
  absl::Time deadline = absl::Now() + demi::testing::Scaled(absl::Seconds(60));
  while (results.size() < 6 && absl::Now() < deadline) {
    demi_qresult_t qrs[6];
    int n = 0;
    timespec wait = Ms(50);
    int err = demi_wait_next_n(qrs, 6 - results.size(), &n, &wait);
    ASSERT_TRUE(err == 0 || err == ETIMEDOUT) << err;
    results.insert(results.end(), qrs, qrs + n);
  }
  ASSERT_EQ(results.size(), 6u);
  int popped = 0;
  for (demi_qresult_t& qr : results) {
    if (qr.qr_opcode == DEMI_OPC_POP) {
      EXPECT_EQ(qr.qr_qt, pops[popped]);
      EXPECT_EQ(SgaBytes(qr.qr_value.sga),
                std::string(10 + popped, 'a' + popped));
      EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
      ++popped;
    } else {
      EXPECT_EQ(qr.qr_opcode, DEMI_OPC_PUSH);
    }
  }
  EXPECT_EQ(popped, 3);
  demi_qresult_t qr;
  timespec zero = Ms(0);
  EXPECT_EQ(demi_wait(&qr, pushes[0], &zero), EINVAL);  // Consumed.
  int n = -1;
  EXPECT_EQ(demi_wait_next_n(&qr, 1, &n, &zero), ETIMEDOUT);
  EXPECT_EQ(n, 0);
  ClosePair(pair);
}

#pragma GCC diagnostic pop

// An sga of the `size` bytes at `data`, memory the library did not lend.
demi_sgarray_t OneSegment(void* data, size_t size) {
  demi_sgarray_t sga = {};
  sga.sga_numsegs = 1;
  sga.sga_segs[0].sgaseg_buf = data;
  sga.sga_segs[0].sgaseg_len = static_cast<uint32_t>(size);
  return sga;
}

class DataTest : public ::testing::TestWithParam<size_t> {
 protected:
  void SetUp() override { ASSERT_TRUE(MakePair(&pair_)); }
  void TearDown() override {
    EXPECT_EQ(demi_close(pair_.client), 0);
    EXPECT_EQ(demi_close(pair_.server), 0);
    EXPECT_EQ(demi_close(pair_.listener), 0);
  }
  DemiPair pair_;
};

TEST_P(DataTest, RoundTripIsByteExact) {
  size_t size = GetParam();
  std::string there = Pattern(size, 1);
  demi_qtoken_t push = PushString(pair_.client, there);
  EXPECT_TRUE(SameBytes(PopString(pair_.server), there));
  EXPECT_EQ(WaitOrFail(push).qr_opcode, DEMI_OPC_PUSH);
  // And back: the popped sga itself is pushed, as an echo server would.
  std::string back = Pattern(size, 2);
  push = PushString(pair_.server, back);
  demi_qtoken_t pop = 0;
  ASSERT_EQ(demi_pop(&pop, pair_.client), 0);
  demi_qresult_t qr = WaitOrFail(pop);
  ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP);
  EXPECT_EQ(WaitOrFail(push).qr_opcode, DEMI_OPC_PUSH);
  ASSERT_EQ(qr.qr_value.sga.sga_numsegs, 1u);
  EXPECT_TRUE(SameBytes(SgaBytes(qr.qr_value.sga), back));
  demi_qtoken_t echo = 0;
  ASSERT_EQ(demi_push(&echo, pair_.client, &qr.qr_value.sga), 0);
  EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
  EXPECT_TRUE(SameBytes(PopString(pair_.server), back));
  EXPECT_EQ(WaitOrFail(echo).qr_opcode, DEMI_OPC_PUSH);
}

TEST_P(DataTest, MultiSegmentMessageArrivesWhole) {
  size_t size = GetParam();
  constexpr int kSegments = 3;
  std::string whole;
  demi_sgarray_t parts[kSegments];
  demi_sgarray_t sga = {};
  sga.sga_numsegs = kSegments;
  for (int i = 0; i < kSegments; ++i) {
    // Segments of about size / kSegments, so the message stays in bounds.
    std::string bytes =
        Pattern(std::max<size_t>(1, size / kSegments) + i, 10 + i);
    parts[i] = demi_sgaalloc(bytes.size());
    ASSERT_EQ(parts[i].sga_numsegs, 1u);
    std::memcpy(parts[i].sga_segs[0].sgaseg_buf, bytes.data(), bytes.size());
    sga.sga_segs[i] = parts[i].sga_segs[0];
    whole += bytes;
  }
  sga.sga_buf = parts[0].sga_buf;
  demi_qtoken_t push = 0;
  ASSERT_EQ(demi_push(&push, pair_.client, &sga), 0);
  for (auto& part : parts) EXPECT_EQ(demi_sgafree(&part), 0);
  EXPECT_TRUE(SameBytes(PopString(pair_.server), whole));
  EXPECT_EQ(WaitOrFail(push).qr_opcode, DEMI_OPC_PUSH);
}

TEST_P(DataTest, FreedRightAfterPushStillArrivesIntact) {
  size_t size = GetParam();
  std::string bytes = Pattern(size, 5);
  demi_sgarray_t sga = demi_sgaalloc(size);
  ASSERT_EQ(sga.sga_numsegs, 1u);
  std::memcpy(sga.sga_segs[0].sgaseg_buf, bytes.data(), size);
  demi_qtoken_t push = 0;
  ASSERT_EQ(demi_push(&push, pair_.client, &sga), 0);
  ASSERT_EQ(demi_sgafree(&sga), 0);
  // Allocations of the same size would reuse the piece if the push did not
  // hold it; scribble over whatever they get.
  std::vector<demi_sgarray_t> scribbles;
  for (int i = 0; i < 4; ++i) {
    scribbles.push_back(demi_sgaalloc(size));
    std::memset(scribbles.back().sga_segs[0].sgaseg_buf, 0x5a, size);
  }
  EXPECT_TRUE(SameBytes(PopString(pair_.server), bytes));
  EXPECT_EQ(WaitOrFail(push).qr_opcode, DEMI_OPC_PUSH);
  for (auto& s : scribbles) EXPECT_EQ(demi_sgafree(&s), 0);
}

TEST_P(DataTest, ForeignMemoryIsSentAsItWasAtPushTime) {
  size_t size = GetParam();
  std::string bytes = Pattern(size, 9);
  char* heap = static_cast<char*>(std::malloc(size));
  std::memcpy(heap, bytes.data(), size);
  demi_sgarray_t sga = OneSegment(heap, size);
  demi_qtoken_t push = 0;
  ASSERT_EQ(demi_push(&push, pair_.client, &sga), 0);
  if (size <= 64 * 1024) {
    // Small foreign memory is copied at push time: reuse it at once.
    std::memset(heap, 0x33, size);
    std::free(heap);
    heap = nullptr;
  }
  EXPECT_TRUE(SameBytes(PopString(pair_.server), bytes));
  EXPECT_EQ(WaitOrFail(push).qr_opcode, DEMI_OPC_PUSH);
  std::free(heap);  // Large: registered for the push, free once it is done.
}

// Memory the application may only read (a constant table, a file mapped
// PROT_READ) is sent too: the kernel will not register it for the memory
// window a large rendezvous binds, so it is copied.
TEST_P(DataTest, ReadOnlyMemoryIsSent) {
  size_t size = GetParam();
  std::string bytes = Pattern(size, 13);
  void* map = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(map, MAP_FAILED);
  std::memcpy(map, bytes.data(), size);
  ASSERT_EQ(mprotect(map, size, PROT_READ), 0);
  demi_sgarray_t sga = OneSegment(map, size);
  demi_qtoken_t push = 0;
  ASSERT_EQ(demi_push(&push, pair_.client, &sga), 0);
  EXPECT_TRUE(SameBytes(PopString(pair_.server), bytes));
  EXPECT_EQ(WaitOrFail(push).qr_opcode, DEMI_OPC_PUSH);
  EXPECT_EQ(munmap(map, size), 0);
}

// Memory that cannot be read at all (mapped PROT_NONE: unmapped memory
// could be mapped again by anyone meanwhile) fails a large push with the
// registration's errno: nothing is copied from it, nothing faults.
TEST(StreamTest, UnreadableMemoryFailsALargePushWithEfault) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  constexpr size_t kSize = 1 << 20;
  void* map =
      mmap(nullptr, kSize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(map, MAP_FAILED);
  demi_sgarray_t sga = OneSegment(map, kSize);
  demi_qtoken_t push = 0;
  EXPECT_EQ(demi_push(&push, pair.client, &sga), EFAULT);
  // The connection carries on.
  demi_qtoken_t qt = PushString(pair.client, "still here");
  EXPECT_EQ(PopString(pair.server), "still here");
  EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
  ClosePair(pair);
  EXPECT_EQ(munmap(map, kSize), 0);
}

INSTANTIATE_TEST_SUITE_P(Sizes, DataTest,
                         ::testing::Values(1, 64, 4096, 8176, 8177, 1 << 20,
                                           8 << 20));

TEST(StreamTest, MessagesKeepTheirBoundariesAndOrder) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  std::vector<std::string> sent;
  std::vector<demi_qtoken_t> pushes;
  for (size_t size : {1, 100, 9000, 3, 200000, 7}) {
    sent.push_back(Pattern(size, static_cast<uint32_t>(size)));
    pushes.push_back(PushString(pair.client, sent.back()));
  }
  for (const std::string& bytes : sent) {
    EXPECT_TRUE(SameBytes(PopString(pair.server), bytes));
  }
  for (demi_qtoken_t qt : pushes) {
    EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
  }
  ClosePair(pair);
}

// Small pushes in a burst are staged and posted together (SendQueue); the
// others go at once, behind whatever was staged: the order holds.
TEST(StreamTest, BurstsOfSmallPushesKeepTheirOrderAmongLargerOnes) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  // Staged (at most 128 bytes), eager but not inline, rendezvous.
  const size_t kSizes[] = {8, 128, 1, 129, 60, 5000, 100, 9000, 2, 2};
  std::vector<std::string> sent;
  std::vector<demi_qtoken_t> pushes;
  for (int i = 0; i < 300; ++i) {
    size_t size = kSizes[i % (sizeof(kSizes) / sizeof(kSizes[0]))];
    sent.push_back(Pattern(size, static_cast<uint32_t>(i)));
    pushes.push_back(PushString(pair.client, sent.back()));
  }
  for (size_t i = 0; i < sent.size(); ++i) {
    ASSERT_TRUE(SameBytes(PopString(pair.server), sent[i])) << "message " << i;
  }
  for (demi_qtoken_t qt : pushes) {
    ASSERT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
  }
  ClosePair(pair);
}

TEST(StreamTest, ManyMorePushesThanCreditsWaitInTheLibrary) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  constexpr int kMessages = 5000;
  std::vector<demi_qtoken_t> pushes;
  for (int i = 0; i < kMessages; ++i) {
    pushes.push_back(PushString(pair.client, "#" + std::to_string(i)));
  }
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_EQ(PopString(pair.server), "#" + std::to_string(i));
  }
  for (demi_qtoken_t qt : pushes) {
    ASSERT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
  }
  ClosePair(pair);
}

// Each side pushes before it pops, as over TCP: the client waits for its
// rendezvous pushes before it pops what the server sent. The server's
// completions of them (RNDV_DONE) spend its last credits, since its own
// messages hold the rest at the client, unpopped; the client must give one
// back for the second completion to go, or its second push never completes
// while the server's application has the message already.
TEST(StreamTest, RendezvousPushesCompleteWhileThePushersPopsWait) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  for (const char* bytes : {"first", "second"}) {
    EXPECT_EQ(WaitOrFail(PushString(pair.server, bytes)).qr_opcode,
              DEMI_OPC_PUSH);
  }
  const std::string large[] = {Pattern(64 << 10, 1), Pattern(64 << 10, 2)};
  demi_qtoken_t pushes[] = {PushString(pair.client, large[0]),
                            PushString(pair.client, large[1])};
  for (const std::string& bytes : large) {
    EXPECT_TRUE(SameBytes(PopString(pair.server), bytes));
  }
  for (demi_qtoken_t qt : pushes) {
    demi_qresult_t qr;
    timespec timeout = Ms(5000);
    ASSERT_EQ(demi_wait(&qr, qt, &timeout), 0);
    EXPECT_EQ(qr.qr_opcode, DEMI_OPC_PUSH);
  }
  EXPECT_EQ(PopString(pair.client), "first");
  EXPECT_EQ(PopString(pair.client), "second");
  ClosePair(pair);
}

TEST(StreamTest, LargeMessagesTakeMoreReadsThanTheSendQueueHolds) {
  // Every pop waits at once, so the receiver wants all these READs at
  // once: it posts what the send queue has room for, the rest as READs
  // complete.
  constexpr size_t kSize = 4 << 20;
  constexpr int kMessages = 12;
  static_assert(kMessages * (kSize / demi::kReadPiece) > demi::kSendDepth);
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  std::vector<demi_qtoken_t> pushes;
  for (int i = 0; i < kMessages; ++i) {
    pushes.push_back(PushString(pair.client, Pattern(kSize, 40 + i)));
  }
  std::vector<demi_qtoken_t> pops(kMessages);
  for (demi_qtoken_t& pop : pops) ASSERT_EQ(demi_pop(&pop, pair.server), 0);
  for (int i = 0; i < kMessages; ++i) {
    demi_qresult_t qr = WaitOrFail(pops[i]);
    ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP) << "qr_ret " << qr.qr_ret;
    EXPECT_TRUE(SameBytes(SgaBytes(qr.qr_value.sga), Pattern(kSize, 40 + i)));
    EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
  }
  for (demi_qtoken_t qt : pushes) {
    EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
  }
  ClosePair(pair);
}

// Read ahead: the receiver reads a few rendezvous messages past its pops,
// so a stream popped one message at a time does not wait a READ round
// trip per message. Each test pushes messages from pool sgas it keeps,
// lets the progress engine run with no pop, then scribbles over what it
// pushed (breaking its promise on purpose): a message read only at its pop
// shows the scribbles.
class ReadAheadTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(MakePair(&pair_)); }
  void TearDown() override {
    for (demi_qtoken_t qt : pushes_) {
      EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
    }
    for (demi_sgarray_t& sga : sgas_) EXPECT_EQ(demi_sgafree(&sga), 0);
    ClosePair(pair_);
  }

  // Pushes Pattern(sizes[i], seed + i) for each size, lets the engine run
  // (every push stays pending: its RNDV_DONE goes with its pop), then
  // scribbles over them all.
  void PushThenScribble(std::initializer_list<size_t> sizes, uint32_t seed) {
    uint32_t i = 0;
    for (size_t size : sizes) {
      demi_sgarray_t sga = demi_sgaalloc(size);
      ASSERT_EQ(sga.sga_numsegs, 1u);
      sgas_.push_back(sga);
      std::string bytes = Pattern(size, seed + i++);
      std::memcpy(sga.sga_segs[0].sgaseg_buf, bytes.data(), size);
      demi_qtoken_t qt = 0;
      ASSERT_EQ(demi_push(&qt, pair_.client, &sga), 0);
      pushes_.push_back(qt);
    }
    // Reading 64 KiB ahead takes a few milliseconds on rxe.
    demi_qresult_t qr;
    timespec window = absl::ToTimespec(demi::testing::Scaled(absl::Seconds(1)));
    EXPECT_EQ(demi_wait(&qr, pushes_.front(), &window), ETIMEDOUT);
    for (const demi_sgarray_t& sga : sgas_) {
      std::memset(sga.sga_segs[0].sgaseg_buf, 0xee, sga.sga_segs[0].sgaseg_len);
    }
  }

  DemiPair pair_;
  std::vector<demi_sgarray_t> sgas_;
  std::vector<demi_qtoken_t> pushes_;
};

// Two: the pusher keeps one of its three credits in reserve.
TEST_F(ReadAheadTest, RendezvousMessagesAreReadAheadOfThePops) {
  constexpr size_t kSize = 64 << 10;
  static_assert(2 <= demi::kReadAheadMessages);
  static_assert(2 * kSize <= demi::kReadAheadBytes);
  ASSERT_NO_FATAL_FAILURE(PushThenScribble({kSize, kSize}, 60));
  for (uint32_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(SameBytes(PopString(pair_.server), Pattern(kSize, 60 + i)))
        << "message " << i << " was read at its pop, not ahead";
  }
}

// Read ahead holds memory nobody asked for yet: no more than
// kReadAheadBytes of messages a connection. The second does not fit
// beside the first, so it is read only once the first is popped, after
// the scribbles.
TEST_F(ReadAheadTest, ReadAheadStopsAtItsBytes) {
  constexpr size_t kFirst = 64 << 10;
  constexpr size_t kSecond = demi::kReadAheadBytes - kFirst / 2;
  ASSERT_NO_FATAL_FAILURE(PushThenScribble({kFirst, kSecond}, 70));
  EXPECT_TRUE(SameBytes(PopString(pair_.server), Pattern(kFirst, 70)));
  EXPECT_TRUE(SameBytes(PopString(pair_.server), std::string(kSecond, '\xee')))
      << "read ahead past kReadAheadBytes";
}

TEST(CloseTest, OrderlyCloseDeliversEverythingThenEof) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  demi_qtoken_t a = PushString(pair.client, "first");
  demi_qtoken_t b = PushString(pair.client, Pattern(100000, 3));
  EXPECT_EQ(WaitOrFail(a).qr_opcode, DEMI_OPC_PUSH);
  (void)b;  // The rendezvous completes once the server reads it.
  demi_qtoken_t pop = 0;
  ASSERT_EQ(demi_pop(&pop, pair.server), 0);
  EXPECT_EQ(SgaBytes(WaitOrFail(pop).qr_value.sga), "first");
  std::string second = PopString(pair.server);
  EXPECT_TRUE(SameBytes(second, Pattern(100000, 3)));
  EXPECT_EQ(WaitOrFail(b).qr_opcode, DEMI_OPC_PUSH);
  EXPECT_EQ(demi_close(pair.client), 0);
  for (int i = 0; i < 2; ++i) {  // EOF, and EOF again.
    ASSERT_EQ(demi_pop(&pop, pair.server), 0);
    demi_qresult_t qr = WaitOrFail(pop);
    EXPECT_EQ(qr.qr_opcode, DEMI_OPC_POP);
    EXPECT_EQ(qr.qr_value.sga.sga_segs[0].sgaseg_len, 0u);
    EXPECT_EQ(qr.qr_value.sga.sga_buf, nullptr);
    // A program that frees every popped sga frees this one too: it holds
    // nothing, and freeing it is no error, in this thread or another.
    EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
    std::thread([&qr] { EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0); }).join();
  }
  // Only that shape: a null sga_buf with a segment is no array of ours.
  demi_sgarray_t bogus = {};
  bogus.sga_numsegs = 1;
  bogus.sga_segs[0].sgaseg_len = 1;
  EXPECT_EQ(demi_sgafree(&bogus), EINVAL);
  EXPECT_EQ(demi_close(pair.server), 0);
  EXPECT_EQ(demi_close(pair.listener), 0);
}

TEST(CloseTest, LocalCloseFailsPendingOperationsWithEbadf) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  demi_qtoken_t pop = 0;
  ASSERT_EQ(demi_pop(&pop, pair.server), 0);
  EXPECT_EQ(demi_close(pair.server), 0);
  demi_qresult_t qr = WaitOrFail(pop);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, EBADF);
  EXPECT_EQ(qr.qr_qd, pair.server);
  ASSERT_EQ(demi_pop(&pop, pair.server), EBADF);
  // The client sees the server's orderly close as EOF.
  EXPECT_EQ(PopString(pair.client), "");
  EXPECT_EQ(demi_close(pair.client), 0);
  EXPECT_EQ(demi_close(pair.listener), 0);
}

}  // namespace
