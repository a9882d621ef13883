// The libOS against peers that break its wire protocol on purpose, driven
// with raw verbs (testing/wire_peer.h) on a thread beside the library: a
// flood without credits, messages after CLOSE, an empty EAGER, a bogus
// rendezvous rkey, implausible connect data, and a peer that announces
// more receive buffers than it posts. Each must cost that peer its own
// connection, with an errno, within a bound; the library must never hand
// out memory it did not fill, and other connections must carry on.
#include <demi/libos.h>
#include <rdma/rdma_cma.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "demi/credits.h"
#include "demi/wire.h"
#include "gtest/gtest.h"
#include "rdma/status_util.h"
#include "testing/demi_helpers.h"
#include "testing/rdma_env.h"
#include "testing/wire_peer.h"

namespace {

using demi::WireHeader;
using demi::WireType;
using demi::testing::AddrOrDie;
using demi::testing::ClosePair;
using demi::testing::ConnectAsDemi;
using demi::testing::ConnectAsDemiWithoutRtu;
using demi::testing::DemiPair;
using demi::testing::MakePair;
using demi::testing::NextPort;
using demi::testing::PopString;
using demi::testing::PushString;
using demi::testing::RcPeer;
using demi::testing::ReceiveWire;
using demi::testing::Scaled;
using demi::testing::SendBytes;
using demi::testing::SendEager;
using demi::testing::SendRtu;
using demi::testing::SendWire;
using demi::testing::WaitDisconnected;
using demi::testing::WaitOrFail;

const auto* const kInit =
    ::testing::AddGlobalTestEnvironment(new demi::testing::DemiInitEnvironment);

constexpr absl::Duration kStep = absl::Seconds(30);

// A listening libOS socket on a fresh port.
struct Listener {
  int qd = -1;
  sockaddr_in addr = {};
};

Listener Listen() {
  Listener listener;
  listener.addr = AddrOrDie(NextPort());
  EXPECT_EQ(demi_socket(&listener.qd, AF_INET, SOCK_STREAM, 0), 0);
  EXPECT_EQ(
      demi_bind(listener.qd, reinterpret_cast<const sockaddr*>(&listener.addr),
                sizeof(listener.addr)),
      0);
  EXPECT_EQ(demi_listen(listener.qd, 16), 0);
  return listener;
}

// A raw peer on its own thread; the libOS stays on the test's thread.
struct RawPeerThread {
  std::thread thread;
  std::atomic<bool> done{false};
  // Set when the test ends early (a failed ASSERT): a peer body that waits
  // for the test gives up, so that the join below ends. The flags a body
  // shares with its test are declared before the RawPeerThread, so that
  // they outlive that join.
  std::atomic<bool> stop{false};
  absl::Status status;

  ~RawPeerThread() {
    stop = true;
    if (thread.joinable()) thread.join();
  }

  // Drives the libOS's progress engine (it runs only inside waits) until
  // the peer's body has returned, then joins it and returns its status.
  absl::Status Finish() {
    absl::Time deadline = absl::Now() + Scaled(2 * kStep);
    demi_qresult_t qr;
    int n = 0;
    timespec tick = absl::ToTimespec(absl::Milliseconds(20));
    while (!done && absl::Now() < deadline) {
      // Nothing else is pending: this only polls.
      EXPECT_EQ(demi_wait_next_n(&qr, 1, &n, &tick), ETIMEDOUT);
    }
    thread.join();
    return status;
  }
};

// Runs `peer_body` on `peer`'s thread with a raw peer connected to
// `listener` (announcing `recv_depth`; without its RTU unless `send_rtu`),
// accepts it with the libOS and returns the accepted queue (or -1).
int AcceptRawPeer(const Listener& listener, uint16_t recv_depth,
                  std::function<absl::Status(RcPeer&)> peer_body,
                  RawPeerThread* peer, bool send_rtu = true) {
  peer->thread = std::thread([=] {
    auto rc = send_rtu ? ConnectAsDemi(listener.addr, recv_depth, Scaled(kStep))
                       : ConnectAsDemiWithoutRtu(listener.addr, recv_depth,
                                                 Scaled(kStep));
    peer->status = rc.ok() ? peer_body(**rc) : rc.status();
    peer->done = true;
  });
  demi_qtoken_t qt = 0;
  EXPECT_EQ(demi_accept(&qt, listener.qd), 0);
  demi_qresult_t qr = WaitOrFail(qt);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_ACCEPT) << "qr_ret " << qr.qr_ret;
  return qr.qr_opcode == DEMI_OPC_ACCEPT ? qr.qr_value.ares.qd : -1;
}

