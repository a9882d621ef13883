// SOCK_DGRAM on an RDMA device (UD queue pairs), in one process: every
// documented errno of the datagram calls, fragmentation at its edges,
// reassembly of interleaved senders, and a raw UD peer (testing/ud_peer)
// that sends malformed, spoofed and endless partial datagrams on purpose.
#include <arpa/inet.h>
#include <demi/libos.h>
#include <endian.h>
#include <infiniband/verbs.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/time/clock.h"
#include "demi/datagram_wire.h"
#include "demi/limits.h"
#include "gtest/gtest.h"
#include "testing/demi_helpers.h"
#include "testing/rdma_env.h"
#include "testing/ud_peer.h"

namespace {

using demi::DatagramHeader;
using demi::kMaxDatagram;
using demi::testing::AddrOrDie;
using demi::testing::Ms;
using demi::testing::NextPort;
using demi::testing::Pattern;
using demi::testing::Sa;
using demi::testing::SameBytes;
using demi::testing::SgaBytes;
using demi::testing::WaitOrFail;

// A pool small enough that unbounded reassembly would run it dry.
const auto* const kInit = ::testing::AddGlobalTestEnvironment(
    new demi::testing::DemiInitEnvironment(/*pool_limit_mb=*/64));

// A datagram socket bound to the test address at `port`.
int BoundSocket(uint16_t port) {
  int qd = -1;
  EXPECT_EQ(demi_socket(&qd, AF_INET, SOCK_DGRAM, 0), 0);
  sockaddr_in local = AddrOrDie(port);
  EXPECT_EQ(demi_bind(qd, Sa(local), sizeof(local)), 0);
  return qd;
}

// Starts sending `bytes` to `dest` from a fresh buffer (freed at once:
// the push holds it).
demi_qtoken_t StartPushTo(int qd, const std::string& bytes,
                          const sockaddr_in& dest) {
  demi_sgarray_t sga = demi_sgaalloc(bytes.size());
  EXPECT_EQ(sga.sga_numsegs, 1u);
  std::memcpy(sga.sga_segs[0].sgaseg_buf, bytes.data(), bytes.size());
  demi_qtoken_t qt = 0;
  EXPECT_EQ(demi_pushto(&qt, qd, &sga, Sa(dest), sizeof(dest)), 0);
  EXPECT_EQ(demi_sgafree(&sga), 0);
  return qt;
}

void PushTo(int qd, const std::string& bytes, const sockaddr_in& dest) {
  demi_qresult_t qr = WaitOrFail(StartPushTo(qd, bytes, dest));
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_PUSH) << "qr_ret " << qr.qr_ret;
}

// Pops one datagram: its bytes, and its source in `from`.
std::string PopFrom(int qd, sockaddr_in* from) {
  demi_qtoken_t qt = 0;
  EXPECT_EQ(demi_pop(&qt, qd), 0);
  demi_qresult_t qr = WaitOrFail(qt, absl::Seconds(20));
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_POP) << "qr_ret " << qr.qr_ret;
  if (qr.qr_opcode != DEMI_OPC_POP) return "";
  if (from != nullptr) *from = qr.qr_value.sga.sga_addr;
  std::string bytes = SgaBytes(qr.qr_value.sga);
  EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
  return bytes;
}

// demi_getpeername of `qd` is `want`.
void ExpectPeerName(int qd, const sockaddr_in& want) {
  sockaddr_in peer = {};
  socklen_t len = sizeof(peer);
  ASSERT_EQ(demi_getpeername(qd, reinterpret_cast<sockaddr*>(&peer), &len), 0);
  EXPECT_EQ(peer.sin_port, want.sin_port);
  EXPECT_EQ(peer.sin_addr.s_addr, want.sin_addr.s_addr);
}

demi_datagram_stats_t Stats(int qd) {
  demi_datagram_stats_t stats = {};
  socklen_t len = sizeof(stats);
  EXPECT_EQ(
      demi_getsockopt(qd, SOL_SOCKET, DEMI_SO_DATAGRAM_STATS, &stats, &len), 0);
  EXPECT_EQ(len, sizeof(stats));
  return stats;
}

