// demi_close on connections: it returns at once; what was pushed before it
// still reaches the peer (rendezvous included), then EOF; SO_LINGER bounds
// how long that may take or resets at once; and a thousand closes in every
// state of a connection's life (resolving, connecting, established,
// accepted but never taken) leave nothing behind.
#include <demi/libos.h>
#include <sys/socket.h>

#include <cerrno>
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
using demi::testing::ConnectAndAccept;
using demi::testing::DemiPair;
using demi::testing::MakePair;
using demi::testing::NextPort;
using demi::testing::Pattern;
using demi::testing::PopString;
using demi::testing::PushString;
using demi::testing::Sa;
using demi::testing::SameBytes;
using demi::testing::Scaled;
using demi::testing::WaitOrFail;

const auto* const kInit =
    ::testing::AddGlobalTestEnvironment(new demi::testing::DemiInitEnvironment);

demi_qresult_t PopResult(int qd) {
  demi_qtoken_t qt = 0;
  EXPECT_EQ(demi_pop(&qt, qd), 0);
  return WaitOrFail(qt);
}

TEST(CloseTest, CloseRightAfterPushesDeliversEverythingThenEof) {
  for (int round = 0; round < 3; ++round) {
    DemiPair pair;
    ASSERT_TRUE(MakePair(&pair));
    std::vector<std::string> sent;
    std::vector<demi_qtoken_t> pushes;
    for (size_t size : {64, 1 << 20, 100, 8 << 20, 4096}) {
      sent.push_back(Pattern(size, static_cast<uint32_t>(size + round)));
      pushes.push_back(PushString(pair.client, sent.back()));
    }
    absl::Time before = absl::Now();
    ASSERT_EQ(demi_close(pair.client), 0);
    // Nothing in it waits on the network (it used to stall up to 4 s).
    EXPECT_LT(absl::Now() - before, Scaled(absl::Seconds(1)));
    for (const std::string& bytes : sent) {
      EXPECT_TRUE(SameBytes(PopString(pair.server), bytes));
    }
    EXPECT_EQ(PopString(pair.server), "");  // EOF after all of them.
    // Pushes pending at the close complete as delivered.
    for (demi_qtoken_t qt : pushes) {
      demi_qresult_t qr = WaitOrFail(qt);
      EXPECT_EQ(qr.qr_opcode, DEMI_OPC_PUSH) << "qr_ret " << qr.qr_ret;
    }
    EXPECT_EQ(demi_close(pair.server), 0);
    EXPECT_EQ(demi_close(pair.listener), 0);
  }
}

// A burst of small pushes is staged for one post (SendQueue) when the
// close comes: CLOSE goes after them, never before, and none is lost.
TEST(CloseTest, CloseRightAfterABurstOfSmallPushesDeliversThemAll) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  std::vector<std::string> sent;
  std::vector<demi_qtoken_t> pushes;
  for (int i = 0; i < 40; ++i) {
    sent.push_back("burst " + std::to_string(i));
    pushes.push_back(PushString(pair.client, sent.back()));
  }
  ASSERT_EQ(demi_close(pair.client), 0);
  for (const std::string& bytes : sent)
    EXPECT_EQ(PopString(pair.server), bytes);
  EXPECT_EQ(PopString(pair.server), "");
  for (demi_qtoken_t qt : pushes) {
    demi_qresult_t qr = WaitOrFail(qt);
    EXPECT_EQ(qr.qr_opcode, DEMI_OPC_PUSH) << "qr_ret " << qr.qr_ret;
  }
  EXPECT_EQ(demi_close(pair.server), 0);
  EXPECT_EQ(demi_close(pair.listener), 0);
}

TEST(CloseTest, LingerZeroResetsAtOnce) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  struct linger linger = {1, 0};
  ASSERT_EQ(demi_setsockopt(pair.client, SOL_SOCKET, SO_LINGER, &linger,
                            sizeof(linger)),
            0);
  demi_qtoken_t push = PushString(pair.client, Pattern(1 << 20, 1));
  demi_qtoken_t pop = 0;
  ASSERT_EQ(demi_pop(&pop, pair.client), 0);
  ASSERT_EQ(demi_close(pair.client), 0);
  demi_qresult_t qr = WaitOrFail(push);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, ECONNABORTED);
  // A pop pending at the close fails as with any close (the API fuzzer
  // found ECONNABORTED here, which demi_close does not document for pops).
  qr = WaitOrFail(pop);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, EBADF);
  qr = PopResult(pair.server);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, ECONNRESET);
  EXPECT_EQ(demi_close(pair.server), 0);
  EXPECT_EQ(demi_close(pair.listener), 0);
}

