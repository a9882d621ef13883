// The C API on an RDMA device, in one process: every documented errno, and
// the data path between two queues of a loopback connection.
#include <demi/libos.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "testing/demi_helpers.h"
#include "testing/rdma_env.h"

namespace {

using demi::testing::AddrOrDie;
using demi::testing::ClosePair;
using demi::testing::DemiPair;
using demi::testing::MakePair;
using demi::testing::Ms;
using demi::testing::NextPort;
using demi::testing::Pattern;
using demi::testing::PopString;
using demi::testing::PushString;
using demi::testing::Sa;
using demi::testing::SameBytes;
using demi::testing::SgaBytes;
using demi::testing::WaitOrFail;

// A small pool, so that a test can run it dry.
const auto* const kInit = ::testing::AddGlobalTestEnvironment(
    new demi::testing::DemiInitEnvironment(/*pool_limit_mb=*/256));

int NewSocket() {
  int qd = -1;
  EXPECT_EQ(demi_socket(&qd, AF_INET, SOCK_STREAM, 0), 0);
  return qd;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnonnull"

TEST(InitTest, SecondInitIsEexist) { EXPECT_EQ(demi_init(nullptr), EEXIST); }

TEST(SocketTest, BadArgumentsGetTheDocumentedErrno) {
  int qd = -1;
  EXPECT_EQ(demi_socket(&qd, AF_INET6, SOCK_STREAM, 0), ENOTSUP);
  EXPECT_EQ(demi_socket(&qd, AF_INET, SOCK_RAW, 0), ENOTSUP);
  EXPECT_EQ(demi_socket(nullptr, AF_INET, SOCK_STREAM, 0), EINVAL);
  EXPECT_EQ(demi_socket(&qd, AF_INET, SOCK_STREAM, 0), 0);
  EXPECT_GE(qd, 0);
  EXPECT_EQ(demi_close(qd), 0);
}

TEST(BindTest, BadArgumentsGetTheDocumentedErrno) {
  int qd = NewSocket();
  sockaddr_in addr = AddrOrDie(NextPort());
  EXPECT_EQ(demi_bind(qd, nullptr, sizeof(addr)), EINVAL);
  EXPECT_EQ(demi_bind(qd, Sa(addr), sizeof(addr) - 1), EINVAL);
  sockaddr_in wrong_family = addr;
  wrong_family.sin_family = AF_UNIX;
  EXPECT_EQ(demi_bind(qd, Sa(wrong_family), sizeof(addr)), ENOTSUP);
  sockaddr_in port_zero = addr;
  port_zero.sin_port = 0;
  EXPECT_EQ(demi_bind(qd, Sa(port_zero), sizeof(addr)), ENOTSUP);
  sockaddr_in elsewhere = addr;
  elsewhere.sin_addr.s_addr = htonl(0xcb007105);  // 203.0.113.5: no device.
  EXPECT_EQ(demi_bind(qd, Sa(elsewhere), sizeof(addr)), EADDRNOTAVAIL);
  EXPECT_EQ(demi_bind(qd, Sa(addr), sizeof(addr)), 0);
  EXPECT_EQ(demi_bind(qd, Sa(addr), sizeof(addr)), EINVAL);  // Twice.
  int other = NewSocket();
  EXPECT_EQ(demi_bind(other, Sa(addr), sizeof(addr)), EADDRINUSE);
  EXPECT_EQ(demi_close(qd), 0);
  EXPECT_EQ(demi_bind(qd, Sa(addr), sizeof(addr)), EBADF);  // Closed.
  EXPECT_EQ(demi_close(other), 0);
}

TEST(ListenTest, BadArgumentsGetTheDocumentedErrno) {
  int qd = NewSocket();
  EXPECT_EQ(demi_listen(qd, 8), EDESTADDRREQ);  // Unbound.
  sockaddr_in addr = AddrOrDie(NextPort());
  ASSERT_EQ(demi_bind(qd, Sa(addr), sizeof(addr)), 0);
  EXPECT_EQ(demi_listen(qd, 0), EINVAL);
  EXPECT_EQ(demi_listen(qd, SOMAXCONN + 1), EINVAL);
  EXPECT_EQ(demi_listen(qd, 8), 0);
  EXPECT_EQ(demi_listen(qd, 8), EADDRINUSE);  // Twice.
  EXPECT_EQ(demi_listen(12345678, 8), EBADF);
  EXPECT_EQ(demi_close(qd), 0);
  EXPECT_EQ(demi_close(qd), EBADF);  // Twice.
  EXPECT_EQ(demi_close(-1), EBADF);
}

TEST(AcceptTest, BadArgumentsGetTheDocumentedErrno) {
  demi_qtoken_t qt = 0;
  EXPECT_EQ(demi_accept(&qt, 12345678), EBADF);
  int qd = NewSocket();
  EXPECT_EQ(demi_accept(&qt, qd), EINVAL);  // Not listening.
  EXPECT_EQ(demi_accept(nullptr, qd), EINVAL);
  EXPECT_EQ(demi_close(qd), 0);
}

TEST(AcceptTest, PendingAcceptFailsWithEbadfWhenTheListenerCloses) {
  int qd = NewSocket();
  sockaddr_in addr = AddrOrDie(NextPort());
  ASSERT_EQ(demi_bind(qd, Sa(addr), sizeof(addr)), 0);
  ASSERT_EQ(demi_listen(qd, 8), 0);
  demi_qtoken_t qt = 0;
  ASSERT_EQ(demi_accept(&qt, qd), 0);
  EXPECT_EQ(demi_close(qd), 0);
  demi_qresult_t qr = WaitOrFail(qt);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, EBADF);
  EXPECT_EQ(qr.qr_qd, qd);
}

TEST(ConnectTest, BadArgumentsGetTheDocumentedErrno) {
  demi_qtoken_t qt = 0;
  sockaddr_in addr = AddrOrDie(NextPort());
  int qd = NewSocket();
  EXPECT_EQ(demi_connect(nullptr, qd, Sa(addr), sizeof(addr)), EINVAL);
  EXPECT_EQ(demi_connect(&qt, qd, nullptr, sizeof(addr)), EINVAL);
  EXPECT_EQ(demi_connect(&qt, qd, Sa(addr), sizeof(addr) + 1), EINVAL);
  EXPECT_EQ(demi_connect(&qt, 12345678, Sa(addr), sizeof(addr)), EBADF);
  int listener = NewSocket();
  ASSERT_EQ(demi_bind(listener, Sa(addr), sizeof(addr)), 0);
  ASSERT_EQ(demi_listen(listener, 8), 0);
  EXPECT_EQ(demi_connect(&qt, listener, Sa(addr), sizeof(addr)), EOPNOTSUPP);
  ASSERT_EQ(demi_connect(&qt, qd, Sa(addr), sizeof(addr)), 0);
  demi_qtoken_t again = 0;
  EXPECT_EQ(demi_connect(&again, qd, Sa(addr), sizeof(addr)), EINPROGRESS);
  EXPECT_EQ(demi_listen(qd, 8), EADDRINUSE);  // Connecting.
  demi_qtoken_t accept_qt = 0;
  ASSERT_EQ(demi_accept(&accept_qt, listener), 0);
  EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_CONNECT);
  demi_qresult_t accepted = WaitOrFail(accept_qt);
  EXPECT_EQ(accepted.qr_opcode, DEMI_OPC_ACCEPT);
  EXPECT_EQ(demi_connect(&again, qd, Sa(addr), sizeof(addr)), EISCONN);
  EXPECT_EQ(demi_listen(qd, 8), EISCONN);
  EXPECT_EQ(demi_bind(qd, Sa(addr), sizeof(addr)), EINVAL);  // Connected.
  EXPECT_EQ(demi_close(qd), 0);
  EXPECT_EQ(demi_close(accepted.qr_value.ares.qd), 0);
  EXPECT_EQ(demi_close(listener), 0);
}

