// What happens when resources run out or a queue pair fails: pops and
// datagram binds under pool pressure (this binary's pool is small, and the
// tests fill it on purpose), a datagram socket whose UD QP breaks with
// datagrams half posted, which must still drain at once, completion
// queues that break or never deliver, and a send queue whose post fails
// (testing/cq_fault.h).
#include <arpa/inet.h>
#include <demi/libos.h>
#include <infiniband/verbs.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "demi/datagram_socket.h"
#include "demi/datagram_wire.h"
#include "demi/limits.h"
#include "demi/qtoken_table.h"
#include "demi/sga_pool.h"
#include "demi/wire.h"
#include "gtest/gtest.h"
#include "rdma/clock.h"
#include "rdma/cm_event.h"
#include "rdma/status_util.h"
#include "rdma/verbs_ptr.h"
#include "testing/cq_fault.h"
#include "testing/demi_helpers.h"
#include "testing/rc_peer.h"
#include "testing/rdma_env.h"
#include "testing/wire_peer.h"

namespace {

using demi::testing::AddrOrDie;
using demi::testing::CqFault;
using demi::testing::DemiPair;
using demi::testing::Ms;
using demi::testing::NextPort;
using demi::testing::Pattern;
using demi::testing::PushString;
using demi::testing::RcPeer;
using demi::testing::Sa;
using demi::testing::SameBytes;
using demi::testing::Scaled;
using demi::testing::ScopedCqFault;
using demi::testing::ScopedPostSendFault;
using demi::testing::SgaBytes;
using demi::testing::WaitOrFail;

// Small enough to fill in a test, large enough for a 1 MiB message and a
// few sockets; below DEMI_MAX_MESSAGE_SIZE, so a 16 MiB message never fits.
constexpr int kPoolLimitMb = 12;
const auto* const kInit = ::testing::AddGlobalTestEnvironment(
    new demi::testing::DemiInitEnvironment(kPoolLimitMb));

// Allocates `size`-byte sgas until the pool says no; frees them with Free.
class PoolHog {
 public:
  explicit PoolHog(size_t size) {
    while (true) {
      demi_sgarray_t sga = demi_sgaalloc(size);
      if (sga.sga_numsegs == 0) break;
      held_.push_back(sga);
    }
  }
  ~PoolHog() { Free(held_.size()); }
  // Gives `n` of them back (the last taken first).
  void Free(size_t n) {
    for (; n > 0 && !held_.empty(); --n) {
      EXPECT_EQ(demi_sgafree(&held_.back()), 0);
      held_.pop_back();
    }
  }
  size_t size() const { return held_.size(); }

 private:
  std::vector<demi_sgarray_t> held_;
};

int DatagramSocketAt(uint16_t port, int* bind_result) {
  int qd = -1;
  EXPECT_EQ(demi_socket(&qd, AF_INET, SOCK_DGRAM, 0), 0);
  sockaddr_in local = AddrOrDie(port);
  *bind_result = demi_bind(qd, Sa(local), sizeof(local));
  return qd;
}

TEST(PoolPressureTest, ADatagramBindTakesTheReceiveBuffersThereAre) {
  uint16_t b_port = NextPort();
  int bound = -1;
  int b = DatagramSocketAt(b_port, &bound);
  ASSERT_EQ(bound, 0);
  demi_sgarray_t message = demi_sgaalloc(64);  // Before the pool is full.
  ASSERT_EQ(message.sga_numsegs, 1u);
  std::memcpy(message.sga_segs[0].sgaseg_buf, Pattern(64, 3).data(), 64);
  {
    // Receive buffers are 2 KiB pieces (40 B GRH + the UD MTU).
    PoolHog hog(2048);
    ASSERT_GT(hog.size(), 1000u);
    int none = DatagramSocketAt(NextPort(), &bound);
    EXPECT_EQ(bound, ENOBUFS) << "not one receive buffer could be posted";
    EXPECT_EQ(demi_close(none), 0);
    // A tenth of a receive queue: enough to receive, the rest later.
    hog.Free(100);
    uint16_t a_port = NextPort();
    int a = DatagramSocketAt(a_port, &bound);
    EXPECT_EQ(bound, 0);
    if (bound == 0) {
      sockaddr_in dest = AddrOrDie(a_port);
      demi_qtoken_t qt = 0;
      ASSERT_EQ(demi_pushto(&qt, b, &message, Sa(dest), sizeof(dest)), 0);
      EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
      ASSERT_EQ(demi_pop(&qt, a), 0);
      demi_qresult_t qr = WaitOrFail(qt, absl::Seconds(20));
      ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP) << "qr_ret " << qr.qr_ret;
      EXPECT_TRUE(SameBytes(SgaBytes(qr.qr_value.sga), Pattern(64, 3)));
      EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
    }
    EXPECT_EQ(demi_close(a), 0);
  }
  EXPECT_EQ(demi_sgafree(&message), 0);
  EXPECT_EQ(demi_close(b), 0);
}