// Lets the library run for `ms` (a pop on `qd` is started and left).
void Progress(int qd, int ms, demi_qtoken_t* pending) {
  if (*pending == 0) {
    ASSERT_EQ(demi_pop(pending, qd), 0);
  }
  demi_qresult_t qr;
  timespec t = Ms(ms);
  ASSERT_EQ(demi_wait(&qr, *pending, &t), ETIMEDOUT)
      << "a datagram arrived: opcode " << qr.qr_opcode;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnonnull"

TEST(DatagramApiTest, SocketAndBindGetTheDocumentedErrno) {
  int qd = -1;
  ASSERT_EQ(demi_socket(&qd, AF_INET, SOCK_DGRAM, 0), 0);
  sockaddr_in any = AddrOrDie(NextPort());
  any.sin_addr.s_addr = htonl(INADDR_ANY);
  EXPECT_EQ(demi_bind(qd, Sa(any), sizeof(any)), ENOTSUP);
  sockaddr_in local = AddrOrDie(NextPort());
  EXPECT_EQ(demi_bind(qd, Sa(local), sizeof(local) - 1), EINVAL);
  EXPECT_EQ(demi_bind(qd, Sa(local), sizeof(local)), 0);
  EXPECT_EQ(demi_bind(qd, Sa(local), sizeof(local)), EINVAL);
  int other = -1;
  ASSERT_EQ(demi_socket(&other, AF_INET, SOCK_DGRAM, 0), 0);
  EXPECT_EQ(demi_bind(other, Sa(local), sizeof(local)), EADDRINUSE);
  sockaddr_in nowhere = AddrOrDie(NextPort());
  nowhere.sin_addr.s_addr = inet_addr("203.0.113.9");
  EXPECT_EQ(demi_bind(other, Sa(nowhere), sizeof(nowhere)), EADDRNOTAVAIL);
  EXPECT_EQ(demi_listen(qd, 4), EOPNOTSUPP);
  demi_qtoken_t qt = 0;
  EXPECT_EQ(demi_accept(&qt, qd), EINVAL);
  sockaddr_in peer;
  socklen_t len = sizeof(peer);
  EXPECT_EQ(demi_getpeername(qd, reinterpret_cast<sockaddr*>(&peer), &len),
            ENOTCONN);
  EXPECT_EQ(demi_close(qd), 0);
  EXPECT_EQ(demi_close(other), 0);
  EXPECT_EQ(demi_close(qd), EBADF);
}

TEST(DatagramApiTest, WithoutAnAddressOrDestinationItIsEdestaddrreq) {
  int qd = -1;
  ASSERT_EQ(demi_socket(&qd, AF_INET, SOCK_DGRAM, 0), 0);
  demi_qtoken_t qt = 0;
  EXPECT_EQ(demi_pop(&qt, qd), EDESTADDRREQ);
  demi_sgarray_t sga = demi_sgaalloc(64);
  sockaddr_in dest = AddrOrDie(NextPort());
  EXPECT_EQ(demi_pushto(&qt, qd, &sga, Sa(dest), sizeof(dest)), EDESTADDRREQ);
  EXPECT_EQ(demi_push(&qt, qd, &sga), EDESTADDRREQ);
  EXPECT_EQ(demi_connect(&qt, qd, Sa(dest), sizeof(dest)), EDESTADDRREQ);
  int bound = BoundSocket(NextPort());
  EXPECT_EQ(demi_push(&qt, bound, &sga), EDESTADDRREQ);  // Not connected.
  EXPECT_EQ(demi_sgafree(&sga), 0);
  EXPECT_EQ(demi_close(qd), 0);
  EXPECT_EQ(demi_close(bound), 0);
}

TEST(DatagramApiTest, PushToArgumentsGetTheDocumentedErrno) {
  int qd = BoundSocket(NextPort());
  demi_sgarray_t sga = demi_sgaalloc(64);
  sockaddr_in dest = AddrOrDie(NextPort());
  demi_qtoken_t qt = 0;
  EXPECT_EQ(demi_pushto(&qt, qd, &sga, Sa(dest), sizeof(dest) + 1), EINVAL);
  EXPECT_EQ(demi_pushto(&qt, qd, &sga, nullptr, sizeof(dest)), EINVAL);
  EXPECT_EQ(demi_pushto(nullptr, qd, &sga, Sa(dest), sizeof(dest)), EINVAL);
  sockaddr_in v6 = dest;
  v6.sin_family = AF_INET6;
  EXPECT_EQ(demi_pushto(&qt, qd, &sga, Sa(v6), sizeof(v6)), ENOTSUP);
  sockaddr_in port0 = dest;
  port0.sin_port = 0;
  EXPECT_EQ(demi_pushto(&qt, qd, &sga, Sa(port0), sizeof(port0)), EINVAL);
  demi_sgarray_t empty = sga;
  empty.sga_segs[0].sgaseg_len = 0;
  EXPECT_EQ(demi_pushto(&qt, qd, &empty, Sa(dest), sizeof(dest)), EINVAL);
  EXPECT_EQ(demi_pushto(&qt, 987654, &sga, Sa(dest), sizeof(dest)), EBADF);
  demi_sgarray_t big = demi_sgaalloc(kMaxDatagram + 1);
  ASSERT_EQ(big.sga_numsegs, 1u);
  EXPECT_EQ(demi_pushto(&qt, qd, &big, Sa(dest), sizeof(dest)), EMSGSIZE);
  EXPECT_EQ(demi_sgafree(&big), 0);
  EXPECT_EQ(demi_sgafree(&sga), 0);
  EXPECT_EQ(demi_close(qd), 0);
}

// The destinations demi_pushto refuses are refused by the connect too, at
// once: not by every demi_push after it, seconds later.
TEST(DatagramApiTest, ConnectToPortZeroOrInaddrAnyIsEinval) {
  uint16_t b_port = NextPort();
  int a = BoundSocket(NextPort());
  int b = BoundSocket(b_port);
  sockaddr_in b_addr = AddrOrDie(b_port);
  demi_qtoken_t qt = 0;
  ASSERT_EQ(demi_connect(&qt, a, Sa(b_addr), sizeof(b_addr)), 0);
  EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_CONNECT);
  sockaddr_in port0 = b_addr;
  port0.sin_port = 0;
  sockaddr_in any = b_addr;
  any.sin_addr.s_addr = htonl(INADDR_ANY);
  for (const sockaddr_in& bad : {port0, any}) {
    EXPECT_EQ(demi_connect(&qt, a, Sa(bad), sizeof(bad)), EINVAL);
  }
  // A refused connect leaves the destination as it was.
  ExpectPeerName(a, b_addr);
  qt = demi::testing::PushString(a, "still to b");
  EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
  EXPECT_EQ(PopFrom(b, nullptr), "still to b");
  EXPECT_EQ(demi_close(a), 0);
  EXPECT_EQ(demi_close(b), 0);
}

TEST(DatagramApiTest, NobodyBoundThereIsEconnrefused) {
  int qd = BoundSocket(NextPort());
  absl::Time start = absl::Now();
  demi_qresult_t qr =
      WaitOrFail(StartPushTo(qd, "hello", AddrOrDie(NextPort())));
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, ECONNREFUSED);
  // Not before the peer had its time to bind.
  EXPECT_GE(absl::Now() - start, demi::kRefusedGrace);
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  EXPECT_EQ(demi_close(qd), 0);
}

// Two programs started together (Demikernel's udp-ping-pong: the client
// pushes at once, the server may still be starting): a push to a port
// bound a moment later arrives. It failed with ECONNREFUSED as soon as
// the first resolution was refused (2 of 7 runs of udp-ping-pong on rxe).
TEST(DatagramApiTest, APushToAPortBoundMomentsLaterArrives) {
  int a = BoundSocket(NextPort());
  uint16_t b_port = NextPort();
  demi_qtoken_t push = StartPushTo(a, "early", AddrOrDie(b_port));
  // The refusal comes back while nobody is bound there; the pop lets the
  // library take it in.
  demi_qtoken_t pending = 0;
  Progress(a, 300, &pending);
  int b = BoundSocket(b_port);
  demi_qresult_t qr = WaitOrFail(push);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_PUSH) << "qr_ret " << qr.qr_ret;
  EXPECT_EQ(PopFrom(b, nullptr), "early");
  EXPECT_EQ(demi_close(a), 0);
  EXPECT_EQ(demi_close(b), 0);
}

TEST(DatagramTest, ConnectSetsTheDefaultDestination) {
  uint16_t a_port = NextPort();
  uint16_t b_port = NextPort();
  int a = BoundSocket(a_port);
  int b = BoundSocket(b_port);
  sockaddr_in b_addr = AddrOrDie(b_port);
  demi_qtoken_t qt = 0;
  ASSERT_EQ(demi_connect(&qt, a, Sa(b_addr), sizeof(b_addr)), 0);
  EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_CONNECT);
  ExpectPeerName(a, b_addr);
  qt = demi::testing::PushString(a, "to the default destination");
  EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
  sockaddr_in from = {};
  EXPECT_EQ(PopFrom(b, &from), "to the default destination");
  EXPECT_EQ(from.sin_family, AF_INET);
  EXPECT_EQ(from.sin_port, htons(a_port));
  EXPECT_EQ(from.sin_addr.s_addr, b_addr.sin_addr.s_addr);
  EXPECT_EQ(demi_close(a), 0);
  EXPECT_EQ(demi_close(b), 0);
}

// An inline datagram's push is done as it returns (its token made done):
// one wait takes it, as DEMI_OPC_PUSH; a second finds no such token, and
// no later wait_next hands it out again.
TEST(DatagramTest, AnInlinePushsTokenIsTakenOnce) {
  uint16_t b_port = NextPort();
  int a = BoundSocket(NextPort());
  int b = BoundSocket(b_port);
  sockaddr_in b_addr = AddrOrDie(b_port);
  // The first datagram resolves the route; the second goes inline.
  PushTo(a, "resolves", b_addr);
  EXPECT_EQ(PopFrom(b, nullptr), "resolves");
  demi_qresult_t qr = {};
  timespec zero = {0, 0};
  int n = -1;
  // Results earlier tests left untaken (pushes their closes failed).
  while (demi_wait_next_n(&qr, 1, &n, &zero) == 0) {
  }
  demi_qtoken_t qt = StartPushTo(a, "inline", b_addr);
  ASSERT_EQ(demi_wait(&qr, qt, &zero), 0) << "not done as it returned";
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_PUSH) << "qr_ret " << qr.qr_ret;
  EXPECT_EQ(qr.qr_qt, qt);
  EXPECT_EQ(qr.qr_qd, a);
  EXPECT_EQ(demi_wait(&qr, qt, &zero), EINVAL);
  EXPECT_EQ(demi_wait_next_n(&qr, 1, &n, &zero), ETIMEDOUT)
      << "opcode " << qr.qr_opcode << " qt " << qr.qr_qt << " (pushed " << qt
      << ") qd " << qr.qr_qd << " ret " << qr.qr_ret;
  EXPECT_EQ(n, 0);
  EXPECT_EQ(PopFrom(b, nullptr), "inline");
  EXPECT_EQ(demi_close(a), 0);
  EXPECT_EQ(demi_close(b), 0);
}