TEST(ConnectTest, NobodyListeningFailsWithEconnrefused) {
  sockaddr_in addr = AddrOrDie(NextPort());
  int qd = NewSocket();
  demi_qtoken_t qt = 0;
  ASSERT_EQ(demi_connect(&qt, qd, Sa(addr), sizeof(addr)), 0);
  demi_qresult_t qr = WaitOrFail(qt);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, ECONNREFUSED);
  // The socket can try again.
  int listener = NewSocket();
  ASSERT_EQ(demi_bind(listener, Sa(addr), sizeof(addr)), 0);
  ASSERT_EQ(demi_listen(listener, 8), 0);
  demi_qtoken_t accept_qt = 0;
  ASSERT_EQ(demi_accept(&accept_qt, listener), 0);
  ASSERT_EQ(demi_connect(&qt, qd, Sa(addr), sizeof(addr)), 0);
  EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_CONNECT);
  demi_qresult_t accepted = WaitOrFail(accept_qt);
  EXPECT_EQ(accepted.qr_opcode, DEMI_OPC_ACCEPT);
  EXPECT_EQ(demi_close(qd), 0);
  EXPECT_EQ(demi_close(accepted.qr_value.ares.qd), 0);
  EXPECT_EQ(demi_close(listener), 0);
}

TEST(ConnectTest, WrongFamilyIsEnotsup) {
  sockaddr_in addr = AddrOrDie(NextPort());
  addr.sin_family = AF_INET6;
  int qd = NewSocket();
  demi_qtoken_t qt = 0;
  EXPECT_EQ(demi_connect(&qt, qd, Sa(addr), sizeof(addr)), ENOTSUP);
  EXPECT_EQ(demi_close(qd), 0);
}