TEST(PoolPressureTest, APopWaitsForMemoryToReadIntoInsteadOfFailing) {
  demi::testing::DemiPair pair;
  ASSERT_TRUE(demi::testing::MakePair(&pair));
  // Rendezvous: the server needs a 1 MiB piece to READ the message into.
  constexpr size_t kSize = size_t{1} << 20;
  std::string bytes = Pattern(kSize, 11);
  demi_sgarray_t sga = demi_sgaalloc(kSize);
  ASSERT_EQ(sga.sga_numsegs, 1u);
  std::memcpy(sga.sga_segs[0].sgaseg_buf, bytes.data(), kSize);
  demi_qtoken_t push = 0;
  ASSERT_EQ(demi_push(&push, pair.client, &sga), 0);
  EXPECT_EQ(demi_sgafree(&sga), 0);
  {
    // Before the announcement is in (no pass has run): nothing to read it
    // into, ahead of its pop or for it.
    PoolHog hog(kSize);
    demi_qresult_t qr;
    timespec t = Ms(200);  // The announcement reaches the server meanwhile.
    ASSERT_EQ(demi_wait(&qr, push, &t), ETIMEDOUT);
    demi_qtoken_t pop = 0;
    ASSERT_EQ(demi_pop(&pop, pair.server), 0);
    t = Ms(500);
    int rc = demi_wait(&qr, pop, &t);
    EXPECT_EQ(rc, ETIMEDOUT) << "the pop completed with opcode " << qr.qr_opcode
                             << ", qr_ret " << qr.qr_ret;
    if (rc == ETIMEDOUT) {
      hog.Free(hog.size());
      qr = WaitOrFail(pop);
      ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP) << "qr_ret " << qr.qr_ret;
      EXPECT_TRUE(SameBytes(SgaBytes(qr.qr_value.sga), bytes));
      EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
      EXPECT_EQ(WaitOrFail(push).qr_opcode, DEMI_OPC_PUSH);
    }
  }
  demi::testing::ClosePair(pair);
}

// A rendezvous is read ahead of its pop only while the process has
// registered less than half the pool's limit: the rest is left to pops.
// Here the message is read at its pop, so bytes scribbled over it before
// then show.
TEST(PoolPressureTest, NothingIsReadAheadIntoTheSecondHalfOfThePool) {
  demi::testing::DemiPair pair;
  ASSERT_TRUE(demi::testing::MakePair(&pair));
  constexpr size_t kSize = size_t{1} << 20;
  demi_sgarray_t sga = demi_sgaalloc(kSize);
  ASSERT_EQ(sga.sga_numsegs, 1u);
  std::memset(sga.sga_segs[0].sgaseg_buf, 0x11, kSize);
  {
    PoolHog hog(kSize);
    hog.Free(1);  // Room for the message, in the pool's second half.
    demi_qtoken_t push = 0;
    ASSERT_EQ(demi_push(&push, pair.client, &sga), 0);
    demi_qresult_t qr;
    // Time enough to read ahead, were it allowed.
    timespec t = absl::ToTimespec(Scaled(absl::Milliseconds(500)));
    ASSERT_EQ(demi_wait(&qr, push, &t), ETIMEDOUT);
    std::memset(sga.sga_segs[0].sgaseg_buf, 0xee, kSize);
    demi_qtoken_t pop = 0;
    ASSERT_EQ(demi_pop(&pop, pair.server), 0);
    qr = WaitOrFail(pop);
    ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP) << "qr_ret " << qr.qr_ret;
    EXPECT_TRUE(
        SameBytes(SgaBytes(qr.qr_value.sga), std::string(kSize, '\xee')))
        << "read ahead into the pool's second half";
    EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
    EXPECT_EQ(WaitOrFail(push).qr_opcode, DEMI_OPC_PUSH);
  }
  EXPECT_EQ(demi_sgafree(&sga), 0);
  demi::testing::ClosePair(pair);
}

TEST(PoolPressureTest, AMessageThePoolCanNeverHoldFailsItsPopWithEnobufs) {
  demi::testing::DemiPair pair;
  ASSERT_TRUE(demi::testing::MakePair(&pair));
  // Not from the pool: registered for the push alone, so it can be sent
  // even though the receiver's pool (the same one) can never hold it.
  constexpr size_t kSize = DEMI_MAX_MESSAGE_SIZE;
  std::string bytes = Pattern(kSize, 12);
  demi_sgarray_t sga = {};
  sga.sga_numsegs = 1;
  sga.sga_segs[0].sgaseg_buf = bytes.data();
  sga.sga_segs[0].sgaseg_len = static_cast<uint32_t>(kSize);
  demi_qtoken_t push = 0;
  ASSERT_EQ(demi_push(&push, pair.client, &sga), 0);
  demi_qtoken_t pop = 0;
  ASSERT_EQ(demi_pop(&pop, pair.server), 0);
  demi_qresult_t qr = WaitOrFail(pop, absl::Seconds(20));
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, ENOBUFS);
  ASSERT_EQ(demi_close(pair.client), 0);
  ASSERT_EQ(demi_close(pair.server), 0);
  ASSERT_EQ(demi_close(pair.listener), 0);
  // The push ends with the connection (never read).
  EXPECT_EQ(WaitOrFail(push, absl::Seconds(40)).qr_opcode, DEMI_OPC_FAILED);
}