// As on Linux, an accepted connection starts with its listener's
// SO_LINGER (and SO_REUSEPORT): a listener set to reset its connections
// at close gets connections that do.
TEST(CloseTest, AnAcceptedConnectionTakesItsListenersOptions) {
  sockaddr_in addr = AddrOrDie(NextPort());
  int listener = -1;
  ASSERT_EQ(demi_socket(&listener, AF_INET, SOCK_STREAM, 0), 0);
  struct linger reset = {1, 0};
  ASSERT_EQ(
      demi_setsockopt(listener, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset)),
      0);
  int one = 1;
  ASSERT_EQ(
      demi_setsockopt(listener, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)),
      0);
  ASSERT_EQ(demi_bind(listener, Sa(addr), sizeof(addr)), 0);
  ASSERT_EQ(demi_listen(listener, 4), 0);
  int client = -1;
  ASSERT_EQ(demi_socket(&client, AF_INET, SOCK_STREAM, 0), 0);
  int server = ConnectAndAccept(client, listener, addr);
  ASSERT_GE(server, 0);

  struct linger linger = {};
  socklen_t len = sizeof(linger);
  EXPECT_EQ(demi_getsockopt(server, SOL_SOCKET, SO_LINGER, &linger, &len), 0);
  EXPECT_EQ(linger.l_onoff, 1);
  EXPECT_EQ(linger.l_linger, 0);
  int on = 0;
  len = sizeof(on);
  EXPECT_EQ(demi_getsockopt(server, SOL_SOCKET, SO_REUSEPORT, &on, &len), 0);
  EXPECT_EQ(on, 1);
  // Its close is abortive: a rendezvous push the client never popped fails,
  // and the client sees a reset rather than the message and EOF.
  demi_qtoken_t push = PushString(server, Pattern(1 << 20, 3));
  ASSERT_EQ(demi_close(server), 0);
  demi_qresult_t qr = WaitOrFail(push);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, ECONNABORTED);
  qr = PopResult(client);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, ECONNRESET);
  EXPECT_EQ(demi_close(client), 0);
  EXPECT_EQ(demi_close(listener), 0);
}

TEST(CloseTest, LingerTimeBoundsAFlushThePeerNeverTakes) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  struct linger linger = {1, 1};
  ASSERT_EQ(demi_setsockopt(pair.client, SOL_SOCKET, SO_LINGER, &linger,
                            sizeof(linger)),
            0);
  // A rendezvous: it completes only once the server pops it, which it
  // does not do.
  demi_qtoken_t push = PushString(pair.client, Pattern(1 << 20, 2));
  ASSERT_EQ(demi_close(pair.client), 0);
  demi_qresult_t qr = WaitOrFail(push);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, ETIMEDOUT);
  EXPECT_EQ(demi_close(pair.server), 0);
  EXPECT_EQ(demi_close(pair.listener), 0);
}

TEST(CloseTest, ClosingWithUnreadMessagesResetsThePeer) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  EXPECT_EQ(WaitOrFail(PushString(pair.client, "unread")).qr_opcode,
            DEMI_OPC_PUSH);
  demi_qtoken_t rndv = PushString(pair.client, Pattern(100000, 3));
  // Let the announcement arrive before the server closes.
  demi_qtoken_t pop = 0;
  ASSERT_EQ(demi_pop(&pop, pair.client), 0);
  demi_qresult_t qr;
  timespec short_wait = absl::ToTimespec(absl::Milliseconds(200));
  EXPECT_EQ(demi_wait(&qr, pop, &short_wait), ETIMEDOUT);
  ASSERT_EQ(demi_close(pair.server), 0);
  qr = WaitOrFail(rndv);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, ECONNRESET);
  qr = WaitOrFail(pop);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, ECONNRESET);
  EXPECT_EQ(demi_close(pair.client), 0);
  EXPECT_EQ(demi_close(pair.listener), 0);
}