TEST(ConnectTest, NoSuchHostFailsWithEhostunreach) {
  // 203.0.113.5: the test host has no route there. (A neighbour that never
  // answers ends in ETIMEDOUT instead, after rdma_cm's retries: a minute.)
  sockaddr_in addr = AddrOrDie(NextPort());
  addr.sin_addr.s_addr = htonl(0xcb007105u);
  int qd = NewSocket();
  demi_qtoken_t qt = 0;
  ASSERT_EQ(demi_connect(&qt, qd, Sa(addr), sizeof(addr)), 0);
  demi_qresult_t qr = WaitOrFail(qt);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, EHOSTUNREACH) << std::strerror(qr.qr_ret);
  EXPECT_EQ(demi_close(qd), 0);
}

TEST(ConnectTest, ClosingAConnectingSocketFailsItsTokenWithEbadf) {
  sockaddr_in addr = AddrOrDie(NextPort());
  int qd = NewSocket();
  demi_qtoken_t qt = 0;
  ASSERT_EQ(demi_connect(&qt, qd, Sa(addr), sizeof(addr)), 0);
  EXPECT_EQ(demi_close(qd), 0);
  demi_qresult_t qr = WaitOrFail(qt);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, EBADF);
}

TEST(PushPopTest, BadArgumentsGetTheDocumentedErrno) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  demi_qtoken_t qt = 0;
  char byte = 'x';
  demi_sgarray_t sga = {};
  sga.sga_numsegs = 1;
  sga.sga_segs[0].sgaseg_buf = &byte;
  sga.sga_segs[0].sgaseg_len = 1;
  EXPECT_EQ(demi_push(nullptr, pair.client, &sga), EINVAL);
  EXPECT_EQ(demi_push(&qt, pair.client, nullptr), EINVAL);
  demi_sgarray_t bad = sga;
  bad.sga_numsegs = 0;
  EXPECT_EQ(demi_push(&qt, pair.client, &bad), EINVAL);
  bad.sga_numsegs = DEMI_SGARRAY_MAXSIZE + 1;
  EXPECT_EQ(demi_push(&qt, pair.client, &bad), EINVAL);
  bad = sga;
  bad.sga_segs[0].sgaseg_len = 0;
  EXPECT_EQ(demi_push(&qt, pair.client, &bad), EINVAL);
  bad = sga;
  bad.sga_segs[0].sgaseg_buf = nullptr;
  EXPECT_EQ(demi_push(&qt, pair.client, &bad), EINVAL);
  bad = sga;
  bad.sga_numsegs = 2;
  bad.sga_segs[0].sgaseg_len = DEMI_MAX_MESSAGE_SIZE;
  bad.sga_segs[1] = sga.sga_segs[0];
  EXPECT_EQ(demi_push(&qt, pair.client, &bad), EINVAL);  // Too large.
  EXPECT_EQ(demi_push(&qt, 12345678, &sga), EBADF);
  EXPECT_EQ(demi_push(&qt, pair.listener, &sga), ENOTCONN);
  int fresh = NewSocket();
  EXPECT_EQ(demi_push(&qt, fresh, &sga), ENOTCONN);
  EXPECT_EQ(demi_pop(nullptr, pair.client), EINVAL);
  EXPECT_EQ(demi_pop(&qt, 12345678), EBADF);
  EXPECT_EQ(demi_pop(&qt, fresh), ENOTCONN);
  sockaddr_in addr = AddrOrDie(1);
  EXPECT_EQ(demi_pushto(&qt, pair.client, &sga, Sa(addr), sizeof(addr)),
            ENOTSUP);
  EXPECT_EQ(demi_pushto(&qt, pair.client, &sga, nullptr, sizeof(addr)), EINVAL);
  EXPECT_EQ(demi_pushto(&qt, 12345678, &sga, Sa(addr), sizeof(addr)), EBADF);
  EXPECT_EQ(demi_pushto(&qt, pair.client, &sga, Sa(addr), 3), EINVAL);
  EXPECT_EQ(demi_close(fresh), 0);
  ClosePair(pair);
}