// A message the pool can never hold behind one it can: pops reach the
// messages in order, so the first gets the earlier message and every pop
// after it fails, those pending at once included. (The first pop used to
// fail, the second got the earlier message, and a third stayed pending.)
TEST(PoolPressureTest, ANeverFittingMessageFailsOnlyThePopsThatReachIt) {
  demi::testing::DemiPair pair;
  ASSERT_TRUE(demi::testing::MakePair(&pair));
  // Both by rendezvous and not from the pool, as above.
  std::string first = Pattern(100 << 10, 13);
  std::string huge = Pattern(DEMI_MAX_MESSAGE_SIZE, 14);
  demi_qtoken_t pushes[2] = {};
  for (int i = 0; i < 2; ++i) {
    std::string& bytes = i == 0 ? first : huge;
    demi_sgarray_t sga = {};
    sga.sga_numsegs = 1;
    sga.sga_segs[0].sgaseg_buf = bytes.data();
    sga.sga_segs[0].sgaseg_len = static_cast<uint32_t>(bytes.size());
    ASSERT_EQ(demi_push(&pushes[i], pair.client, &sga), 0);
  }
  demi_qresult_t qr;
  timespec t = Ms(500);  // Both announcements reach the server meanwhile.
  ASSERT_EQ(demi_wait(&qr, pushes[1], &t), ETIMEDOUT);
  demi_qtoken_t pops[3] = {};
  for (demi_qtoken_t& pop : pops) ASSERT_EQ(demi_pop(&pop, pair.server), 0);
  qr = WaitOrFail(pops[0], absl::Seconds(20));
  ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP) << "qr_ret " << qr.qr_ret;
  EXPECT_TRUE(SameBytes(SgaBytes(qr.qr_value.sga), first));
  EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
  for (int i = 1; i < 3; ++i) {
    qr = WaitOrFail(pops[i], absl::Seconds(20));
    EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED) << "pop " << i;
    EXPECT_EQ(qr.qr_ret, ENOBUFS) << "pop " << i;
  }
  EXPECT_EQ(WaitOrFail(pushes[0]).qr_opcode, DEMI_OPC_PUSH);
  // It stays unread: a later pop fails too.
  demi_qtoken_t later = 0;
  ASSERT_EQ(demi_pop(&later, pair.server), 0);
  qr = WaitOrFail(later, absl::Seconds(20));
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, ENOBUFS);
  ASSERT_EQ(demi_close(pair.client), 0);
  ASSERT_EQ(demi_close(pair.server), 0);
  ASSERT_EQ(demi_close(pair.listener), 0);
  EXPECT_EQ(WaitOrFail(pushes[1], absl::Seconds(40)).qr_opcode,
            DEMI_OPC_FAILED);
}