TEST(DatagramTest, PortZeroPicksAPort) {
  int a = -1;
  ASSERT_EQ(demi_socket(&a, AF_INET, SOCK_DGRAM, 0), 0);
  sockaddr_in any_port = AddrOrDie(0);
  ASSERT_EQ(demi_bind(a, Sa(any_port), sizeof(any_port)), 0);
  uint16_t b_port = NextPort();
  int b = BoundSocket(b_port);
  PushTo(a, "from an ephemeral port", AddrOrDie(b_port));
  sockaddr_in from = {};
  EXPECT_EQ(PopFrom(b, &from), "from an ephemeral port");
  EXPECT_NE(from.sin_port, 0);
  // And the answer finds its way back there.
  PushTo(b, "back", from);
  EXPECT_EQ(PopFrom(a, nullptr), "back");
  EXPECT_EQ(demi_close(a), 0);
  EXPECT_EQ(demi_close(b), 0);
}

TEST(DatagramTest, EveryFragmentationEdgeArrivesWhole) {
  uint16_t b_port = NextPort();
  int a = BoundSocket(NextPort());
  int b = BoundSocket(b_port);
  std::vector<size_t> sizes = {1, 63, 64, 65000, kMaxDatagram};
  // One fragment's payload and one byte more, for every UD MTU.
  for (size_t mtu : {256, 512, 1024, 2048, 4096}) {
    sizes.push_back(mtu - sizeof(DatagramHeader));
    sizes.push_back(mtu - sizeof(DatagramHeader) + 1);
    sizes.push_back(2 * (mtu - sizeof(DatagramHeader)) + 1);
  }
  uint32_t seed = 0;
  for (size_t size : sizes) {
    std::string bytes = Pattern(size, ++seed);
    PushTo(a, bytes, AddrOrDie(b_port));
    EXPECT_TRUE(SameBytes(PopFrom(b, nullptr), bytes)) << size << " bytes";
  }
  demi_datagram_stats_t stats = Stats(b);
  EXPECT_EQ(stats.received, sizes.size());
  EXPECT_EQ(Stats(a).sent, sizes.size());
  EXPECT_EQ(demi_close(a), 0);
  EXPECT_EQ(demi_close(b), 0);
}

TEST(DatagramTest, GatheredAndForeignMemoryArriveWhole) {
  uint16_t b_port = NextPort();
  int a = BoundSocket(NextPort());
  int b = BoundSocket(b_port);
  // Three registered segments, one datagram of several fragments.
  std::string expected;
  demi_sgarray_t parts[3];
  demi_sgarray_t sga = {};
  sga.sga_numsegs = 3;
  for (int i = 0; i < 3; ++i) {
    std::string piece = Pattern(700 + 900 * i, 40 + i);
    parts[i] = demi_sgaalloc(piece.size());
    std::memcpy(parts[i].sga_segs[0].sgaseg_buf, piece.data(), piece.size());
    sga.sga_segs[i] = parts[i].sga_segs[0];
    expected += piece;
  }
  sockaddr_in dest = AddrOrDie(b_port);
  demi_qtoken_t qt = 0;
  ASSERT_EQ(demi_pushto(&qt, a, &sga, Sa(dest), sizeof(dest)), 0);
  for (auto& part : parts) EXPECT_EQ(demi_sgafree(&part), 0);
  EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
  EXPECT_TRUE(SameBytes(PopFrom(b, nullptr), expected));
  // Memory the library never allocated: copied.
  std::string foreign = Pattern(5000, 7);
  demi_sgarray_t own = {};
  own.sga_numsegs = 1;
  own.sga_segs[0].sgaseg_buf = foreign.data();
  own.sga_segs[0].sgaseg_len = static_cast<uint32_t>(foreign.size());
  ASSERT_EQ(demi_pushto(&qt, a, &own, Sa(dest), sizeof(dest)), 0);
  foreign.assign(foreign.size(), 'x');  // Copied at the call.
  EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
  EXPECT_TRUE(SameBytes(PopFrom(b, nullptr), Pattern(5000, 7)));
  // Both at once, across fragment boundaries: only the foreign middle is
  // copied; the pool pieces go in place, freed right after the call.
  std::string head = Pattern(1500, 11), middle = Pattern(2100, 12),
              tail = Pattern(900, 13);
  demi_sgarray_t first = demi_sgaalloc(head.size());
  demi_sgarray_t last = demi_sgaalloc(tail.size());
  std::memcpy(first.sga_segs[0].sgaseg_buf, head.data(), head.size());
  std::memcpy(last.sga_segs[0].sgaseg_buf, tail.data(), tail.size());
  demi_sgarray_t mixed = {};
  mixed.sga_numsegs = 3;
  mixed.sga_segs[0] = first.sga_segs[0];
  mixed.sga_segs[1].sgaseg_buf = middle.data();
  mixed.sga_segs[1].sgaseg_len = static_cast<uint32_t>(middle.size());
  mixed.sga_segs[2] = last.sga_segs[0];
  ASSERT_EQ(demi_pushto(&qt, a, &mixed, Sa(dest), sizeof(dest)), 0);
  middle.assign(middle.size(), 'x');
  EXPECT_EQ(demi_sgafree(&first), 0);
  EXPECT_EQ(demi_sgafree(&last), 0);
  EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
  EXPECT_TRUE(SameBytes(PopFrom(b, nullptr), head + Pattern(2100, 12) + tail));
  EXPECT_EQ(demi_close(a), 0);
  EXPECT_EQ(demi_close(b), 0);
}

TEST(DatagramTest, TwoSendersInterleaveLargeDatagrams) {
  uint16_t c_port = NextPort();
  int c = BoundSocket(c_port);
  uint16_t ports[2] = {NextPort(), NextPort()};
  int senders[2] = {BoundSocket(ports[0]), BoundSocket(ports[1])};
  constexpr int kEach = 12;
  std::vector<demi_qtoken_t> pushes;
  // Every push is started before any is waited for: the fragments of both
  // senders' datagrams interleave on the wire.
  for (int i = 0; i < kEach; ++i) {
    for (int s = 0; s < 2; ++s) {
      std::string bytes = Pattern(30000 + i, ports[s] * 100 + i);
      bytes[0] = static_cast<char>(i);
      pushes.push_back(StartPushTo(senders[s], bytes, AddrOrDie(c_port)));
    }
  }
  std::map<uint16_t, int> next;  // Per sender, the next index expected.
  for (int n = 0; n < 2 * kEach; ++n) {
    sockaddr_in from = {};
    std::string got = PopFrom(c, &from);
    uint16_t port = ntohs(from.sin_port);
    ASSERT_TRUE(port == ports[0] || port == ports[1]) << port;
    int i = next[port]++;
    std::string want = Pattern(30000 + i, port * 100 + i);
    want[0] = static_cast<char>(i);
    EXPECT_TRUE(SameBytes(got, want)) << "from " << port << " #" << i;
  }
  for (demi_qtoken_t qt : pushes) {
    EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
  }
  EXPECT_EQ(Stats(c).received, 2u * kEach);
  for (int qd : {c, senders[0], senders[1]}) EXPECT_EQ(demi_close(qd), 0);
}

