// Every call of the C API on a queue in every state, and on qds that name
// no queue, on an RDMA device: each answers with the errno its header
// documents, nothing crashes or hangs, and queues the calls do not name are
// untouched (a witness connection still carries a message after each
// table). Bad values of the other arguments are in bad_arguments_test.cc.
#include <demi/libos.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

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
using demi::testing::PopString;
using demi::testing::PushString;
using demi::testing::Sa;
using demi::testing::WaitOrFail;

const auto* const kInit = ::testing::AddGlobalTestEnvironment(
    new demi::testing::DemiInitEnvironment());

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnonnull"

// The states a queue descriptor can be in, as the application sees them.
enum class State {
  kFresh,          // A stream socket.
  kBound,          // Bound to a port.
  kListening,      // Listening.
  kConnecting,     // demi_connect returned; nothing has polled since.
  kConnected,      // The client end of an established connection.
  kPeerClosed,     // Connected; the peer closed and its EOF was popped.
  kFailed,         // Connected; the peer reset it and a pop failed.
  kDgramFresh,     // A datagram socket.
  kDgramBound,     // Bound.
  kDgramConnected  // Bound, with a default destination.
};
constexpr State kStates[] = {State::kFresh,      State::kBound,
                             State::kListening,  State::kConnecting,
                             State::kConnected,  State::kPeerClosed,
                             State::kFailed,     State::kDgramFresh,
                             State::kDgramBound, State::kDgramConnected};
constexpr int kNumStates = sizeof(kStates) / sizeof(kStates[0]);

const char* Name(State state) {
  switch (state) {
    case State::kFresh:
      return "fresh";
    case State::kBound:
      return "bound";
    case State::kListening:
      return "listening";
    case State::kConnecting:
      return "connecting";
    case State::kConnected:
      return "connected";
    case State::kPeerClosed:
      return "peer closed";
    case State::kFailed:
      return "failed";
    case State::kDgramFresh:
      return "datagram";
    case State::kDgramBound:
      return "datagram bound";
    case State::kDgramConnected:
      return "datagram connected";
  }
  return "?";
}

// A queue in one state, with what it took to get there; closes it all
// when it goes.
class QueueInState {
 public:
  explicit QueueInState(State state) : state_(state) {
    switch (state) {
      case State::kFresh:
        qd_ = Socket(SOCK_STREAM);
        break;
      case State::kBound:
        qd_ = Socket(SOCK_STREAM);
        Bind(qd_);
        break;
      case State::kListening:
        qd_ = Socket(SOCK_STREAM);
        Bind(qd_);
        EXPECT_EQ(demi_listen(qd_, 8), 0);
        break;
      case State::kConnecting: {
        int listener = Socket(SOCK_STREAM);
        sockaddr_in addr = Bind(listener);
        EXPECT_EQ(demi_listen(listener, 8), 0);
        owned_.push_back(listener);
        qd_ = Socket(SOCK_STREAM);
        demi_qtoken_t qt = 0;
        EXPECT_EQ(demi_connect(&qt, qd_, Sa(addr), sizeof(addr)), 0);
        break;
      }
      case State::kConnected:
      case State::kPeerClosed:
      case State::kFailed: {
        DemiPair pair;
        EXPECT_TRUE(MakePair(&pair));
        owned_.push_back(pair.listener);
        qd_ = pair.client;
        if (state == State::kPeerClosed) {
          EXPECT_EQ(demi_close(pair.server), 0);
          EXPECT_EQ(PopString(qd_), "");  // EOF.
        } else if (state == State::kFailed) {
          struct linger reset = {1, 0};
          EXPECT_EQ(demi_setsockopt(pair.server, SOL_SOCKET, SO_LINGER, &reset,
                                    sizeof(reset)),
                    0);
          EXPECT_EQ(demi_close(pair.server), 0);
          demi_qtoken_t qt = 0;
          EXPECT_EQ(demi_pop(&qt, qd_), 0);
          demi_qresult_t qr = WaitOrFail(qt);
          EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
        } else {
          owned_.push_back(pair.server);
        }
        break;
      }
      case State::kDgramFresh:
        qd_ = Socket(SOCK_DGRAM);
        break;
      case State::kDgramBound:
        qd_ = Socket(SOCK_DGRAM);
        Bind(qd_);
        break;
      case State::kDgramConnected: {
        qd_ = Socket(SOCK_DGRAM);
        Bind(qd_);
        int peer = Socket(SOCK_DGRAM);
        sockaddr_in peer_addr = Bind(peer);
        owned_.push_back(peer);
        demi_qtoken_t qt = 0;
        EXPECT_EQ(demi_connect(&qt, qd_, Sa(peer_addr), sizeof(peer_addr)), 0);
        EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_CONNECT);
        break;
      }
    }
  }
  ~QueueInState() {
    demi_close(qd_);  // May be closed already by the call under test.
    for (int qd : owned_) EXPECT_EQ(demi_close(qd), 0);
  }
  QueueInState(const QueueInState&) = delete;
  QueueInState& operator=(const QueueInState&) = delete;

  int qd() const { return qd_; }
  bool datagram() const {
    return state_ == State::kDgramFresh || state_ == State::kDgramBound ||
           state_ == State::kDgramConnected;
  }

 private:
  static int Socket(int type) {
    int qd = -1;
    EXPECT_EQ(demi_socket(&qd, AF_INET, type, 0), 0);
    return qd;
  }
  static sockaddr_in Bind(int qd) {
    sockaddr_in addr = AddrOrDie(NextPort());
    EXPECT_EQ(demi_bind(qd, Sa(addr), sizeof(addr)), 0);
    return addr;
  }

  State state_;
  int qd_ = -1;
  std::vector<int> owned_;
};