TEST(SgaTest, AllocAndFreeFollowTheContract) {
  demi_sgarray_t none = demi_sgaalloc(0);
  EXPECT_EQ(none.sga_buf, nullptr);
  EXPECT_EQ(none.sga_numsegs, 0u);
  none = demi_sgaalloc(size_t{DEMI_MAX_MESSAGE_SIZE} + 1);
  EXPECT_EQ(none.sga_buf, nullptr);
  EXPECT_EQ(none.sga_numsegs, 0u);
  demi_sgarray_t big = demi_sgaalloc(8 << 20);
  ASSERT_EQ(big.sga_numsegs, 1u);
  EXPECT_EQ(big.sga_segs[0].sgaseg_len, 8u << 20);
  std::memset(big.sga_segs[0].sgaseg_buf, 0xab, 8 << 20);
  EXPECT_EQ(demi_sgafree(&big), 0);
  EXPECT_EQ(demi_sgafree(&big), EINVAL);  // Twice.
  EXPECT_EQ(demi_sgafree(nullptr), EINVAL);
  demi_sgarray_t bogus = demi_sgaalloc(64);
  demi_sgarray_t copy = bogus;
  copy.sga_buf = &copy;
  EXPECT_EQ(demi_sgafree(&copy), EINVAL);
  copy = bogus;
  copy.sga_numsegs = 0;
  EXPECT_EQ(demi_sgafree(&copy), EINVAL);
  EXPECT_EQ(demi_sgafree(&bogus), 0);
}