// Pops until a pop fails or `limit` messages came; returns the failed
// result (DEMI_OPC_FAILED) and counts the good pops.
demi_qresult_t PopUntilFailure(int qd, int limit, int* popped) {
  *popped = 0;
  while (true) {
    demi_qtoken_t qt = 0;
    EXPECT_EQ(demi_pop(&qt, qd), 0);
    demi_qresult_t qr = WaitOrFail(qt);
    if (qr.qr_opcode != DEMI_OPC_POP || *popped >= limit) return qr;
    ++*popped;
    if (qr.qr_value.sga.sga_buf != nullptr) {
      EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
    }
  }
}

// The next pop on `qd` fails with `err`; the raw peer's side ended well;
// `qd` closes.
void ExpectPopFailureThenClose(int qd, int err, RawPeerThread& peer) {
  int popped = 0;
  demi_qresult_t qr = PopUntilFailure(qd, 0, &popped);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, err);
  absl::Status peer_status = peer.Finish();
  EXPECT_TRUE(peer_status.ok()) << peer_status;
  EXPECT_EQ(demi_close(qd), 0);
}

// The same with EPROTO, and the listener closes too.
void ExpectEprotoThenClose(int qd, RawPeerThread& peer,
                           const Listener& listener) {
  ExpectPopFailureThenClose(qd, EPROTO, peer);
  EXPECT_EQ(demi_close(listener.qd), 0);
}

// A well-behaved connection on the same listener still works.
void ExpectOthersCarryOn(const Listener& listener) {
  int client = -1;
  ASSERT_EQ(demi_socket(&client, AF_INET, SOCK_STREAM, 0), 0);
  demi_qtoken_t accept_qt = 0, connect_qt = 0;
  ASSERT_EQ(demi_accept(&accept_qt, listener.qd), 0);
  ASSERT_EQ(demi_connect(&connect_qt, client,
                         reinterpret_cast<const sockaddr*>(&listener.addr),
                         sizeof(listener.addr)),
            0);
  ASSERT_EQ(WaitOrFail(connect_qt).qr_opcode, DEMI_OPC_CONNECT);
  demi_qresult_t accepted = WaitOrFail(accept_qt);
  ASSERT_EQ(accepted.qr_opcode, DEMI_OPC_ACCEPT);
  int server = accepted.qr_value.ares.qd;
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(
        WaitOrFail(PushString(client, "ok" + std::to_string(i))).qr_opcode,
        DEMI_OPC_PUSH);
    ASSERT_EQ(PopString(server), "ok" + std::to_string(i));
  }
  EXPECT_EQ(demi_close(client), 0);
  EXPECT_EQ(demi_close(server), 0);
}

TEST(HostilePeerTest, FloodWithoutCreditsCostsThePeerItsConnection) {
  Listener listener = Listen();
  RawPeerThread peer;
  // kBaseCredits granted; 100 messages sent without waiting for more.
  int qd = AcceptRawPeer(
      listener, 2,
      [](RcPeer& peer) -> absl::Status {
        for (int i = 0; i < 100; ++i) {
          // Once our side has reset the connection, a send stays
          // unanswered (or fails): the flood is over then.
          absl::Status status = SendEager(peer, "flood" + std::to_string(i), 0,
                                          Scaled(absl::Seconds(2)));
          if (!status.ok()) break;
        }
        return WaitDisconnected(peer, Scaled(kStep));
      },
      &peer);
  ASSERT_GE(qd, 0);
  // Nothing is popped (so no credit goes back) until the flood is over.
  absl::Status peer_status = peer.Finish();
  EXPECT_TRUE(peer_status.ok()) << peer_status;
  int popped = 0;
  demi_qresult_t qr = PopUntilFailure(qd, 100, &popped);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, EPROTO);
  EXPECT_LE(popped, static_cast<int>(demi::kBaseCredits))
      << "more messages taken in than credits granted";
  EXPECT_EQ(demi_close(qd), 0);
  ExpectOthersCarryOn(listener);
  EXPECT_EQ(demi_close(listener.qd), 0);
}