TEST(DatagramTest, CloseSendsWhatWasPushedBeforeIt) {
  uint16_t b_port = NextPort();
  int a = BoundSocket(NextPort());
  int b = BoundSocket(b_port);
  // The route first, so that every push below is posted at once.
  PushTo(a, "warm", AddrOrDie(b_port));
  EXPECT_EQ(PopFrom(b, nullptr), "warm");
  constexpr int kCount = 300;
  std::vector<demi_qtoken_t> pushes;
  for (int i = 0; i < kCount; ++i) {
    pushes.push_back(StartPushTo(a, Pattern(64, i), AddrOrDie(b_port)));
  }
  EXPECT_EQ(demi_close(a), 0);  // Right after the pushes, none waited for.
  for (int i = 0; i < kCount; ++i) {
    ASSERT_TRUE(SameBytes(PopFrom(b, nullptr), Pattern(64, i))) << i;
  }
  for (demi_qtoken_t qt : pushes) {
    demi_qresult_t qr = WaitOrFail(qt);
    EXPECT_EQ(qr.qr_opcode, DEMI_OPC_PUSH) << "qr_ret " << qr.qr_ret;
  }
  EXPECT_EQ(demi_close(b), 0);
}

// An inline push is done when posted, and its send is unsignalled: a
// later signalled send retires it. A close posts one (a mark) behind such
// sends, so that the socket goes, its port free again, at once and not at
// its linger time; the receiver drops the mark without counting it.
TEST(DatagramTest, ACloseAfterInlinePushesFreesItsPortAtOnce) {
  uint16_t a_port = NextPort(), b_port = NextPort();
  int a = BoundSocket(a_port);
  int b = BoundSocket(b_port);
  PushTo(a, "warm", AddrOrDie(b_port));
  EXPECT_EQ(PopFrom(b, nullptr), "warm");
  for (int i = 0; i < 3; ++i) PushTo(a, Pattern(64, i), AddrOrDie(b_port));
  EXPECT_EQ(demi_close(a), 0);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(SameBytes(PopFrom(b, nullptr), Pattern(64, i))) << i;
  }
  int again = -1;
  ASSERT_EQ(demi_socket(&again, AF_INET, SOCK_DGRAM, 0), 0);
  sockaddr_in local = AddrOrDie(a_port);
  absl::Time give_up = absl::Now() + absl::Seconds(5);
  demi_qtoken_t pending = 0;
  int err;
  while ((err = demi_bind(again, Sa(local), sizeof(local))) == EADDRINUSE &&
         absl::Now() < give_up) {
    Progress(b, 10, &pending);
  }
  EXPECT_EQ(err, 0) << "the closed socket still holds its port";
  Progress(b, 50, &pending);  // The mark arrives, and is not a datagram.
  EXPECT_EQ(Stats(b).dropped_malformed, 0u);
  EXPECT_EQ(demi_close(again), 0);
  EXPECT_EQ(demi_close(b), 0);
}

// Unsignalled sends are retired by a later signalled one, or by a mark
// once the oldest has waited kDatagramMarkAfter: so an application that
// sends now and then and spends its time outside the library is never
// taken for a broken device (the watch on sends that never complete,
// kDatagramSendTimeout, would fail the socket with ETIMEDOUT).
TEST(DatagramTest, SendsNowAndThenAreNeverTakenForStuck) {
  uint16_t b_port = NextPort();
  int a = BoundSocket(NextPort());
  int b = BoundSocket(b_port);
  // Rounds well past the watch's limit after the first unsignalled send.
  absl::Duration period = absl::Milliseconds(800);
  int rounds = static_cast<int>(demi::kDatagramSendTimeout / period) + 4;
  demi_qtoken_t pending = 0;
  for (int i = 0; i < rounds; ++i) {
    demi_qresult_t qr =
        WaitOrFail(StartPushTo(a, Pattern(64, i), AddrOrDie(b_port)));
    ASSERT_EQ(qr.qr_opcode, DEMI_OPC_PUSH)
        << "round " << i << ", qr_ret " << qr.qr_ret;
    ASSERT_TRUE(SameBytes(PopFrom(b, nullptr), Pattern(64, i))) << i;
    ASSERT_NO_FATAL_FAILURE(Progress(a, 5, &pending));  // Nothing to pop.
    absl::SleepFor(period);                             // Outside the library.
  }
  EXPECT_EQ(Stats(a).sent, static_cast<uint64_t>(rounds));
  EXPECT_EQ(Stats(b).dropped_malformed, 0u);
  EXPECT_EQ(demi_close(a), 0);
  EXPECT_EQ(demi_close(b), 0);
}

// Closes `p`, bound at `p_port`, and binds a new socket there (a new QP),
// driving `s` (whose pop in `pending` is started if none is) while the
// port is not free yet. Returns the new socket, or -1 after a failure.
int MakeAnew(int p, uint16_t p_port, int s, demi_qtoken_t* pending) {
  EXPECT_EQ(demi_close(p), 0);
  int again = -1;
  EXPECT_EQ(demi_socket(&again, AF_INET, SOCK_DGRAM, 0), 0);
  sockaddr_in p_addr = AddrOrDie(p_port);
  absl::Time give_up = absl::Now() + absl::Seconds(5);
  int err;
  while ((err = demi_bind(again, Sa(p_addr), sizeof(p_addr))) == EADDRINUSE &&
         absl::Now() < give_up) {
    Progress(s, 10, pending);
    if (::testing::Test::HasFatalFailure()) return -1;
  }
  EXPECT_EQ(err, 0);
  if (*pending == 0) {
    EXPECT_EQ(demi_pop(pending, s), 0);
  }
  return err == 0 ? again : -1;
}

// A peer's socket made anew on the same port (a new QP) is resolved again
// after its first datagram (which is dropped) even when sends to its old
// QP were still unretired then: those keep the old address handle until
// they complete, and the resolve follows.
TEST(DatagramTest, APeerMadeAnewIsResolvedAgainWhileSendsToItAreOut) {
  uint16_t p_port = NextPort(), s_port = NextPort();
  int s = BoundSocket(s_port);
  int p = BoundSocket(p_port);
  PushTo(s, "warm", AddrOrDie(p_port));
  EXPECT_EQ(PopFrom(p, nullptr), "warm");
  demi_qtoken_t pending = 0;
  int again = MakeAnew(p, p_port, s, &pending);
  ASSERT_GE(again, 0);
  sockaddr_in p_addr = AddrOrDie(p_port);
  // To the old QP, lost; its send is unsignalled and not yet retired.
  PushTo(s, "lost", p_addr);
  PushTo(again, "hello", AddrOrDie(s_port));
  ASSERT_NO_FATAL_FAILURE(Progress(s, 20, &pending));  // Dropped there.
  EXPECT_EQ(Stats(s).dropped_malformed, 1u);
  PushTo(s, "found", p_addr);
  EXPECT_EQ(PopFrom(again, nullptr), "found");
  EXPECT_EQ(demi_close(again), 0);
  EXPECT_EQ(demi_close(s), 0);
}