// One call of the API on `qd`, every other argument valid. Returns its
// errno and adds any token it started to `tokens`.
struct Call {
  const char* name;
  std::function<int(int qd, std::vector<demi_qtoken_t>* tokens)> run;
  // What it returns in each state of kStates.
  int expected[kNumStates];
};

// A token the call under test started completes within a bound with an
// opcode its call may end with (never DEMI_OPC_INVALID); its queue is
// closed by then, or it is a good operation.
void DrainTokens(const std::vector<demi_qtoken_t>& tokens) {
  for (demi_qtoken_t qt : tokens) {
    demi_qresult_t qr;
    timespec ts = Ms(20000);
    int err = demi_wait(&qr, qt, &ts);
    EXPECT_EQ(err, 0) << "a token never completed";
    if (err != 0) continue;
    EXPECT_NE(qr.qr_opcode, DEMI_OPC_INVALID);
    if (qr.qr_opcode == DEMI_OPC_POP && qr.qr_value.sga.sga_buf != nullptr) {
      EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
    }
    if (qr.qr_opcode == DEMI_OPC_ACCEPT) demi_close(qr.qr_value.ares.qd);
  }
}

std::vector<Call> EveryCallWithGoodArguments() {
  // A listener any connect in the table can reach.
  static sockaddr_in listening = [] {
    int qd = -1;
    EXPECT_EQ(demi_socket(&qd, AF_INET, SOCK_STREAM, 0), 0);
    sockaddr_in addr = AddrOrDie(NextPort());
    EXPECT_EQ(demi_bind(qd, Sa(addr), sizeof(addr)), 0);
    EXPECT_EQ(demi_listen(qd, SOMAXCONN), 0);
    return addr;
  }();
  auto push = [](int qd, std::vector<demi_qtoken_t>* tokens) {
    demi_sgarray_t sga = demi_sgaalloc(32);
    demi_qtoken_t qt = 0;
    int err = demi_push(&qt, qd, &sga);
    if (err == 0) tokens->push_back(qt);
    EXPECT_EQ(demi_sgafree(&sga), 0);
    return err;
  };
  // States:  fresh, bound, listening, connecting, connected, peer closed,
  // failed, datagram, datagram bound, datagram connected.
  return {
      {"demi_listen",
       [](int qd, auto*) { return demi_listen(qd, 8); },
       {EDESTADDRREQ, 0, EADDRINUSE, EADDRINUSE, EISCONN, EISCONN, EISCONN,
        EOPNOTSUPP, EOPNOTSUPP, EOPNOTSUPP}},
      {"demi_bind",
       [](int qd, auto*) {
         sockaddr_in addr = AddrOrDie(NextPort());
         return demi_bind(qd, Sa(addr), sizeof(addr));
       },
       {0, EINVAL, EINVAL, EINVAL, EINVAL, EINVAL, EINVAL, 0, EINVAL, EINVAL}},
      {"demi_accept",
       [](int qd, std::vector<demi_qtoken_t>* tokens) {
         demi_qtoken_t qt = 0;
         int err = demi_accept(&qt, qd);
         if (err == 0) tokens->push_back(qt);
         return err;
       },
       {EINVAL, EINVAL, 0, EINVAL, EINVAL, EINVAL, EINVAL, EINVAL, EINVAL,
        EINVAL}},
      {"demi_connect",
       [](int qd, std::vector<demi_qtoken_t>* tokens) {
         demi_qtoken_t qt = 0;
         int err = demi_connect(&qt, qd, Sa(listening), sizeof(listening));
         if (err == 0) tokens->push_back(qt);
         return err;
       },
       {0, 0, EOPNOTSUPP, EINPROGRESS, EISCONN, EISCONN, EISCONN, EDESTADDRREQ,
        0, 0}},
      {"demi_push",
       push,
       {ENOTCONN, ENOTCONN, ENOTCONN, ENOTCONN, 0, 0, 0, EDESTADDRREQ,
        EDESTADDRREQ, 0}},
      {"demi_pushto",
       [](int qd, std::vector<demi_qtoken_t>* tokens) {
         demi_sgarray_t sga = demi_sgaalloc(32);
         sockaddr_in dest = AddrOrDie(NextPort());  // Nobody bound there.
         demi_qtoken_t qt = 0;
         int err = demi_pushto(&qt, qd, &sga, Sa(dest), sizeof(dest));
         if (err == 0) tokens->push_back(qt);
         EXPECT_EQ(demi_sgafree(&sga), 0);
         return err;
       },
       {ENOTSUP, ENOTSUP, ENOTSUP, ENOTSUP, ENOTSUP, ENOTSUP, ENOTSUP,
        EDESTADDRREQ, 0, 0}},
      {"demi_pop",
       [](int qd, std::vector<demi_qtoken_t>* tokens) {
         demi_qtoken_t qt = 0;
         int err = demi_pop(&qt, qd);
         if (err == 0) tokens->push_back(qt);
         return err;
       },
       {ENOTCONN, ENOTCONN, ENOTCONN, ENOTCONN, 0, 0, 0, EDESTADDRREQ, 0, 0}},
      {"demi_setsockopt",
       [](int qd, auto*) {
         struct linger linger = {1, 5};
         return demi_setsockopt(qd, SOL_SOCKET, SO_LINGER, &linger,
                                sizeof(linger));
       },
       {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
      {"demi_getsockopt",
       [](int qd, auto*) {
         struct linger linger;
         socklen_t len = sizeof(linger);
         return demi_getsockopt(qd, SOL_SOCKET, SO_LINGER, &linger, &len);
       },
       {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
      {"demi_getpeername",
       [](int qd, auto*) {
         sockaddr_in addr;
         socklen_t len = sizeof(addr);
         return demi_getpeername(qd, reinterpret_cast<sockaddr*>(&addr), &len);
       },
       {ENOTCONN, ENOTCONN, ENOTCONN, ENOTCONN, 0, 0, 0, ENOTCONN, ENOTCONN,
        0}},
      {"demi_close",
       [](int qd, auto*) { return demi_close(qd); },
       {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
  };
}

TEST(BadInputTest, EveryCallInEveryStateOfItsQueue) {
  demi::testing::WitnessPair witness;
  for (const Call& call : EveryCallWithGoodArguments()) {
    for (int i = 0; i < kNumStates; ++i) {
      SCOPED_TRACE(std::string(call.name) + " on a " + Name(kStates[i]) +
                   " queue");
      std::vector<demi_qtoken_t> tokens;
      {
        QueueInState queue(kStates[i]);
        EXPECT_EQ(call.run(queue.qd(), &tokens), call.expected[i]);
      }
      DrainTokens(tokens);
    }
  }
  witness.ExpectUntouched();
}

// qds no queue has: edge values, one never handed out, a closed socket and
// a closed connection (still draining inside the library).
std::vector<int> QdsOfNoQueue() {
  std::vector<int> qds = {-1, -2, INT_MIN, INT_MAX, 0, 1 << 30};
  int closed = -1;
  EXPECT_EQ(demi_socket(&closed, AF_INET, SOCK_STREAM, 0), 0);
  EXPECT_EQ(demi_close(closed), 0);
  qds.push_back(closed);
  DemiPair pair;
  EXPECT_TRUE(MakePair(&pair));
  PushString(pair.client, "in flight at the close");
  EXPECT_EQ(demi_close(pair.client), 0);
  qds.push_back(pair.client);
  EXPECT_EQ(PopString(pair.server), "in flight at the close");
  EXPECT_EQ(demi_close(pair.server), 0);
  EXPECT_EQ(demi_close(pair.listener), 0);
  // A bound datagram socket closed with a datagram just pushed.
  int dgram = -1, peer = -1;
  EXPECT_EQ(demi_socket(&dgram, AF_INET, SOCK_DGRAM, 0), 0);
  EXPECT_EQ(demi_socket(&peer, AF_INET, SOCK_DGRAM, 0), 0);
  sockaddr_in dgram_addr = AddrOrDie(NextPort());
  sockaddr_in peer_addr = AddrOrDie(NextPort());
  EXPECT_EQ(demi_bind(dgram, Sa(dgram_addr), sizeof(dgram_addr)), 0);
  EXPECT_EQ(demi_bind(peer, Sa(peer_addr), sizeof(peer_addr)), 0);
  demi_qtoken_t qt = 0;
  EXPECT_EQ(demi_connect(&qt, dgram, Sa(peer_addr), sizeof(peer_addr)), 0);
  EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_CONNECT);
  // The first resolves the route (a push still resolving at the close
  // fails with EBADF); the second is sent inline, just before the close.
  EXPECT_EQ(WaitOrFail(PushString(dgram, "resolves")).qr_opcode, DEMI_OPC_PUSH);
  qt = PushString(dgram, "in flight at the close");
  EXPECT_EQ(demi_close(dgram), 0);
  // Taken after the close, which sends what was pushed before it.
  demi_qresult_t qr = WaitOrFail(qt);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_PUSH) << "qr_ret " << qr.qr_ret;
  EXPECT_EQ(demi_close(peer), 0);
  qds.push_back(dgram);
  return qds;
}

TEST(BadInputTest, EveryCallOnAQdOfNoQueueIsEbadf) {
  demi::testing::WitnessPair witness;
  for (int qd : QdsOfNoQueue()) {
    SCOPED_TRACE("qd " + std::to_string(qd));
    for (const Call& call : EveryCallWithGoodArguments()) {
      SCOPED_TRACE(call.name);
      std::vector<demi_qtoken_t> tokens;
      EXPECT_EQ(call.run(qd, &tokens), EBADF);
      EXPECT_TRUE(tokens.empty());
    }
  }
  witness.ExpectUntouched();
}

// The crash this table was written for: calls on a socket between
// demi_connect and its completion, at every step of the setup (nothing
// polls until the first wait; then each wait advances it a step).
TEST(BadInputTest, PushPopAndPeerNameWhileConnectingAreEnotconn) {
  demi::testing::WitnessPair witness;
  int listener = -1, client = -1;
  ASSERT_EQ(demi_socket(&listener, AF_INET, SOCK_STREAM, 0), 0);
  sockaddr_in addr = AddrOrDie(NextPort());
  ASSERT_EQ(demi_bind(listener, Sa(addr), sizeof(addr)), 0);
  ASSERT_EQ(demi_listen(listener, 8), 0);
  ASSERT_EQ(demi_socket(&client, AF_INET, SOCK_STREAM, 0), 0);
  demi_qtoken_t connect_qt = 0;
  ASSERT_EQ(demi_connect(&connect_qt, client, Sa(addr), sizeof(addr)), 0);
  demi_qresult_t qr;
  int steps = 0;
  timespec zero = {0, 0};
  while (demi_wait(&qr, connect_qt, &zero) == ETIMEDOUT) {
    demi_sgarray_t sga = demi_sgaalloc(8);
    demi_qtoken_t qt = 0;
    EXPECT_EQ(demi_push(&qt, client, &sga), ENOTCONN);
    EXPECT_EQ(demi_pop(&qt, client), ENOTCONN);
    sockaddr_in peer;
    socklen_t len = sizeof(peer);
    EXPECT_EQ(
        demi_getpeername(client, reinterpret_cast<sockaddr*>(&peer), &len),
        ENOTCONN);
    EXPECT_EQ(demi_sgafree(&sga), 0);
    ASSERT_LT(++steps, 1000000) << "the connect never completed";
  }
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_CONNECT);
  demi_qtoken_t accept_qt = 0;
  ASSERT_EQ(demi_accept(&accept_qt, listener), 0);
  demi_qresult_t accepted = WaitOrFail(accept_qt);
  ASSERT_EQ(accepted.qr_opcode, DEMI_OPC_ACCEPT);
  demi_qtoken_t push_qt = PushString(client, "after the connect");
  EXPECT_EQ(PopString(accepted.qr_value.ares.qd), "after the connect");
  EXPECT_EQ(WaitOrFail(push_qt).qr_opcode, DEMI_OPC_PUSH);
  EXPECT_EQ(demi_close(client), 0);
  EXPECT_EQ(demi_close(accepted.qr_value.ares.qd), 0);
  EXPECT_EQ(demi_close(listener), 0);
  witness.ExpectUntouched();
}

#pragma GCC diagnostic pop

}  // namespace