TEST(HostilePeerTest, EmptyEagerMessageIsEprotoNotEof) {
  Listener listener = Listen();
  RawPeerThread peer;
  int qd = AcceptRawPeer(
      listener, 2,
      [](RcPeer& peer) -> absl::Status {
        DEMI_RETURN_IF_ERROR(SendEager(peer, "", 0, Scaled(kStep)));
        return WaitDisconnected(peer, Scaled(kStep));
      },
      &peer);
  ASSERT_GE(qd, 0);
  ExpectEprotoThenClose(qd, peer, listener);
}

// Data comes as a SEND with immediate data and no header (wire.h): an
// immediate value that is not an EAGER one, or an empty message, breaks
// the protocol. A good one is popped first, so the form itself is taken.
TEST(HostilePeerTest, BadImmediateDataIsEproto) {
  struct Case {
    const char* what;
    uint32_t imm;
    std::string bytes;
  };
  const uint32_t kClose = uint32_t{static_cast<uint8_t>(WireType::kClose)};
  for (const Case& c : {Case{"CLOSE type", kClose << 24, "x"},
                        Case{"unknown flag", demi::EagerImm(0x80, 0), "x"},
                        Case{"empty", demi::EagerImm(0, 0), ""}}) {
    SCOPED_TRACE(c.what);
    Listener listener = Listen();
    RawPeerThread peer;
    int qd = AcceptRawPeer(
        listener, 2,
        [&c](RcPeer& peer) -> absl::Status {
          DEMI_RETURN_IF_ERROR(
              SendBytes(peer, "good", demi::EagerImm(0, 0), Scaled(kStep)));
          DEMI_RETURN_IF_ERROR(SendBytes(peer, c.bytes, c.imm, Scaled(kStep)));
          return WaitDisconnected(peer, Scaled(kStep));
        },
        &peer);
    ASSERT_GE(qd, 0);
    EXPECT_EQ(PopString(qd), "good");
    ExpectEprotoThenClose(qd, peer, listener);
  }
}

// Data for a pop that waits is lent without a parse
// (Connection::TryLendArrival): a good message is, one that returns more
// credits than this side ever granted still breaks the protocol.
TEST(HostilePeerTest, TooManyCreditsFailAPopThatWaits) {
  Listener listener = Listen();
  std::atomic<int> pops_waiting{0};
  RawPeerThread peer;
  auto after_pop = [&](int n) {
    absl::Time deadline = absl::Now() + Scaled(kStep);
    while (pops_waiting < n && !peer.stop && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
  };
  int qd = AcceptRawPeer(
      listener, 2,
      [&](RcPeer& raw) -> absl::Status {
        after_pop(1);
        DEMI_RETURN_IF_ERROR(
            SendBytes(raw, "good", demi::EagerImm(0, 0), Scaled(kStep)));
        after_pop(2);
        DEMI_RETURN_IF_ERROR(SendBytes(
            raw, "bad", demi::EagerImm(0, UINT16_MAX), Scaled(kStep)));
        return WaitDisconnected(raw, Scaled(kStep));
      },
      &peer);
  ASSERT_GE(qd, 0);
  for (int n = 1; n <= 2; ++n) {
    demi_qtoken_t qt = 0;
    ASSERT_EQ(demi_pop(&qt, qd), 0);
    pops_waiting = n;
    demi_qresult_t qr = WaitOrFail(qt);
    if (n == 1) {
      ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP) << "qr_ret " << qr.qr_ret;
      ASSERT_EQ(qr.qr_value.sga.sga_segs[0].sgaseg_len, 4u);
      EXPECT_EQ(std::memcmp(qr.qr_value.sga.sga_segs[0].sgaseg_buf, "good", 4),
                0);
      EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
    } else {
      EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
      EXPECT_EQ(qr.qr_ret, EPROTO);
    }
  }
  absl::Status peer_status = peer.Finish();
  EXPECT_TRUE(peer_status.ok()) << peer_status;
  EXPECT_EQ(demi_close(qd), 0);
  ExpectOthersCarryOn(listener);
  EXPECT_EQ(demi_close(listener.qd), 0);
}