// The same under a sender that never lets up: a window of datagrams of
// ~64 fragments, more than the send ring holds. The new socket is heard,
// and the stream reaches it (new sends wait for the new route while the
// old one drains: DatagramRoutesTest checks the cache's part).
TEST(DatagramTest, APeerMadeAnewIsResolvedAgainUnderAnEndlessStream) {
  uint16_t p_port = NextPort(), s_port = NextPort();
  int s = BoundSocket(s_port);
  int p = BoundSocket(p_port);
  sockaddr_in p_addr = AddrOrDie(p_port);
  PushTo(s, "warm", p_addr);
  EXPECT_EQ(PopFrom(p, nullptr), "warm");
  demi_qtoken_t pending = 0;
  int again = MakeAnew(p, p_port, s, &pending);
  ASSERT_GE(again, 0);
  // `s` streams to the port, a window of large datagrams out; the new
  // socket says hello now and then, until `s` hears it.
  bool heard = false;
  absl::Time give_up = absl::Now() + absl::Seconds(10);
  const timespec zero = {0, 0};
  const std::string big = Pattern(65000, 5);
  std::deque<demi_qtoken_t> window;
  std::vector<demi_qtoken_t> hellos;
  const sockaddr_in s_addr = AddrOrDie(s_port);
  for (int i = 0; i < 23; ++i) window.push_back(StartPushTo(s, big, p_addr));
  for (int i = 0; !heard && absl::Now() < give_up; ++i) {
    window.push_back(StartPushTo(s, big, p_addr));
    demi_qresult_t qr = WaitOrFail(window.front());
    window.pop_front();
    ASSERT_EQ(qr.qr_opcode, DEMI_OPC_PUSH) << "qr_ret " << qr.qr_ret;
    // Not waited for here: its first one waits for `again` to resolve
    // `s`, while the stream goes on.
    if (i % 4 == 0) hellos.push_back(StartPushTo(again, "hello", s_addr));
    int err = demi_wait(&qr, pending, &zero);
    if (err == ETIMEDOUT) continue;
    ASSERT_EQ(err, 0);
    ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP) << "qr_ret " << qr.qr_ret;
    EXPECT_EQ(SgaBytes(qr.qr_value.sga), "hello");
    EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
    heard = true;
  }
  EXPECT_TRUE(heard) << "the new socket's datagrams were all dropped: "
                     << Stats(s).dropped_malformed;
  hellos.insert(hellos.end(), window.begin(), window.end());
  for (demi_qtoken_t qt : hellos) {
    EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
  }
  // And the stream reaches the new socket.
  PushTo(s, "found", p_addr);
  std::string got;
  do {
    got = PopFrom(again, nullptr);  // The stream's tail first.
  } while (!got.empty() && got != "found");
  EXPECT_EQ(got, "found");
  EXPECT_EQ(demi_close(again), 0);
  EXPECT_EQ(demi_close(s), 0);
}

// Pushes made between two progress passes go out together (staged, one
// post): each is done once a wait drives the pass, and they arrive whole
// and in order though every buffer was freed, and reused, at once.
TEST(DatagramTest, ABurstOfPushesArrivesWholeAndInOrder) {
  uint16_t b_port = NextPort();
  int a = BoundSocket(NextPort());
  int b = BoundSocket(b_port);
  PushTo(a, "warm", AddrOrDie(b_port));  // The route, and a pass.
  EXPECT_EQ(PopFrom(b, nullptr), "warm");
  for (int burst : {2, 16, 17, 40}) {
    std::vector<demi_qtoken_t> pushes;
    for (int i = 0; i < burst; ++i) {
      pushes.push_back(
          StartPushTo(a, Pattern(1 + i % 100, burst + i), AddrOrDie(b_port)));
    }
    for (demi_qtoken_t qt : pushes) {
      demi_qresult_t qr = WaitOrFail(qt);
      ASSERT_EQ(qr.qr_opcode, DEMI_OPC_PUSH) << "qr_ret " << qr.qr_ret;
    }
    for (int i = 0; i < burst; ++i) {
      ASSERT_TRUE(
          SameBytes(PopFrom(b, nullptr), Pattern(1 + i % 100, burst + i)))
          << "burst " << burst << ", datagram " << i;
    }
  }
  EXPECT_EQ(Stats(a).sent, 1u + 2 + 16 + 17 + 40);
  EXPECT_EQ(demi_close(a), 0);
  EXPECT_EQ(demi_close(b), 0);
}

// A pop that waits (nothing queued) and one that finds a datagram queued
// both end once; each token, and the inline push's (done when posted), is
// EINVAL when waited again; a pop on the closed socket is EBADF.
TEST(DatagramTest, PopsEndOnceWhetherTheyWaitOrFindADatagram) {
  uint16_t b_port = NextPort();
  int a = BoundSocket(NextPort());
  int b = BoundSocket(b_port);
  demi_qtoken_t waiting = 0;
  ASSERT_EQ(demi_pop(&waiting, b), 0);
  demi_qtoken_t push = StartPushTo(a, "first", AddrOrDie(b_port));
  demi_qresult_t qr = WaitOrFail(push);
  ASSERT_EQ(qr.qr_opcode, DEMI_OPC_PUSH) << "qr_ret " << qr.qr_ret;
  qr = WaitOrFail(waiting, absl::Seconds(20));
  ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP) << "qr_ret " << qr.qr_ret;
  EXPECT_EQ(SgaBytes(qr.qr_value.sga), "first");
  EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
  // Queued before its pop: the pop completes from the queue.
  PushTo(a, "second", AddrOrDie(b_port));
  timespec settle = Ms(200);
  demi_qtoken_t idle = 0;
  ASSERT_EQ(demi_pop(&idle, a), 0);  // Nothing comes to a: time passes.
  EXPECT_EQ(demi_wait(&qr, idle, &settle), ETIMEDOUT);
  demi_qtoken_t queued = 0;
  ASSERT_EQ(demi_pop(&queued, b), 0);
  qr = WaitOrFail(queued, absl::Seconds(20));
  ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP) << "qr_ret " << qr.qr_ret;
  EXPECT_EQ(SgaBytes(qr.qr_value.sga), "second");
  EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
  timespec zero = {};
  int offset = -1;
  for (demi_qtoken_t taken : {push, waiting, queued}) {
    EXPECT_EQ(demi_wait(&qr, taken, &zero), EINVAL);
    EXPECT_EQ(demi_wait_any(&qr, &offset, &taken, 1, &zero), EINVAL);
  }
  EXPECT_EQ(demi_close(b), 0);
  demi_qtoken_t late = 0;
  EXPECT_EQ(demi_pop(&late, b), EBADF);
  EXPECT_EQ(demi_close(a), 0);
  qr = WaitOrFail(idle);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, EBADF);
}