// A DatagramSocket driven by hand, without the libOS around it, so that
// the test can reach its QP (on the rdma_cm id it is given) and break it.
class FailedDatagramSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<demi::rdma::EventChannelPtr> channel =
        demi::rdma::CreateEventChannel(/*nonblocking=*/true);
    ASSERT_TRUE(channel.ok()) << channel.status();
    channel_ = std::move(channel).value();
    for (int i = 0; i < 2; ++i) {
      ports_[i] = NextPort();
      absl::StatusOr<demi::rdma::CmIdPtr> id = demi::rdma::CreateCmId(
          channel_.get(), reinterpret_cast<void*>(intptr_t{i}), RDMA_PS_UDP);
      ASSERT_TRUE(id.ok()) << id.status();
      ids_[i] = std::move(id).value();
      sockaddr_in local = AddrOrDie(ports_[i]);
      ASSERT_EQ(
          rdma_bind_addr(ids_[i].get(), reinterpret_cast<sockaddr*>(&local)), 0)
          << std::strerror(errno);
    }
    absl::StatusOr<demi::rdma::PdPtr> pd = demi::rdma::AllocPd(ids_[0]->verbs);
    ASSERT_TRUE(pd.ok()) << pd.status();
    pd_ = std::move(pd).value();
    pool_ = std::make_unique<demi::SgaPool>(std::vector<ibv_pd*>{pd_.get()},
                                            size_t{64} << 20);
    for (int i = 0; i < 2; ++i) {
      demi::DatagramEnv env = {pool_.get(), &tokens_, channel_.get(),
                               pd_.get(),   0,        i};
      absl::StatusOr<std::unique_ptr<demi::DatagramSocket>> socket =
          demi::DatagramSocket::Create(env, ids_[i].get(),
                                       AddrOrDie(ports_[i]));
      ASSERT_TRUE(socket.ok()) << socket.status();
      sockets_[i] = std::move(socket).value();
    }
  }

  // One pass of what the libOS's progress engine does for the sockets.
  void Pump() {
    for (auto& socket : sockets_) socket->Poll();
    absl::Time now = demi::rdma::MonotonicNow();
    for (auto& socket : sockets_) socket->PollTimers(now);
    while (true) {
      absl::StatusOr<absl::optional<demi::rdma::CmEvent>> event =
          demi::rdma::PollCmEvent(channel_.get());
      ASSERT_TRUE(event.ok()) << event.status();
      if (!event->has_value()) return;
      const demi::rdma::CmEvent& e = **event;
      if (e.type == RDMA_CM_EVENT_CONNECT_REQUEST) {
        demi::rdma::CmIdPtr request(e.id);
        Of(e.listen_id).AnswerResolve(std::move(request));
      } else {
        Of(e.id).OnCmEvent(e);
      }
    }
  }
  demi::DatagramSocket& Of(rdma_cm_id* id) {
    return *sockets_[reinterpret_cast<intptr_t>(id->context)];
  }
  // Pumps until `done` or `timeout`; returns `done`'s last answer.
  template <typename F>
  bool PumpUntil(F&& done, absl::Duration timeout) {
    absl::Time deadline = demi::rdma::MonotonicNow() + timeout;
    while (!done()) {
      if (demi::rdma::MonotonicNow() > deadline) return false;
      Pump();
    }
    return true;
  }
  // Starts a push of `length` bytes of `buffer` from socket 0 to socket 1.
  demi_qtoken_t Push(demi::Buffer* buffer, uint32_t length) {
    demi_sgarray_t sga = {};
    sga.sga_numsegs = 1;
    sga.sga_segs[0].sgaseg_buf = buffer->data;
    sga.sga_segs[0].sgaseg_len = length;
    demi_qtoken_t qt = 0;
    int err = sockets_[0]->PushTo(sga, length, AddrOrDie(ports_[1]), &qt);
    EXPECT_EQ(err, 0) << std::strerror(err);
    return qt;
  }

  // Declared so that the sockets go first, then the pool, the PD and the
  // ids they borrow.
  demi::rdma::EventChannelPtr channel_;
  demi::rdma::CmIdPtr ids_[2];
  uint16_t ports_[2] = {};
  demi::rdma::PdPtr pd_;
  std::unique_ptr<demi::SgaPool> pool_;
  demi::QTokenTable tokens_;
  std::unique_ptr<demi::DatagramSocket> sockets_[2];
};

TEST_F(FailedDatagramSocketTest, ClosingItDrainsAtOnce) {
  absl::StatusOr<demi::Buffer*> buffer = pool_->Allocate(demi::kMaxDatagram);
  ASSERT_TRUE(buffer.ok()) << buffer.status();
  // First a datagram that goes through: the route is known from then on.
  demi_qtoken_t warm = Push(*buffer, 64);
  ASSERT_TRUE(
      PumpUntil([&] { return tokens_.IsDone(warm); }, absl::Seconds(20)));
  demi_qresult_t qr;
  ASSERT_TRUE(tokens_.Take(warm, &qr));
  ASSERT_EQ(qr.qr_opcode, DEMI_OPC_PUSH) << "qr_ret " << qr.qr_ret;
  // The QP fails, then more fragments than the send ring holds are pushed:
  // one datagram is left half posted, the last one not posted at all.
  ibv_qp_attr attr = {};
  attr.qp_state = IBV_QPS_ERR;
  ASSERT_EQ(ibv_modify_qp(ids_[0]->qp, &attr, IBV_QP_STATE), 0);
  std::vector<demi_qtoken_t> pushes;
  for (int i = 0; i < 5; ++i)
    pushes.push_back(Push(*buffer, demi::kMaxDatagram));
  pool_->Unref(*buffer);  // The pushes hold it.
  ASSERT_TRUE(PumpUntil(
      [&] {
        for (demi_qtoken_t qt : pushes) {
          if (!tokens_.IsDone(qt)) return false;
        }
        return true;
      },
      absl::Seconds(10)))
      << "the pushes of a failed socket never completed";
  for (demi_qtoken_t qt : pushes) {
    ASSERT_TRUE(tokens_.Take(qt, &qr));
    EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
    EXPECT_NE(qr.qr_ret, 0);
  }
  sockets_[0]->StartClose();
  absl::Time start = demi::rdma::MonotonicNow();
  EXPECT_TRUE(
      PumpUntil([&] { return sockets_[0]->Drained(); }, absl::Seconds(3)))
      << "the close of a failed socket would wait its whole linger time";
  EXPECT_LT(demi::rdma::MonotonicNow() - start, absl::Seconds(1));
}