TEST(HostilePeerTest, DataAfterCloseResetsThePeer) {
  Listener listener = Listen();
  RawPeerThread peer;
  int qd = AcceptRawPeer(
      listener, 2,
      [](RcPeer& peer) -> absl::Status {
        WireHeader close = {};
        close.type = static_cast<uint8_t>(WireType::kClose);
        DEMI_RETURN_IF_ERROR(SendWire(peer, close, "", Scaled(kStep)));
        DEMI_RETURN_IF_ERROR(SendEager(peer, "late", 0, Scaled(kStep)));
        // Without the check the library took it silently and stayed up.
        return WaitDisconnected(peer, Scaled(kStep));
      },
      &peer);
  ASSERT_GE(qd, 0);
  EXPECT_EQ(PopString(qd), "");  // EOF first: it came first.
  absl::Status peer_status = peer.Finish();
  EXPECT_TRUE(peer_status.ok()) << peer_status;
  EXPECT_EQ(demi_close(qd), 0);
  EXPECT_EQ(demi_close(listener.qd), 0);
}

// A connecting side's RTU can be lost (the soak's 1% loss), and the MRA
// rdma_cm sends on a REP makes the server's rdma_cm wait over a minute for
// the next one; meanwhile the server could neither hand out the connection
// nor disconnect it. The peer's first message establishes it instead.
TEST(HostilePeerTest, DataBeforeTheRtuEstablishesTheConnection) {
  Listener listener = Listen();
  std::atomic<bool> rtu_sent{false};
  RawPeerThread peer;
  absl::Time start = absl::Now();
  int qd = AcceptRawPeer(
      listener, 4,
      [&](RcPeer& raw) -> absl::Status {
        DEMI_RETURN_IF_ERROR(
            SendEager(raw, "sent before the RTU", 0, Scaled(kStep)));
        DEMI_ASSIGN_OR_RETURN(demi::ParsedMessage reply,
                              ReceiveWire(raw, Scaled(kStep)));
        if (reply.type != WireType::kEager || reply.length != 5) {
          return demi::rdma::ErrnoError(EPROTO, "not the reply");
        }
        DEMI_RETURN_IF_ERROR(SendRtu(raw));  // Too late to matter.
        // Before it the peer's rdma_cm would drop the server's DREQ (and
        // wait for its retry).
        rtu_sent = true;
        return WaitDisconnected(raw, Scaled(kStep));
      },
      &peer, /*send_rtu=*/false);
  ASSERT_GE(qd, 0);
  absl::Duration accepted_after = absl::Now() - start;
  std::printf("accepted without the RTU after %.2f s\n",
              absl::ToDoubleSeconds(accepted_after));
  EXPECT_LT(accepted_after, Scaled(absl::Seconds(10)));
  EXPECT_EQ(PopString(qd), "sent before the RTU");
  demi_qresult_t pushed = WaitOrFail(PushString(qd, "reply"));
  EXPECT_EQ(pushed.qr_opcode, DEMI_OPC_PUSH) << "qr_ret " << pushed.qr_ret;
  absl::Time deadline = absl::Now() + Scaled(kStep);
  while (!rtu_sent && !peer.done && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(demi_close(qd), 0);
  absl::Status peer_status = peer.Finish();
  EXPECT_TRUE(peer_status.ok()) << peer_status;
  EXPECT_EQ(demi_close(listener.qd), 0);
}

// The peer above, giving up before its RTU: its rdma_cm rejects the
// connection the server has established (and handed out) meanwhile. That
// is the peer gone, not a connect refused.
TEST(HostilePeerTest, ARejectAfterTheDataResetsTheConnection) {
  Listener listener = Listen();
  std::atomic<bool> popped{false};
  RawPeerThread peer;
  int qd = AcceptRawPeer(
      listener, 4,
      [&](RcPeer& raw) -> absl::Status {
        DEMI_RETURN_IF_ERROR(SendEager(raw, "hello", 0, Scaled(kStep)));
        while (!popped && !peer.stop) absl::SleepFor(absl::Milliseconds(10));
        return absl::OkStatus();  // Its id goes: rdma_cm sends a REJ.
      },
      &peer, /*send_rtu=*/false);
  ASSERT_GE(qd, 0);
  EXPECT_EQ(PopString(qd), "hello");
  popped = true;
  ExpectPopFailureThenClose(qd, ECONNRESET, peer);
  ExpectOthersCarryOn(listener);
  EXPECT_EQ(demi_close(listener.qd), 0);
}

TEST(HostilePeerTest, FailedRendezvousReadFailsThePopAndDeliversNothing) {
  Listener listener = Listen();
  RawPeerThread peer;
  int qd = AcceptRawPeer(
      listener, 2,
      [](RcPeer& peer) -> absl::Status {
        // Announces 1 MiB behind an rkey it never registered.
        DEMI_RETURN_IF_ERROR(demi::testing::SendRndv(
            peer, 0x10000, 0xdead00, 1 << 20, /*cookie=*/7, Scaled(kStep)));
        return WaitDisconnected(peer, Scaled(kStep));
      },
      &peer);
  ASSERT_GE(qd, 0);
  int popped = 0;
  demi_qresult_t qr = PopUntilFailure(qd, 0, &popped);
  EXPECT_EQ(popped, 0) << "a pop delivered memory the READ never wrote";
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_NE(qr.qr_ret, 0);
  absl::Status peer_status = peer.Finish();
  EXPECT_TRUE(peer_status.ok()) << peer_status;
  EXPECT_EQ(demi_close(qd), 0);
  ExpectOthersCarryOn(listener);
  EXPECT_EQ(demi_close(listener.qd), 0);
}

// The cookie is the peer's to choose: two rendezvous under one must each
// be read into its own message, and neither pop may wait forever for a
// READ that was charged to the other.
TEST(HostilePeerTest, TwoRendezvousUnderOneCookieArriveWhole) {
  Listener listener = Listen();
  constexpr uint32_t kLength = 8 * 1024;
  // Where the raw peer's buffer holds them: past the small messages it
  // receives at its start.
  constexpr size_t kOffsets[2] = {16 * 1024, 24 * 1024};
  const std::string bytes[2] = {demi::testing::Pattern(kLength, 21),
                                demi::testing::Pattern(kLength, 22)};
  std::atomic<bool> announced{false};
  RawPeerThread peer;
  int qd = AcceptRawPeer(
      listener, 4,
      [&](RcPeer& raw) -> absl::Status {
        for (int i = 0; i < 2; ++i) {
          std::memcpy(raw.buffer.data() + kOffsets[i], bytes[i].data(),
                      kLength);
          DEMI_RETURN_IF_ERROR(demi::testing::SendRndv(
              raw, reinterpret_cast<uint64_t>(raw.buffer.data() + kOffsets[i]),
              raw.mr->rkey, kLength, /*cookie=*/7, Scaled(kStep)));
        }
        announced = true;
        // Each comes back done under the cookie it was sent with.
        for (int i = 0; i < 2; ++i) {
          DEMI_ASSIGN_OR_RETURN(demi::ParsedMessage done,
                                ReceiveWire(raw, Scaled(kStep)));
          if (done.type != WireType::kRndvDone || done.cookie != 7) {
            return demi::rdma::ErrnoError(EPROTO, "expected RNDV_DONE 7");
          }
        }
        return absl::OkStatus();
      },
      &peer);
  ASSERT_GE(qd, 0);
  // Both announced, and read ahead, before any pop.
  demi_qresult_t qr;
  int n = 0;
  timespec tick = absl::ToTimespec(absl::Milliseconds(20));
  absl::Time deadline = absl::Now() + Scaled(kStep);
  while (!announced && absl::Now() < deadline) {
    EXPECT_EQ(demi_wait_next_n(&qr, 1, &n, &tick), ETIMEDOUT);
  }
  ASSERT_TRUE(announced.load());
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(demi_wait_next_n(&qr, 1, &n, &tick), ETIMEDOUT);
  }
  for (int i = 0; i < 2; ++i) {
    demi_qtoken_t qt = 0;
    ASSERT_EQ(demi_pop(&qt, qd), 0);
    qr = WaitOrFail(qt, Scaled(kStep));
    ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP) << "qr_ret " << qr.qr_ret;
    EXPECT_TRUE(demi::testing::SameBytes(
        demi::testing::SgaBytes(qr.qr_value.sga), bytes[i]))
        << "message " << i;
    EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
  }
  absl::Status peer_status = peer.Finish();
  EXPECT_TRUE(peer_status.ok()) << peer_status;
  EXPECT_EQ(demi_close(qd), 0);
  EXPECT_EQ(demi_close(listener.qd), 0);
}