TEST(DatagramTest, CloseFailsPendingPopsWithEbadf) {
  int qd = BoundSocket(NextPort());
  demi_qtoken_t qt = 0;
  ASSERT_EQ(demi_pop(&qt, qd), 0);
  EXPECT_EQ(demi_close(qd), 0);
  demi_qresult_t qr = WaitOrFail(qt);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, EBADF);
}

// A fragment as the raw peer sends it: header fields and payload.
std::vector<std::byte> RawFragment(const sockaddr_in& from, uint32_t id,
                                   uint32_t total, uint16_t count,
                                   uint16_t index, uint32_t size,
                                   uint32_t payload) {
  DatagramHeader h = {};
  h.magic = demi::kDatagramMagic;
  h.version = demi::kDatagramVersion;
  h.src_port = from.sin_port;
  h.src_addr = from.sin_addr.s_addr;
  h.fragment_count = count;
  h.fragment_index = index;
  h.id = id;
  h.total_length = total;
  h.offset = index * size;
  std::vector<std::byte> bytes(sizeof(h) + payload, std::byte{0x5a});
  std::memcpy(bytes.data(), &h, sizeof(h));
  return bytes;
}

class RawPeerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = NextPort();
    qd_ = BoundSocket(port_);
    // The library answers the peer's resolve only while it makes progress:
    // the peer resolves on a thread of its own meanwhile.
    absl::StatusOr<std::unique_ptr<demi::testing::UdPeer>> peer;
    std::atomic<bool> done{false};
    std::thread resolver([&] {
      peer = demi::testing::ResolveUd(AddrOrDie(0), AddrOrDie(port_),
                                      absl::Seconds(20));
      done = true;
    });
    while (!done) Progress(qd_, 20, &pending_);
    resolver.join();
    ASSERT_TRUE(peer.ok()) << peer.status();
    peer_ = std::move(peer).value();
  }
  void TearDown() override {
    if (pending_ != 0) {
      EXPECT_EQ(demi_close(qd_), 0);
      EXPECT_EQ(WaitOrFail(pending_).qr_ret, EBADF);
    } else {
      EXPECT_EQ(demi_close(qd_), 0);
    }
  }
  void Send(const std::vector<std::byte>& bytes,
            absl::optional<uint32_t> imm = absl::nullopt) {
    absl::Status status = demi::testing::SendUd(*peer_, bytes, imm);
    ASSERT_TRUE(status.ok()) << status;
  }
  // A whole, valid datagram from the peer, which must pop next.
  void ExpectValidDatagramArrives() {
    Send(RawFragment(peer_->local, 999999, 5, 1, 0, 5, 5));
    demi_qresult_t qr = WaitOrFail(pending_ != 0 ? pending_ : StartPop());
    pending_ = 0;
    ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP);
    EXPECT_EQ(SgaBytes(qr.qr_value.sga), std::string(5, '\x5a'));
    EXPECT_EQ(qr.qr_value.sga.sga_addr.sin_port, peer_->local.sin_port);
    EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
  }
  // A socket B bound at `b_port`, which this socket has sent to: it knows
  // B's QP from then on.
  int ResolvedB(uint16_t b_port) {
    int b = BoundSocket(b_port);
    PushTo(qd_, "to B", AddrOrDie(b_port));
    EXPECT_EQ(PopFrom(b, nullptr), "to B");
    return b;
  }
  // After the raw peer's `dropped` datagrams claiming to be B (socket `b`
  // at `b_port`): none was taken, yet B itself still gets through, and so
  // does the raw peer as itself. Closes `b`.
  void ExpectDroppedThenBGetsThrough(uint64_t dropped, int b, uint16_t b_port) {
    ASSERT_NO_FATAL_FAILURE(Progress(qd_, 300, &pending_));
    EXPECT_EQ(Stats(qd_).dropped_malformed, dropped);
    EXPECT_EQ(Stats(qd_).received, 0u);
    ASSERT_NO_FATAL_FAILURE(ExpectFromB(b, b_port));
    ExpectValidDatagramArrives();
    EXPECT_EQ(demi_close(b), 0);
  }
  // B (the socket `b` at `b_port`) pushes, and this socket pops that.
  void ExpectFromB(int b, uint16_t b_port) {
    PushTo(b, "really B", AddrOrDie(port_));
    demi_qresult_t qr = WaitOrFail(pending_ != 0 ? pending_ : StartPop());
    pending_ = 0;
    ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP);
    EXPECT_EQ(SgaBytes(qr.qr_value.sga), "really B");
    EXPECT_EQ(qr.qr_value.sga.sga_addr.sin_port, htons(b_port));
    EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
  }
  demi_qtoken_t StartPop() {
    demi_qtoken_t qt = 0;
    EXPECT_EQ(demi_pop(&qt, qd_), 0);
    return qt;
  }

  uint16_t port_ = 0;
  int qd_ = -1;
  demi_qtoken_t pending_ = 0;
  std::unique_ptr<demi::testing::UdPeer> peer_;
};

TEST_F(RawPeerTest, MalformedAndSpoofedDatagramsAreDroppedAndCounted) {
  const sockaddr_in& me = peer_->local;
  Send(std::vector<std::byte>(10, std::byte{1}));  // Shorter than a header.
  auto bad_magic = RawFragment(me, 1, 5, 1, 0, 5, 5);
  bad_magic[0] = std::byte{0};
  Send(bad_magic);
  Send(RawFragment(me, 2, 5, 1, 0, 5, 4));            // Length lies.
  Send(RawFragment(me, 3, 70000, 100, 0, 700, 700));  // Beyond UDP.
  Send(RawFragment(me, 4, 0, 1, 0, 0, 0));            // Empty.
  sockaddr_in spoofed = me;
  spoofed.sin_addr.s_addr = inet_addr("198.51.100.7");
  Send(RawFragment(spoofed, 5, 5, 1, 0, 5, 5));
  ASSERT_NO_FATAL_FAILURE(Progress(qd_, 300, &pending_));
  ExpectValidDatagramArrives();
  demi_datagram_stats_t stats = Stats(qd_);
  EXPECT_EQ(stats.dropped_malformed, 6u);
  EXPECT_EQ(stats.received, 1u);
}

// Whether the test device's port is RoCE, where sockets take compact
// datagrams.
bool OnRoce() {
  static const bool roce = [] {
    absl::StatusOr<std::unique_ptr<demi::testing::UdPeer>> peer =
        demi::testing::ListenUd(AddrOrDie(NextPort()), "");
    ibv_port_attr port = {};
    if (!peer.ok() ||
        ibv_query_port((*peer)->id->verbs, (*peer)->id->port_num, &port) != 0) {
      ADD_FAILURE() << "no port to ask: " << peer.status();
      return false;
    }
    return port.link_layer == IBV_LINK_LAYER_ETHERNET;
  }();
  return roce;
}

// Over RoCE (the device here), a socket says in its SIDR reply that it
// takes datagrams without a header (datagram_wire.h).
TEST_F(RawPeerTest, TheSocketSaysItsMtuAndThatItTakesCompactDatagrams) {
  auto reply = absl::MakeConstSpan(
      reinterpret_cast<const std::byte*>(peer_->reply_data.data()),
      peer_->reply_data.size());
  // Its port's, which its receive buffers hold.
  EXPECT_GE(demi::SaysMtu(reply), demi::kMinUdMtu);
  if (!OnRoce()) GTEST_SKIP() << "compact datagrams are for RoCE";
  EXPECT_TRUE(demi::SaysCompact(reply))
      << peer_->reply_data.size() << " bytes of private data";
}