// A failed ibv_poll_cq loses whatever the CQ held: every operation waiting
// on it fails with EIO instead of waiting forever, and the device serves
// new connections once its CQs poll again.
TEST(BrokenCompletionQueueTest, PendingPopsAndPushesFailWithEio) {
  DemiPair pair;
  ASSERT_TRUE(demi::testing::MakePair(&pair));
  demi_qtoken_t client_pop = 0, server_pop = 0;
  ASSERT_EQ(demi_pop(&client_pop, pair.client), 0);
  ASSERT_EQ(demi_pop(&server_pop, pair.server), 0);
  int dgram_bound = -1;
  uint16_t dgram_port = NextPort();
  int dgram = DatagramSocketAt(dgram_port, &dgram_bound);
  ASSERT_EQ(dgram_bound, 0);
  demi_qtoken_t dgram_pop = 0;
  ASSERT_EQ(demi_pop(&dgram_pop, dgram), 0);
  {
    ScopedCqFault fault(CqFault::kFail);
    for (demi_qtoken_t qt : {client_pop, server_pop, dgram_pop}) {
      demi_qresult_t qr = WaitOrFail(qt, absl::Seconds(20));
      EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
      EXPECT_EQ(qr.qr_ret, EIO);
    }
    // Pushes issued on the broken device fail as well, not hang.
    demi_qtoken_t push = demi::testing::PushString(pair.client, "lost");
    demi_qresult_t qr = WaitOrFail(push, absl::Seconds(20));
    EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
    EXPECT_NE(qr.qr_ret, 0);
  }
  // The CQs poll again, but what the broken one held is lost: a datagram
  // pop issued now fails at once, rather than wait for nothing.
  demi_qtoken_t late_pop = 0;
  ASSERT_EQ(demi_pop(&late_pop, dgram), 0);
  demi_qresult_t late = WaitOrFail(late_pop, absl::Seconds(20));
  EXPECT_EQ(late.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(late.qr_ret, EIO);
  demi::testing::ClosePair(pair);
  EXPECT_EQ(demi_close(dgram), 0);
  // The CQs poll again: a new connection carries a message.
  DemiPair fresh;
  ASSERT_TRUE(demi::testing::MakePair(&fresh));
  demi_qresult_t qr = WaitOrFail(demi::testing::PushString(fresh.client, "x"));
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_PUSH);
  EXPECT_EQ(demi::testing::PopString(fresh.server), "x");
  demi::testing::ClosePair(fresh);
}

// A connect whose CQ fails in its setup fails with EIO, what broke it: not
// ECONNREFUSED, as if nobody listened there (rdma_cm cannot ready the QP
// the failure put in error), nor DEMI_OPC_CONNECT on a dead connection. A
// raw listener holds the request until the connect's passes have polled
// the failing CQ. The socket connects again once the CQs poll again.
TEST(BrokenCompletionQueueTest, AConnectWhoseCqFailsInItsSetupFailsWithEio) {
  sockaddr_in raw_addr = AddrOrDie(NextPort());
  absl::StatusOr<std::unique_ptr<RcPeer>> raw_listener =
      demi::testing::ListenRc(raw_addr);
  ASSERT_TRUE(raw_listener.ok()) << raw_listener.status();
  std::atomic<bool> accept_now{false};
  std::thread acceptor([&] {
    while (!accept_now) absl::SleepFor(absl::Milliseconds(1));
    // The connecting side answers the reply with a reject: an error here.
    demi::testing::AcceptRc(**raw_listener, demi::EncodeConnectData(2, 2, 8192),
                            Scaled(absl::Seconds(20)))
        .status()
        .IgnoreError();
  });
  struct Joiner {
    std::atomic<bool>& go;
    std::thread& thread;
    ~Joiner() {
      go = true;
      thread.join();
    }
  } joiner{accept_now, acceptor};
  int client = -1;
  ASSERT_EQ(demi_socket(&client, AF_INET, SOCK_STREAM, 0), 0);
  {
    ScopedCqFault fault(CqFault::kFail);
    demi_qtoken_t qt = 0;
    ASSERT_EQ(demi_connect(&qt, client, Sa(raw_addr), sizeof(raw_addr)), 0);
    // Resolves, makes the QP, sends the request; polls the failing CQ.
    timespec held = absl::ToTimespec(Scaled(absl::Milliseconds(500)));
    demi_qresult_t qr;
    ASSERT_EQ(demi_wait(&qr, qt, &held), ETIMEDOUT);
    accept_now = true;
    qr = WaitOrFail(qt, absl::Seconds(20));
    EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
    EXPECT_EQ(qr.qr_ret, EIO);
    // A plain socket again: its token is taken, it pushes and pops nothing.
    timespec zero = {0, 0};
    EXPECT_EQ(demi_wait(&qr, qt, &zero), EINVAL);
    EXPECT_EQ(demi_pop(&qt, client), ENOTCONN);
    demi_sgarray_t sga = demi_sgaalloc(8);
    EXPECT_EQ(demi_push(&qt, client, &sga), ENOTCONN);
    EXPECT_EQ(demi_sgafree(&sga), 0);
  }
  sockaddr_in addr = AddrOrDie(NextPort());
  int listener = -1;
  ASSERT_EQ(demi_socket(&listener, AF_INET, SOCK_STREAM, 0), 0);
  ASSERT_EQ(demi_bind(listener, Sa(addr), sizeof(addr)), 0);
  ASSERT_EQ(demi_listen(listener, 4), 0);
  int server = demi::testing::ConnectAndAccept(client, listener, addr);
  ASSERT_GE(server, 0);
  demi_qresult_t qr = WaitOrFail(PushString(client, "x"));
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_PUSH);
  EXPECT_EQ(demi::testing::PopString(server), "x");
  EXPECT_EQ(demi_close(client), 0);
  EXPECT_EQ(demi_close(server), 0);
  EXPECT_EQ(demi_close(listener), 0);
}