TEST(HostilePeerTest, RendezvousIsReadableThroughItsOwnConnectionOnly) {
  Listener listener = Listen();
  constexpr uint32_t kRead = 32 * 1024;
  // One message from the pool, one from foreign memory (registered for
  // the push): each is exposed through a window bound to A's QP.
  std::string pooled = demi::testing::Pattern(64 * 1024, 1);
  std::string foreign = demi::testing::Pattern(100 * 1024, 2);
  std::atomic<bool> a_connected{false};
  std::atomic<bool> a_accepted{false};
  std::atomic<bool> done{false};
  absl::Status status;
  std::vector<std::string> read_by_a;
  std::vector<int> b_errno;
  std::vector<uint64_t> announced_addrs;
  std::thread thread([&] {
    status = [&]() -> absl::Status {
      DEMI_ASSIGN_OR_RETURN(auto a,
                            ConnectAsDemi(listener.addr, 4, Scaled(kStep)));
      // The thieves connect only once A has been accepted: the first
      // accepted connection is A's.
      while (!a_accepted) absl::SleepFor(absl::Milliseconds(10));
      // A failed READ breaks the reader's QP: one thief per attempt.
      std::unique_ptr<RcPeer> thieves[2];
      for (auto& thief : thieves) {
        DEMI_ASSIGN_OR_RETURN(thief,
                              ConnectAsDemi(listener.addr, 4, Scaled(kStep)));
      }
      a_connected = true;
      for (int i = 0; i < 2; ++i) {
        absl::StatusOr<demi::ParsedMessage> received =
            demi::testing::ReceiveWire(*a, Scaled(kStep));
        if (!received.ok()) {
          return demi::rdma::ErrnoError(
              demi::rdma::ErrnoOf(received.status()),
              "A receiving the announcement: " + received.status().ToString());
        }
        demi::ParsedMessage msg = *received;
        if (msg.type != WireType::kRndv) {
          return demi::rdma::ErrnoError(EPROTO, "expected a rendezvous");
        }
        const demi::RndvSegment& seg = msg.rndv.segments[0];
        announced_addrs.push_back(seg.addr);
        // Another client of the same server guesses nothing: it has the
        // rkey and the offset, and still cannot read.
        absl::Status stolen = demi::testing::ReadRemote(
            *thieves[i], seg.addr, seg.rkey, kRead, Scaled(kStep));
        b_errno.push_back(demi::rdma::ErrnoOf(stolen));
        absl::Status read = demi::testing::ReadRemote(*a, seg.addr, seg.rkey,
                                                      kRead, Scaled(kStep));
        if (!read.ok()) {
          return demi::rdma::ErrnoError(demi::rdma::ErrnoOf(read),
                                        "A reading: " + read.ToString());
        }
        read_by_a.emplace_back(reinterpret_cast<const char*>(a->buffer.data()) +
                                   demi::testing::kRcPeerBufferSize / 2,
                               kRead);
        WireHeader read_done = {};
        read_done.type = static_cast<uint8_t>(WireType::kRndvDone);
        read_done.cookie = msg.cookie;
        DEMI_RETURN_IF_ERROR(SendWire(*a, read_done, "", Scaled(kStep)));
      }
      return absl::OkStatus();
    }();
    done = true;
  });
  std::vector<int> accepted;
  for (int i = 0; i < 3; ++i) {
    demi_qtoken_t qt = 0;
    ASSERT_EQ(demi_accept(&qt, listener.qd), 0);
    demi_qresult_t qr = WaitOrFail(qt);
    ASSERT_EQ(qr.qr_opcode, DEMI_OPC_ACCEPT);
    accepted.push_back(qr.qr_value.ares.qd);
    a_accepted = true;
  }
  int a_qd = accepted[0];
  demi_qresult_t qr;
  int n = 0;
  timespec tick = absl::ToTimespec(absl::Milliseconds(20));
  while (!a_connected && !done) {
    // Nothing is pending: this only drives progress.
    EXPECT_EQ(demi_wait_next_n(&qr, 1, &n, &tick), ETIMEDOUT);
  }
  std::vector<demi_qtoken_t> pushes;
  pushes.push_back(PushString(a_qd, pooled));
  demi_sgarray_t sga = {};
  sga.sga_numsegs = 1;
  sga.sga_segs[0].sgaseg_buf = foreign.data();
  sga.sga_segs[0].sgaseg_len = static_cast<uint32_t>(foreign.size());
  demi_qtoken_t qt = 0;
  ASSERT_EQ(demi_push(&qt, a_qd, &sga), 0);
  pushes.push_back(qt);
  for (demi_qtoken_t push : pushes) {
    qr = WaitOrFail(push);
    EXPECT_EQ(qr.qr_opcode, DEMI_OPC_PUSH) << "qr_ret " << qr.qr_ret;
  }
  while (!done) EXPECT_EQ(demi_wait_next_n(&qr, 1, &n, &tick), ETIMEDOUT);
  thread.join();
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(b_errno.size(), 2u);
  for (int err : b_errno) EXPECT_EQ(err, EFAULT) << "B read A's buffer";
  // The window is addressed by virtual address (rxe cannot retry a READ
  // through a zero-based one) and covers the pushed bytes in place: the
  // foreign message is too large to copy.
  ASSERT_EQ(announced_addrs.size(), 2u);
  EXPECT_EQ(announced_addrs[1], reinterpret_cast<uintptr_t>(foreign.data()));
  ASSERT_EQ(read_by_a.size(), 2u);
  EXPECT_EQ(read_by_a[0], pooled.substr(0, kRead));
  EXPECT_EQ(read_by_a[1], foreign.substr(0, kRead));
  for (int qd : accepted) EXPECT_EQ(demi_close(qd), 0);
  EXPECT_EQ(demi_close(listener.qd), 0);
}