std::vector<std::byte> Bytes(const std::string& text) {
  return std::vector<std::byte>(
      reinterpret_cast<const std::byte*>(text.data()),
      reinterpret_cast<const std::byte*>(text.data()) + text.size());
}

TEST_F(RawPeerTest, ACompactDatagramComesFromThePacketsSource) {
  if (!OnRoce()) GTEST_SKIP() << "compact datagrams are for RoCE";
  Send(Bytes("compact"), demi::CompactImm(peer_->local.sin_port));
  demi_qresult_t qr = WaitOrFail(pending_ != 0 ? pending_ : StartPop());
  pending_ = 0;
  ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP);
  EXPECT_EQ(SgaBytes(qr.qr_value.sga), "compact");
  EXPECT_EQ(qr.qr_value.sga.sga_addr.sin_port, peer_->local.sin_port);
  EXPECT_EQ(qr.qr_value.sga.sga_addr.sin_addr.s_addr,
            peer_->local.sin_addr.s_addr);
  EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
  EXPECT_EQ(Stats(qd_).dropped_malformed, 0u);
}

TEST_F(RawPeerTest, BadCompactDatagramsAreDroppedAndCounted) {
  if (!OnRoce()) GTEST_SKIP() << "compact datagrams are for RoCE";
  uint16_t b_port = NextPort();
  int b = ResolvedB(b_port);
  Send(Bytes("no magic"), 0x12340000u | peer_->local.sin_port);
  Send(Bytes("the header's magic"),
       uint32_t{demi::kDatagramMagic} << 16 | peer_->local.sin_port);
  // This one also makes the socket resolve B again; B's own datagram below
  // still gets through, from the QP known before.
  Send(Bytes("claims B"), demi::CompactImm(htons(b_port)));
  ExpectDroppedThenBGetsThrough(3, b, b_port);
}

// A destination whose port takes smaller UD messages than ours (it says
// so in its SIDR reply) gets fragments cut to fit them.
TEST(MtuTest, ADestinationsSmallerMtuCutsTheFragments) {
  constexpr uint32_t kPeerMtu = 256;
  uint16_t peer_port = NextPort();
  absl::StatusOr<std::unique_ptr<demi::testing::UdPeer>> peer =
      demi::testing::ListenUd(AddrOrDie(peer_port),
                              demi::EncodeSidrReply(false, kPeerMtu));
  ASSERT_TRUE(peer.ok()) << peer.status();
  int qd = BoundSocket(NextPort());
  absl::Cleanup close = [qd] { EXPECT_EQ(demi_close(qd), 0); };
  absl::Status answered;
  std::thread answer(
      [&] { answered = demi::testing::AnswerUd(**peer, absl::Seconds(20)); });
  const std::string bytes = Pattern(1000, 3);
  PushTo(qd, bytes, AddrOrDie(peer_port));
  answer.join();
  ASSERT_TRUE(answered.ok()) << answered;
  const uint32_t payload = kPeerMtu - sizeof(DatagramHeader);
  const uint32_t count = (1000 + payload - 1) / payload;
  std::string whole(bytes.size(), '\0');
  for (uint32_t i = 0; i < count; ++i) {
    std::vector<std::byte> message;
    absl::StatusOr<ibv_wc> wc =
        demi::testing::ReceiveUd(**peer, absl::Seconds(20), &message);
    ASSERT_TRUE(wc.ok()) << wc.status();
    ASSERT_LE(message.size(), kPeerMtu) << "fragment " << i;
    absl::StatusOr<demi::Fragment> fragment = demi::ParseFragment(message);
    ASSERT_TRUE(fragment.ok()) << fragment.status();
    EXPECT_EQ(fragment->header.fragment_count, count);
    EXPECT_EQ(fragment->header.fragment_index, i);
    ASSERT_LE(fragment->header.offset + fragment->payload.size(), whole.size());
    std::memcpy(whole.data() + fragment->header.offset,
                fragment->payload.data(), fragment->payload.size());
  }
  EXPECT_TRUE(SameBytes(whole, bytes));
}

// A datagram after the first (which resolves the destination and goes with
// a header) goes compact to a socket that said it takes them, and with a
// header to one that did not (a socket of an older library).
TEST(CompactSendTest, OnlyASocketThatSaysSoGetsCompactDatagrams) {
  if (!OnRoce()) GTEST_SKIP() << "compact datagrams are for RoCE";
  std::string capability(
      reinterpret_cast<const char*>(demi::kCompactCapability),
      sizeof(demi::kCompactCapability));
  for (bool says : {true, false}) {
    SCOPED_TRACE(says ? "says" : "says nothing");
    uint16_t peer_port = NextPort();
    absl::StatusOr<std::unique_ptr<demi::testing::UdPeer>> peer =
        demi::testing::ListenUd(AddrOrDie(peer_port), says ? capability : "");
    ASSERT_TRUE(peer.ok()) << peer.status();
    uint16_t port = NextPort();
    int qd = BoundSocket(port);
    absl::Cleanup close = [qd] { EXPECT_EQ(demi_close(qd), 0); };
    // The push waits for the peer's answer, which comes from a thread.
    absl::Status answered;
    std::thread answer(
        [&] { answered = demi::testing::AnswerUd(**peer, absl::Seconds(20)); });
    PushTo(qd, "first", AddrOrDie(peer_port));
    answer.join();
    ASSERT_TRUE(answered.ok()) << answered;
    std::vector<std::byte> bytes;
    absl::StatusOr<ibv_wc> wc =
        demi::testing::ReceiveUd(**peer, absl::Seconds(20), &bytes);
    ASSERT_TRUE(wc.ok()) << wc.status();
    EXPECT_EQ(wc->wc_flags & IBV_WC_WITH_IMM, 0);
    EXPECT_EQ(bytes.size(), sizeof(demi::DatagramHeader) + 5);
    PushTo(qd, "again", AddrOrDie(peer_port));
    wc = demi::testing::ReceiveUd(**peer, absl::Seconds(20), &bytes);
    ASSERT_TRUE(wc.ok()) << wc.status();
    std::string text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    if (says) {
      ASSERT_NE(wc->wc_flags & IBV_WC_WITH_IMM, 0);
      EXPECT_EQ(be32toh(wc->imm_data), demi::CompactImm(htons(port)));
      EXPECT_EQ(text, "again");
    } else {
      EXPECT_EQ(wc->wc_flags & IBV_WC_WITH_IMM, 0);
      ASSERT_EQ(bytes.size(), sizeof(demi::DatagramHeader) + 5);
      EXPECT_EQ(text.substr(sizeof(demi::DatagramHeader)), "again");
    }
    // The inline path's edges: its token is taken once, and a push from
    // qd -1 or a closed socket starts nothing.
    demi_qtoken_t qt = StartPushTo(qd, "third", AddrOrDie(peer_port));
    demi_qresult_t qr = WaitOrFail(qt);
    EXPECT_EQ(qr.qr_opcode, DEMI_OPC_PUSH);
    timespec zero = {0, 0};
    EXPECT_EQ(demi_wait(&qr, qt, &zero), EINVAL);
    wc = demi::testing::ReceiveUd(**peer, absl::Seconds(20), &bytes);
    ASSERT_TRUE(wc.ok()) << wc.status();
    EXPECT_EQ((wc->wc_flags & IBV_WC_WITH_IMM) != 0, says);
    demi_sgarray_t sga = demi_sgaalloc(5);
    sockaddr_in dest = AddrOrDie(peer_port);
    EXPECT_EQ(demi_pushto(&qt, -1, &sga, Sa(dest), sizeof(dest)), EBADF);
    std::move(close).Invoke();
    EXPECT_EQ(demi_pushto(&qt, qd, &sga, Sa(dest), sizeof(dest)), EBADF);
    EXPECT_EQ(demi_sgafree(&sga), 0);
  }
}