// An RC send queue that stops without an error (rxe in Linux 6.1 did, under
// packet loss: a rendezvous announcement and everything behind it never
// went out, and never failed) leaves the keepalive probe without its
// completion: the connection fails (ETIMEDOUT) rather than leave a pop
// waiting for ever on a peer that never got the request. Held completions
// stand in for the stalled queue.
TEST(BrokenCompletionQueueTest, AProbeThatNeverCompletesFailsTheConnection) {
  DemiPair pair;
  ASSERT_TRUE(demi::testing::MakePair(&pair));
  {
    ScopedCqFault fault(CqFault::kHold);
    absl::Time start = demi::rdma::MonotonicNow();
    demi_qtoken_t pop = 0;
    ASSERT_EQ(demi_pop(&pop, pair.client), 0);
    // A probe after one silent interval, the failure kProbeIntervals
    // intervals later (keepalive 3 s): well within 30 s.
    demi_qresult_t qr = WaitOrFail(pop, absl::Seconds(30));
    EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
    EXPECT_EQ(qr.qr_ret, ETIMEDOUT);
    EXPECT_GE(demi::rdma::MonotonicNow() - start, demi::kDefaultKeepalive);
  }
  demi::testing::ClosePair(pair);
}

// Two bound datagram sockets `a` and `b` (`to_b` its address), and a push
// of `sga` from a to b that goes through, so that the route is resolved.
void TwoSocketsAndARoute(const demi_sgarray_t& sga, int* a, int* b,
                         sockaddr_in* to_b) {
  int bound = -1;
  *a = DatagramSocketAt(NextPort(), &bound);
  ASSERT_EQ(bound, 0);
  uint16_t b_port = NextPort();
  *b = DatagramSocketAt(b_port, &bound);
  ASSERT_EQ(bound, 0);
  *to_b = AddrOrDie(b_port);
  demi_qtoken_t qt = 0;
  ASSERT_EQ(demi_pushto(&qt, *a, &sga, Sa(*to_b), sizeof(*to_b)), 0);
  ASSERT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
}

// A UD send always completes, delivered or lost; one whose completion
// never comes fails its push (ETIMEDOUT) after kDatagramSendTimeout
// instead of leaving it pending for ever. 900 bytes: one fragment, too
// long to go inline (an inline push is done when posted).
TEST(BrokenCompletionQueueTest, AUdSendThatNeverCompletesFailsItsPush) {
  demi_sgarray_t sga = demi_sgaalloc(900);
  ASSERT_EQ(sga.sga_numsegs, 1u);
  int a = -1, b = -1;
  sockaddr_in to_b;
  ASSERT_NO_FATAL_FAILURE(TwoSocketsAndARoute(sga, &a, &b, &to_b));
  demi_qtoken_t qt = 0;
  {
    ScopedCqFault fault(CqFault::kHold);
    absl::Time start = demi::rdma::MonotonicNow();
    ASSERT_EQ(demi_pushto(&qt, a, &sga, Sa(to_b), sizeof(to_b)), 0);
    demi_qresult_t qr = WaitOrFail(qt, demi::kDatagramSendTimeout * 3);
    EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
    EXPECT_EQ(qr.qr_ret, ETIMEDOUT);
    EXPECT_GE(demi::rdma::MonotonicNow() - start, demi::kDatagramSendTimeout);
  }
  EXPECT_EQ(demi_sgafree(&sga), 0);
  EXPECT_EQ(demi_close(a), 0);
  EXPECT_EQ(demi_close(b), 0);
}