// A peer whose host vanishes sends no disconnect; here its QP just goes
// deaf (error state, which drops whatever arrives). A connection that only
// pops must notice through its keepalive probe, with ETIMEDOUT.
// A peer that spent every credit (two messages the application leaves
// unpopped, then the completion of the first rendezvous, returning none)
// cannot send the completion of the second, which the push waits for. The
// library has one credit left, its reserve, and no spare one to return
// at once (CreditReturnDue): its timers send that one, and the push
// completes. Keepalive is off in the libOS under test (a thread of its
// own): the credit must not wait for it.
void StrandedPeerGetsTheLastCredit() {
  Listener listener = Listen();
  RawPeerThread peer;
  int qd = AcceptRawPeer(
      listener, 3,
      [](RcPeer& raw) -> absl::Status {
        uint64_t cookies[2];
        for (uint64_t& cookie : cookies) {
          DEMI_ASSIGN_OR_RETURN(demi::ParsedMessage msg,
                                ReceiveWire(raw, Scaled(kStep)));
          if (msg.type != WireType::kRndv) {
            return demi::rdma::ErrnoError(EPROTO, "expected a rendezvous");
          }
          cookie = msg.cookie;
        }
        DEMI_RETURN_IF_ERROR(SendEager(raw, "one", 0, Scaled(kStep)));
        DEMI_RETURN_IF_ERROR(SendEager(raw, "two", 0, Scaled(kStep)));
        WireHeader done = {};
        done.type = static_cast<uint8_t>(WireType::kRndvDone);
        done.cookie = cookies[0];
        DEMI_RETURN_IF_ERROR(SendWire(raw, done, "", Scaled(kStep)));
        DEMI_ASSIGN_OR_RETURN(demi::ParsedMessage credit,
                              ReceiveWire(raw, Scaled(kStep)));
        if (credit.type != WireType::kCredit || credit.credits != 1) {
          return demi::rdma::ErrnoError(EPROTO, "expected one credit back");
        }
        done.cookie = cookies[1];
        return SendWire(raw, done, "", Scaled(kStep));
      },
      &peer);
  ASSERT_GE(qd, 0);
  demi_qtoken_t pushes[] = {
      PushString(qd, demi::testing::Pattern(64 * 1024, 1)),
      PushString(qd, demi::testing::Pattern(64 * 1024, 2))};
  for (demi_qtoken_t qt : pushes) {
    demi_qresult_t qr = WaitOrFail(qt);
    EXPECT_EQ(qr.qr_opcode, DEMI_OPC_PUSH) << "qr_ret " << qr.qr_ret;
  }
  absl::Status peer_status = peer.Finish();
  EXPECT_TRUE(peer_status.ok()) << peer_status;
  EXPECT_EQ(demi_close(qd), 0);
  EXPECT_EQ(demi_close(listener.qd), 0);
}