// The fragment payload of this device's UD MTU, as the library cuts it.
uint32_t FragmentSize(const demi::testing::UdPeer& peer) {
  ibv_port_attr port = {};
  EXPECT_EQ(ibv_query_port(peer.id->verbs, peer.id->port_num, &port), 0);
  return demi::FragmentPayload(128u << port.active_mtu);
}

TEST_F(RawPeerTest, AForgedFragmentCannotTakeTheRealOnesPlace) {
  uint16_t b_port = NextPort();
  int b = BoundSocket(b_port);
  sockaddr_in b_addr = AddrOrDie(b_port);
  // B's first datagram: with numbered datagrams its next would be id 2.
  PushTo(b, "first", AddrOrDie(port_));
  demi_qresult_t qr = WaitOrFail(pending_ != 0 ? pending_ : StartPop());
  pending_ = 0;
  ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP);
  EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
  // Another process on B's host sends the first half of B's next datagram
  // ahead of B, with B's address and port in the header.
  uint32_t size = FragmentSize(*peer_);
  uint32_t total = size + 500;
  for (uint32_t id = 1; id <= 8; ++id) {
    Send(RawFragment(b_addr, id, total, 2, 0, size, size));
  }
  ASSERT_NO_FATAL_FAILURE(Progress(qd_, 100, &pending_));
  std::string real = Pattern(total, 77);
  PushTo(b, real, AddrOrDie(port_));
  qr = WaitOrFail(pending_);
  pending_ = 0;
  ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP);
  EXPECT_TRUE(SameBytes(SgaBytes(qr.qr_value.sga), real));
  EXPECT_EQ(qr.qr_value.sga.sga_addr.sin_port, htons(b_port));
  EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
  EXPECT_EQ(demi_close(b), 0);
}

TEST_F(RawPeerTest, ADatagramFromAnotherQpThanItsSourceResolvesToIsDropped) {
  uint16_t b_port = NextPort();
  int b = ResolvedB(b_port);
  sockaddr_in b_addr = AddrOrDie(b_port);
  // The raw peer claims to be B, whole datagrams and a fragment.
  Send(RawFragment(b_addr, 5, 5, 1, 0, 5, 5));
  uint32_t size = FragmentSize(*peer_);
  Send(RawFragment(b_addr, 6, size + 5, 2, 1, size, 5));
  Send(RawFragment(b_addr, 7, 5, 1, 0, 5, 5));
  ExpectDroppedThenBGetsThrough(3, b, b_port);
}

TEST_F(RawPeerTest, AFloodOfFirstFragmentsIsBounded) {
  // Each claims a 65,507-byte datagram: 5,000 of them would be 312 MiB,
  // far past this process's 64 MiB pool.
  constexpr uint32_t kFlood = 5000;
  uint32_t size = 900;
  uint16_t count = static_cast<uint16_t>((kMaxDatagram + size - 1) / size);
  for (uint32_t id = 1; id <= kFlood; ++id) {
    Send(RawFragment(peer_->local, id, kMaxDatagram, count, 0, size, size));
    // Let the library take them in, as a busy application would.
    if (id % 256 == 0) {
      ASSERT_NO_FATAL_FAILURE(Progress(qd_, 20, &pending_));
    }
  }
  ASSERT_NO_FATAL_FAILURE(Progress(qd_, 300, &pending_));
  demi_datagram_stats_t stats = Stats(qd_);
  EXPECT_EQ(stats.dropped_no_buffer, 0u);
  EXPECT_GE(stats.dropped_reassembly_evicted + stats.dropped_reassembly_timeout,
            kFlood - 64 - kFlood / 10)
      << "most first fragments reached the table and were evicted";
  EXPECT_EQ(stats.received, 0u);
  // The table still works: a datagram in two fragments goes through.
  Send(RawFragment(peer_->local, 777777, 1000, 2, 0, 600, 600));
  Send(RawFragment(peer_->local, 777777, 1000, 2, 1, 600, 400));
  demi_qresult_t qr = WaitOrFail(pending_);
  pending_ = 0;
  ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP);
  EXPECT_EQ(qr.qr_value.sga.sga_segs[0].sgaseg_len, 1000u);
  EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
}

TEST_F(RawPeerTest, AnIncompleteDatagramTimesOut) {
  Send(RawFragment(peer_->local, 42, 1000, 2, 0, 600, 600));
  ASSERT_NO_FATAL_FAILURE(Progress(qd_, 1500, &pending_));
  EXPECT_EQ(Stats(qd_).dropped_reassembly_timeout, 1u);
  // The late second half alone is no datagram.
  Send(RawFragment(peer_->local, 42, 1000, 2, 1, 600, 400));
  ASSERT_NO_FATAL_FAILURE(Progress(qd_, 300, &pending_));
  ExpectValidDatagramArrives();
}

// A partial datagram's time runs from when the library takes its first
// fragment in, not from the timers' last run: after the application spent
// longer than the reassembly timeout outside the library, a fragment that
// arrived meanwhile was stamped with that old time, the next timers
// dropped it, and the datagram was lost.
TEST_F(RawPeerTest, AFragmentTakenInAfterAnIdleSpellIsGivenItsFullTime) {
  Send(RawFragment(peer_->local, 44, 1000, 2, 0, 600, 600));
  absl::SleepFor(demi::kReassemblyTimeout + absl::Milliseconds(500));
  // Takes it in; a sleeping wait runs the timers every
  // kSleepTimerInterval.
  ASSERT_GT(absl::Milliseconds(200), demi::kSleepTimerInterval);
  ASSERT_NO_FATAL_FAILURE(Progress(qd_, 200, &pending_));
  EXPECT_EQ(Stats(qd_).dropped_reassembly_timeout, 0u);
  Send(RawFragment(peer_->local, 44, 1000, 2, 1, 600, 400));
  demi_qresult_t qr = WaitOrFail(pending_, absl::Seconds(10));
  pending_ = 0;
  ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP);
  EXPECT_EQ(qr.qr_value.sga.sga_segs[0].sgaseg_len, 1000u);
  EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
  EXPECT_EQ(Stats(qd_).received, 1u);
}

TEST_F(RawPeerTest, FragmentsThatDisagreeDropTheDatagram) {
  Send(RawFragment(peer_->local, 43, 1000, 2, 0, 600, 600));
  Send(RawFragment(peer_->local, 43, 1100, 2, 1, 600, 500));
  ASSERT_NO_FATAL_FAILURE(Progress(qd_, 300, &pending_));
  EXPECT_EQ(Stats(qd_).dropped_reassembly_invalid, 1u);
  ExpectValidDatagramArrives();
}

#pragma GCC diagnostic pop

}  // namespace
