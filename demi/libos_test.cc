// The C API on an RDMA device, in one process: every documented errno, and
// the pool and flow control at their limits (waits and the data path are in
// libos_data_test.cc, linked into the same test).
#include <demi/libos.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "testing/demi_helpers.h"
#include "testing/rdma_env.h"

namespace {

using demi::testing::AddrOrDie;
using demi::testing::ClosePair;
using demi::testing::ConnectAndAccept;
using demi::testing::DemiPair;
using demi::testing::MakePair;
using demi::testing::Ms;
using demi::testing::NextPort;
using demi::testing::PopString;
using demi::testing::PushString;
using demi::testing::Sa;
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
  int server = ConnectAndAccept(qd, listener, addr);
  ASSERT_GE(server, 0);
  EXPECT_EQ(demi_close(qd), 0);
  EXPECT_EQ(demi_close(server), 0);
  EXPECT_EQ(demi_close(listener), 0);
}

// A new socket bound to `local` whose connect to a port nobody listens on
// has failed with ECONNREFUSED.
int BoundAfterARefusedConnect(const sockaddr_in& local) {
  sockaddr_in nobody = AddrOrDie(NextPort());
  int qd = NewSocket();
  EXPECT_EQ(demi_bind(qd, Sa(local), sizeof(local)), 0);
  demi_qtoken_t qt = 0;
  EXPECT_EQ(demi_connect(&qt, qd, Sa(nobody), sizeof(nobody)), 0);
  demi_qresult_t qr = WaitOrFail(qt);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, ECONNREFUSED);
  return qd;
}

// As on Linux, a failed connect leaves the socket bound where it was, and
// the next connect goes out from that port.
TEST(ConnectTest, BoundSocketKeepsItsPortAfterAFailedConnect) {
  uint16_t port = NextPort();
  sockaddr_in local = AddrOrDie(port);
  int qd = BoundAfterARefusedConnect(local);
  EXPECT_EQ(demi_bind(qd, Sa(local), sizeof(local)), EINVAL);  // Bound.
  int other = NewSocket();
  EXPECT_EQ(demi_bind(other, Sa(local), sizeof(local)), EADDRINUSE);
  EXPECT_EQ(demi_close(other), 0);

  sockaddr_in server = AddrOrDie(NextPort());
  int listener = NewSocket();
  ASSERT_EQ(demi_bind(listener, Sa(server), sizeof(server)), 0);
  ASSERT_EQ(demi_listen(listener, 8), 0);
  int accepted = ConnectAndAccept(qd, listener, server);
  ASSERT_GE(accepted, 0);
  sockaddr_in peer = {};
  socklen_t len = sizeof(peer);
  ASSERT_EQ(
      demi_getpeername(accepted, reinterpret_cast<sockaddr*>(&peer), &len), 0);
  EXPECT_EQ(peer.sin_addr.s_addr, local.sin_addr.s_addr);
  EXPECT_EQ(ntohs(peer.sin_port), port);
  EXPECT_EQ(demi_close(qd), 0);
  EXPECT_EQ(demi_close(accepted), 0);
  EXPECT_EQ(demi_close(listener), 0);
}

// Linux: a socket that never connected leaves no TIME_WAIT behind, so its
// port is free the moment it is closed.
TEST(ConnectTest, ClosingABoundSocketAfterAFailedConnectFreesItsPort) {
  sockaddr_in local = AddrOrDie(NextPort());
  int qd = BoundAfterARefusedConnect(local);
  EXPECT_EQ(demi_close(qd), 0);
  int next = NewSocket();
  EXPECT_EQ(demi_bind(next, Sa(local), sizeof(local)), 0);
  EXPECT_EQ(demi_listen(next, 8), 0);
  EXPECT_EQ(demi_close(next), 0);
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

TEST(ConnectTest, InaddrAnyFailsWithEhostunreach) {
  // 0.0.0.0 resolves to the loopback, which has no RDMA route (found by
  // api_fuzzer: the connect failed with ENODEV).
  sockaddr_in addr = AddrOrDie(NextPort());
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
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

}  // namespace