// An inline datagram is done when posted and its send is unsignalled.
// Once it has waited kDatagramMarkAfter with nothing signalled behind it, a
// mark (a signalled send of no bytes) follows it; if that never completes
// either, the socket fails as above, its later pushes with ETIMEDOUT.
TEST(BrokenCompletionQueueTest, InlineDatagramsThatNeverCompleteFailTheSocket) {
  // A piece of the size the test above had (this process's 12 MiB pool
  // may have no room for another class's slab); 64 bytes go inline.
  demi_sgarray_t sga = demi_sgaalloc(900);
  ASSERT_EQ(sga.sga_numsegs, 1u);
  sga.sga_segs[0].sgaseg_len = 64;
  int a = -1, b = -1;
  sockaddr_in to_b;
  ASSERT_NO_FATAL_FAILURE(TwoSocketsAndARoute(sga, &a, &b, &to_b));
  demi_qtoken_t qt = 0;
  {
    ScopedCqFault fault(CqFault::kHold);
    ASSERT_EQ(demi_pushto(&qt, a, &sga, Sa(to_b), sizeof(to_b)), 0);
    ASSERT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);  // Done when posted.
    // The library runs meanwhile: nothing arrives, nothing completes.
    demi_qtoken_t pop = 0;
    ASSERT_EQ(demi_pop(&pop, a), 0);
    demi_qresult_t qr;
    timespec wait =
        absl::ToTimespec(demi::kDatagramSendTimeout + demi::kDatagramMarkAfter +
                         absl::Seconds(2));
    ASSERT_EQ(demi_wait(&qr, pop, &wait), ETIMEDOUT);
    ASSERT_EQ(demi_pushto(&qt, a, &sga, Sa(to_b), sizeof(to_b)), 0);
    qr = WaitOrFail(qt);
    EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
    EXPECT_EQ(qr.qr_ret, ETIMEDOUT);
  }
  EXPECT_EQ(demi_sgafree(&sga), 0);
  EXPECT_EQ(demi_close(a), 0);
  EXPECT_EQ(demi_close(b), 0);
}

// The watch times a signalled send from when it is out, not from when the
// unsignalled sends ahead of it were first seen: a socket left alone for
// longer than kDatagramSendTimeout after an inline push is not failed in
// the first moments of its next signalled send.
TEST(BrokenCompletionQueueTest, ASignalledSendAfterALongQuietIsTimedAnew) {
  demi_sgarray_t sga = demi_sgaalloc(900);
  ASSERT_EQ(sga.sga_numsegs, 1u);
  int a = -1, b = -1;
  sockaddr_in to_b;
  ASSERT_NO_FATAL_FAILURE(TwoSocketsAndARoute(sga, &a, &b, &to_b));
  demi_sgarray_t small = sga;
  small.sga_segs[0].sgaseg_len = 64;  // Inline, unsignalled.
  demi_qtoken_t qt = 0;
  ASSERT_EQ(demi_pushto(&qt, a, &small, Sa(to_b), sizeof(to_b)), 0);
  ASSERT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
  demi_qtoken_t pop = 0;
  ASSERT_EQ(demi_pop(&pop, a), 0);
  demi_qresult_t qr;
  // Longer than a sleeping wait's timer interval (50 ms), shorter than
  // kDatagramMarkAfter: the watch sees the unsignalled send, no mark yet.
  timespec brief = Ms(60);
  ASSERT_EQ(demi_wait(&qr, pop, &brief), ETIMEDOUT);
  absl::SleepFor(demi::kDatagramSendTimeout + absl::Seconds(1));  // Away.
  {
    // Its completion unseen for a while: the timers run in the meantime.
    ScopedCqFault fault(CqFault::kHold);
    ASSERT_EQ(demi_pushto(&qt, a, &sga, Sa(to_b), sizeof(to_b)), 0);
    timespec held = Ms(300);
    ASSERT_EQ(demi_wait(&qr, pop, &held), ETIMEDOUT);
  }
  qr = WaitOrFail(qt);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_PUSH) << "qr_ret " << qr.qr_ret;
  EXPECT_EQ(demi_sgafree(&sga), 0);
  EXPECT_EQ(demi_close(a), 0);
  EXPECT_EQ(demi_close(b), 0);
}