TEST(SgaTest, PoolLimitGivesNullSgasAndEagainPushes) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  std::vector<demi_sgarray_t> hoard;
  while (hoard.size() < 64) {
    demi_sgarray_t sga = demi_sgaalloc(DEMI_MAX_MESSAGE_SIZE);
    if (sga.sga_numsegs == 0) break;
    hoard.push_back(sga);
  }
  ASSERT_LT(hoard.size(), 64u) << "the 256 MiB pool limit was not reached";
  demi_sgarray_t none = demi_sgaalloc(DEMI_MAX_MESSAGE_SIZE);
  EXPECT_EQ(none.sga_buf, nullptr);
  EXPECT_EQ(none.sga_numsegs, 0u);
  // Exhaust the small pieces too, so a foreign copy cannot be had.
  std::vector<demi_sgarray_t> small;
  while (small.size() < 1000000) {
    demi_sgarray_t sga = demi_sgaalloc(100000);
    if (sga.sga_numsegs == 0) break;
    small.push_back(sga);
  }
  char foreign[3000] = {1};
  demi_sgarray_t sga = {};
  sga.sga_numsegs = 1;
  sga.sga_segs[0].sgaseg_buf = foreign;
  sga.sga_segs[0].sgaseg_len = sizeof(foreign);
  demi_qtoken_t qt = 0;
  // 3000 B fits a class that may still have free pieces; run it dry too.
  while (true) {
    demi_sgarray_t more = demi_sgaalloc(sizeof(foreign));
    if (more.sga_numsegs == 0) break;
    small.push_back(more);
  }
  EXPECT_EQ(demi_push(&qt, pair.client, &sga), EAGAIN);
  for (auto& s : hoard) EXPECT_EQ(demi_sgafree(&s), 0);
  for (auto& s : small) EXPECT_EQ(demi_sgafree(&s), 0);
  // With memory back, the same push goes through.
  ASSERT_EQ(demi_push(&qt, pair.client, &sga), 0);
  EXPECT_EQ(PopString(pair.server).size(), sizeof(foreign));
  EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
  for (int qd : {pair.client, pair.server, pair.listener}) {
    EXPECT_EQ(demi_close(qd), 0);
  }
}

TEST(FlowTest, ReceivesRunDryWithThePoolAndComeBackWithIt) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  // Pushed before the pool runs dry: what the client's credits allow goes
  // out at once, the rest waits in the client for credits.
  constexpr int kMessages = 300;
  std::vector<demi_qtoken_t> pushes;
  for (int i = 0; i < kMessages; ++i) {
    pushes.push_back(PushString(pair.client, "m" + std::to_string(i)));
  }
  // Run the pool dry, receive-buffer size class included, before the
  // server has seen any of them: the shared receive queue cannot be
  // refilled, so no credit can go back.
  std::vector<demi_sgarray_t> hoard;
  for (size_t size : {size_t{DEMI_MAX_MESSAGE_SIZE}, size_t{8192}}) {
    while (hoard.size() < 1000000) {
      demi_sgarray_t sga = demi_sgaalloc(size);
      if (sga.sga_numsegs == 0) break;
      hoard.push_back(sga);
    }
  }
  // Popped sgas are receive buffers: keep them too. Messages arrive until
  // the credits run out; then a pop waits (the sender never pushes into a
  // missing buffer).
  int popped = 0;
  demi_qtoken_t waiting = 0;
  while (true) {
    ASSERT_EQ(demi_pop(&waiting, pair.server), 0);
    demi_qresult_t qr;
    timespec wait = Ms(2000);
    int err = demi_wait(&qr, waiting, &wait);
    if (err == ETIMEDOUT) break;
    ASSERT_EQ(err, 0);
    ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP);
    ASSERT_EQ(SgaBytes(qr.qr_value.sga), "m" + std::to_string(popped));
    hoard.push_back(qr.qr_value.sga);
    ++popped;
    ASSERT_LT(popped, kMessages) << "the receives never ran dry";
  }
  EXPECT_GE(popped, 1);
  for (auto& sga : hoard) EXPECT_EQ(demi_sgafree(&sga), 0);
  // With memory back the SRQ is refilled and the credits it backs flow
  // back: every other message arrives, the waiting pop first.
  demi_qresult_t qr = WaitOrFail(waiting);
  ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP);
  ASSERT_EQ(SgaBytes(qr.qr_value.sga), "m" + std::to_string(popped));
  EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
  for (int i = popped + 1; i < kMessages; ++i) {
    ASSERT_EQ(PopString(pair.server), "m" + std::to_string(i));
  }
  for (demi_qtoken_t qt : pushes) {
    EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
  }
  ClosePair(pair);
}

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