// Lets the progress engine run for about `ms` (waits run it).
void PollFor(int ms, demi_qtoken_t qt) {
  demi_qresult_t qr;
  timespec wait = absl::ToTimespec(absl::Milliseconds(ms));
  if (demi_wait(&qr, qt, &wait) == 0) {
    // Done already: connected, or refused.
    EXPECT_TRUE(qr.qr_opcode == DEMI_OPC_CONNECT ||
                (qr.qr_opcode == DEMI_OPC_FAILED && qr.qr_ret == ECONNREFUSED))
        << qr.qr_opcode << " " << qr.qr_ret;
  }
}

TEST(CloseTest, AThousandClosesInEveryStateLeaveNothingBehind) {
  sockaddr_in addr = AddrOrDie(NextPort());
  int listener = -1;
  ASSERT_EQ(demi_socket(&listener, AF_INET, SOCK_STREAM, 0), 0);
  ASSERT_EQ(demi_bind(listener, Sa(addr), sizeof(addr)), 0);
  ASSERT_EQ(demi_listen(listener, 64), 0);
  // Nobody listens here: a connect to it is rejected, and the rejection
  // may arrive while the close is under way.
  sockaddr_in nobody = AddrOrDie(NextPort());
  int closes = 0;
  for (int round = 0; closes < 1000; ++round) {
    // A client closed while resolving, connecting or just connected (or
    // just refused).
    int client = -1;
    ASSERT_EQ(demi_socket(&client, AF_INET, SOCK_STREAM, 0), 0);
    demi_qtoken_t qt = 0;
    const sockaddr_in& target = round % 3 == 2 ? nobody : addr;
    ASSERT_EQ(demi_connect(&qt, client, Sa(target), sizeof(target)), 0);
    if (round % 4 != 0) PollFor((round % 8) * 4, qt);
    ASSERT_EQ(demi_close(client), 0);
    ++closes;
    if (round % 10 != 0) continue;
    // A listener closed with connections nobody accepted.
    sockaddr_in other_addr = AddrOrDie(NextPort());
    int other = -1;
    ASSERT_EQ(demi_socket(&other, AF_INET, SOCK_STREAM, 0), 0);
    ASSERT_EQ(demi_bind(other, Sa(other_addr), sizeof(other_addr)), 0);
    ASSERT_EQ(demi_listen(other, 8), 0);
    int clients[3];
    demi_qtoken_t connects[3];
    for (int i = 0; i < 3; ++i) {
      ASSERT_EQ(demi_socket(&clients[i], AF_INET, SOCK_STREAM, 0), 0);
      ASSERT_EQ(demi_connect(&connects[i], clients[i], Sa(other_addr),
                             sizeof(other_addr)),
                0);
    }
    PollFor((round % 5) * 5, connects[0]);
    ASSERT_EQ(demi_close(other), 0);
    for (int client_qd : clients) ASSERT_EQ(demi_close(client_qd), 0);
    closes += 4;
  }
  // The listener still serves, and messages still flow.
  int client = -1;
  ASSERT_EQ(demi_socket(&client, AF_INET, SOCK_STREAM, 0), 0);
  demi_qtoken_t accept_qt = 0, connect_qt = 0;
  ASSERT_EQ(demi_accept(&accept_qt, listener), 0);
  ASSERT_EQ(demi_connect(&connect_qt, client, Sa(addr), sizeof(addr)), 0);
  ASSERT_EQ(WaitOrFail(connect_qt).qr_opcode, DEMI_OPC_CONNECT);
  demi_qresult_t accepted = WaitOrFail(accept_qt);
  // Earlier clients may have got through before they closed: accept until
  // this one's connection, which is the one that answers.
  ASSERT_EQ(accepted.qr_opcode, DEMI_OPC_ACCEPT);
  EXPECT_EQ(WaitOrFail(PushString(client, "still here")).qr_opcode,
            DEMI_OPC_PUSH);
  int server = accepted.qr_value.ares.qd;
  std::string got = PopString(server);
  while (got != "still here") {
    EXPECT_EQ(got, "");  // An earlier client's EOF or reset.
    ASSERT_EQ(demi_close(server), 0);
    ASSERT_EQ(demi_accept(&accept_qt, listener), 0);
    accepted = WaitOrFail(accept_qt);
    ASSERT_EQ(accepted.qr_opcode, DEMI_OPC_ACCEPT);
    server = accepted.qr_value.ares.qd;
    got = PopString(server);
  }
  EXPECT_EQ(demi_close(client), 0);
  EXPECT_EQ(demi_close(server), 0);
  EXPECT_EQ(demi_close(listener), 0);
}

}  // namespace