TEST(HostilePeerTest, AStrandedPeerGetsTheLastCreditForARendezvousDone) {
  std::thread([] {
    // No other thread reads the environment meanwhile.
    const char* old = std::getenv("DEMI_KEEPALIVE_MS");
    std::string saved = old != nullptr ? old : "";
    setenv("DEMI_KEEPALIVE_MS", "0", 1);
    int rc = demi_init(nullptr);
    if (old != nullptr) {
      setenv("DEMI_KEEPALIVE_MS", saved.c_str(), 1);
    } else {
      unsetenv("DEMI_KEEPALIVE_MS");
    }
    ASSERT_EQ(rc, 0);
    StrandedPeerGetsTheLastCredit();
  }).join();
}

TEST(HostilePeerTest, SilentPeerFailsAWaitingPopWithEtimedout) {
  Listener listener = Listen();
  std::atomic<bool> deaf{false};
  std::atomic<bool> release{false};
  RawPeerThread peer;
  int qd = AcceptRawPeer(
      listener, 2,
      [&](RcPeer& raw) -> absl::Status {
        ibv_qp_attr attr = {};
        attr.qp_state = IBV_QPS_ERR;
        if (int rc = ibv_modify_qp(raw.qp->qp, &attr, IBV_QP_STATE); rc != 0) {
          return demi::rdma::ErrnoError(rc, "ibv_modify_qp");
        }
        deaf = true;
        // Destroying the peer would disconnect it: it stays, silent.
        while (!release && !peer.stop) absl::SleepFor(absl::Milliseconds(10));
        return absl::OkStatus();
      },
      &peer);
  ASSERT_GE(qd, 0);
  while (!deaf && !peer.done) absl::SleepFor(absl::Milliseconds(10));
  absl::Time start = absl::Now();
  demi_qtoken_t qt = 0;
  ASSERT_EQ(demi_pop(&qt, qd), 0);
  demi_qresult_t qr = WaitOrFail(qt);
  release = true;
  EXPECT_TRUE(peer.Finish().ok());
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, ETIMEDOUT);
  std::printf("silent peer detected after %.2f s\n",
              absl::ToDoubleSeconds(absl::Now() - start));
  EXPECT_EQ(demi_close(qd), 0);
  EXPECT_EQ(demi_close(listener.qd), 0);
}