// A connection whose post fails while a full stage of small pushes waits
// (kDoorbellBatch, to be posted by the next pass) just when a rendezvous
// it has read owes its peer RNDV_DONE: that control message goes behind the
// stage, Stage posts the stage first, the post fails and the connection
// aborts, which empties the RNDV_DONE backlog. The connection must then
// stay dead: nothing more is posted on it (the backlog's loop popped an
// empty deque, and went on staging garbage cookies), the pop keeps the
// message it was delivered, and the staged pushes fail with the post's
// errno. A raw peer grants the credits for the stage and announces the
// rendezvous; READ completions kept back (kDeferReads) hold the delivery
// until the stage is full.
TEST(BrokenSendQueueTest, AFailedStageBeforeARendezvousDoneEndsTheConnection) {
  constexpr absl::Duration kStep = absl::Seconds(30);
  constexpr uint16_t kPeerCredits = 64;  // The stage's and more.
  // Past the announcement that SendWire builds at the upper half's start.
  constexpr size_t kRndvOffset = demi::testing::kRcPeerBufferSize / 2 + 4096;
  constexpr uint32_t kRndvBytes = 16 * 1024;  // Past the eager size.
  const std::string bytes = Pattern(kRndvBytes, 5);
  sockaddr_in addr = AddrOrDie(NextPort());
  int listener = -1;
  ASSERT_EQ(demi_socket(&listener, AF_INET, SOCK_STREAM, 0), 0);
  ASSERT_EQ(demi_bind(listener, Sa(addr), sizeof(addr)), 0);
  ASSERT_EQ(demi_listen(listener, 1), 0);
  std::atomic<bool> announced{false};
  std::atomic<bool> peer_done{false};
  absl::Status peer_status;
  std::thread peer([&] {
    peer_status = [&]() -> absl::Status {
      auto rc = demi::testing::ConnectAsDemi(addr, kPeerCredits, Scaled(kStep));
      if (!rc.ok()) return rc.status();
      RcPeer& raw = **rc;
      std::memcpy(raw.buffer.data() + kRndvOffset, bytes.data(), kRndvBytes);
      DEMI_RETURN_IF_ERROR(demi::testing::SendRndv(
          raw, reinterpret_cast<uintptr_t>(raw.buffer.data() + kRndvOffset),
          raw.mr->rkey, kRndvBytes, /*cookie=*/1, Scaled(kStep)));
      announced = true;
      // It posts nothing more: the post fault would fail its posts too.
      return demi::testing::WaitDisconnected(raw, Scaled(kStep));
    }();
    peer_done = true;
  });
  struct Joiner {
    std::thread& thread;
    ~Joiner() { thread.join(); }
  } joiner{peer};
  demi_qtoken_t qt = 0;
  ASSERT_EQ(demi_accept(&qt, listener), 0);
  demi_qresult_t qr = WaitOrFail(qt);
  ASSERT_EQ(qr.qr_opcode, DEMI_OPC_ACCEPT);
  int qd = qr.qr_value.ares.qd;
  absl::Time deadline = absl::Now() + Scaled(kStep);
  while (!announced && !peer_done && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_TRUE(announced) << peer_status;
  demi_qtoken_t pop = 0;
  std::vector<demi_qtoken_t> pushes;
  {
    ScopedCqFault defer(CqFault::kDeferReads);
    ASSERT_EQ(demi_pop(&pop, qd), 0);
    // The announcement comes in, the READ goes out and completes, unseen.
    while (ScopedCqFault::deferred() == 0 && absl::Now() < deadline) {
      timespec tick = Ms(10);
      ASSERT_EQ(demi_wait(&qr, pop, &tick), ETIMEDOUT);
    }
    ASSERT_EQ(ScopedCqFault::deferred(), 1u);
    // A pass went by since the READ: the first push is posted at once, the
    // kDoorbellBatch behind it are staged.
    for (uint32_t i = 0; i <= demi::kDoorbellBatch; ++i) {
      pushes.push_back(PushString(qd, "staged"));
    }
  }
  {
    ScopedPostSendFault fault(ENOMEM);
    // The READ's completion comes now: the pop is delivered, and RNDV_DONE
    // finds the stage full.
    qr = WaitOrFail(pop);
    EXPECT_EQ(qr.qr_opcode, DEMI_OPC_POP) << "qr_ret " << qr.qr_ret;
    if (qr.qr_opcode == DEMI_OPC_POP) {
      EXPECT_TRUE(SameBytes(SgaBytes(qr.qr_value.sga), bytes));
      EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
    }
    EXPECT_EQ(fault.failed_posts(), 1) << "the dead connection posted again";
  }
  int failed = 0;
  for (demi_qtoken_t push : pushes) {
    qr = WaitOrFail(push);
    if (qr.qr_opcode == DEMI_OPC_FAILED) {
      ++failed;
      EXPECT_EQ(qr.qr_ret, ENOMEM);
    } else {
      EXPECT_EQ(qr.qr_opcode, DEMI_OPC_PUSH);
    }
  }
  EXPECT_EQ(failed, static_cast<int>(demi::kDoorbellBatch));
  EXPECT_EQ(demi_close(qd), 0);
  EXPECT_EQ(demi_close(listener), 0);
}

}  // namespace