TEST(SockOptTest, LingerRoundTripsAndBadArgumentsFail) {
  int qd = NewSocket();
  struct linger set = {1, 7};
  EXPECT_EQ(demi_setsockopt(qd, IPPROTO_TCP, SO_LINGER, &set, sizeof(set)),
            ENOTSUP);
  EXPECT_EQ(demi_setsockopt(qd, SOL_SOCKET, SO_KEEPALIVE, &set, sizeof(set)),
            ENOPROTOOPT);
  EXPECT_EQ(demi_setsockopt(qd, SOL_SOCKET, SO_LINGER, nullptr, sizeof(set)),
            EINVAL);
  EXPECT_EQ(demi_setsockopt(qd, SOL_SOCKET, SO_LINGER, &set, 1), EINVAL);
  EXPECT_EQ(demi_setsockopt(12345678, SOL_SOCKET, SO_LINGER, &set, sizeof(set)),
            EBADF);
  EXPECT_EQ(demi_setsockopt(qd, SOL_SOCKET, SO_LINGER, &set, sizeof(set)), 0);
  struct linger got = {};
  socklen_t len = sizeof(got);
  EXPECT_EQ(demi_getsockopt(qd, SOL_SOCKET, SO_LINGER, &got, &len), 0);
  EXPECT_EQ(got.l_onoff, 1);
  EXPECT_EQ(got.l_linger, 7);
  EXPECT_EQ(len, sizeof(got));
  len = 1;
  EXPECT_EQ(demi_getsockopt(qd, SOL_SOCKET, SO_LINGER, &got, &len), EINVAL);
  EXPECT_EQ(demi_getsockopt(qd, SOL_SOCKET, SO_LINGER, &got, nullptr), EINVAL);
  EXPECT_EQ(demi_getsockopt(qd, SOL_SOCKET, SO_RCVBUF, &got, &len),
            ENOPROTOOPT);
  EXPECT_EQ(demi_getsockopt(qd, 99, SO_LINGER, &got, &len), ENOTSUP);
  EXPECT_EQ(demi_close(qd), 0);
}

TEST(PeerNameTest, ConnectedSocketsKnowTheirPeer) {
  int fresh = NewSocket();
  sockaddr_in addr = {};
  socklen_t len = sizeof(addr);
  sockaddr* sa = reinterpret_cast<sockaddr*>(&addr);
  EXPECT_EQ(demi_getpeername(fresh, sa, &len), ENOTCONN);
  EXPECT_EQ(demi_getpeername(fresh, nullptr, &len), EINVAL);
  EXPECT_EQ(demi_getpeername(fresh, sa, nullptr), EINVAL);
  len = 3;
  EXPECT_EQ(demi_getpeername(fresh, sa, &len), EINVAL);
  len = sizeof(addr);
  EXPECT_EQ(demi_getpeername(12345678, sa, &len), EBADF);
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  ASSERT_EQ(demi_getpeername(pair.client, sa, &len), 0);
  sockaddr_in server_addr = AddrOrDie(0);
  EXPECT_EQ(addr.sin_addr.s_addr, server_addr.sin_addr.s_addr);
  ASSERT_EQ(demi_getpeername(pair.server, sa, &len), 0);
  EXPECT_EQ(addr.sin_addr.s_addr, server_addr.sin_addr.s_addr);
  for (int qd : {fresh, pair.client, pair.server, pair.listener}) {
    EXPECT_EQ(demi_close(qd), 0);
  }
}

#pragma GCC diagnostic pop

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
  demi_sgarray_t sga = {};
  sga.sga_numsegs = 1;
  sga.sga_segs[0].sgaseg_buf = heap;
  sga.sga_segs[0].sgaseg_len = static_cast<uint32_t>(size);
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
  }
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