// Too many buffers to trust, or too few ever to be sent data (one credit
// is kept for control messages): refused at connect, not a push that
// waits forever.
TEST(HostilePeerTest, ImplausibleReceiveDepthIsRefused) {
  for (uint16_t depth : {65535, 1}) {
    SCOPED_TRACE(depth);
    Listener listener = Listen();
    std::atomic<bool> done{false};
    absl::Status status;
    std::thread thread([&] {
      status = ConnectAsDemi(listener.addr, depth, Scaled(absl::Seconds(5)))
                   .status();
      done = true;
    });
    // The library must take the request in (and refuse it) meanwhile.
    demi_qtoken_t qt = 0;
    ASSERT_EQ(demi_accept(&qt, listener.qd), 0);
    demi_qresult_t qr;
    timespec tick = absl::ToTimespec(absl::Milliseconds(50));
    while (!done) EXPECT_NE(demi_wait(&qr, qt, &tick), 0);
    thread.join();
    EXPECT_EQ(demi::rdma::ErrnoOf(status), ECONNREFUSED) << status;
    EXPECT_EQ(demi_close(listener.qd), 0);
    qr = WaitOrFail(qt);
    EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
    EXPECT_EQ(qr.qr_ret, EBADF);
  }
}

TEST(HostilePeerTest, PeerPostingFewerBuffersThanItAnnouncedFailsPushes) {
  Listener listener = Listen();
  RawPeerThread peer;
  // Announces 1,000 receive buffers but posts only one.
  int qd = AcceptRawPeer(
      listener, 1000,
      [&peer](RcPeer&) -> absl::Status {
        while (!peer.stop) absl::SleepFor(absl::Milliseconds(10));
        return absl::OkStatus();
      },
      &peer);
  ASSERT_GE(qd, 0);
  // Not inline (they complete at the peer's ACK): the second one meets RNR.
  std::vector<demi_qtoken_t> pushes;
  for (int i = 0; i < 4; ++i) {
    pushes.push_back(PushString(qd, std::string(1000, 'a' + i)));
  }
  int failed = 0;
  for (demi_qtoken_t qt : pushes) {
    demi_qresult_t qr = WaitOrFail(qt);
    if (qr.qr_opcode == DEMI_OPC_FAILED) {
      ++failed;
      EXPECT_EQ(qr.qr_ret, ETIMEDOUT);
    }
  }
  EXPECT_GE(failed, 3);
  peer.stop = true;
  EXPECT_TRUE(peer.Finish().ok());
  EXPECT_EQ(demi_close(qd), 0);
  EXPECT_EQ(demi_close(listener.qd), 0);
}

}  // namespace
