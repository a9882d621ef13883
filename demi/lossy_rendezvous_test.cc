// Rendezvous pushes both ways between two hosts whose link loses packets
// (run by lossy_rendezvous_test.sh, which puts netem on the link): the
// case of RELIABILITY.md problem 1. On rxe (Linux 6.1) a memory-window
// bind posted behind an unacknowledged request wedges the send queue when
// that request is retried; the library binds only on an empty send queue
// there (ConnectionEnv::binds_after_drain). Without that, a few of these
// connections stall a minute (the keepalive then fails them with
// ETIMEDOUT); with it, every push and pop must complete, with the right
// opcode and bytes, within kBound.
//
// Host 1 keeps kConnections connections to host 0 and streams messages on
// each for DEMI_LOSSY_SECONDS (default 60); host 0 streams back on each
// until host 1 says END. Sizes cycle through rendezvous (windows bound)
// and small ones, kWindow pushes in flight per connection and direction,
// so that binds follow unacknowledged requests. A connection that fails
// or stalls is counted, closed and (host 1, while streaming) replaced, so
// that a run shows how many stalls there were; the test wants none.
#include <demi/libos.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "demi/limits.h"
#include "gtest/gtest.h"
#include "testing/demi_helpers.h"
#include "testing/rdma_env.h"

namespace {

using demi::testing::Pattern;
using demi::testing::Scaled;
using demi::testing::SgaBytes;

constexpr uint16_t kPort = 18700;
constexpr int kConnections = 4;
constexpr size_t kWindow = 4;
// Far more than a message takes under 3% loss, far less than the test: a
// stalled queue is failed by the keepalive after 4 to 9 s.
constexpr absl::Duration kBound = absl::Seconds(20);
// Two rendezvous (one of many READs, one just above the eager size) in
// every four messages; the small ones go inline between them.
constexpr size_t kSizes[] = {65536, 64, demi::kEagerBufferSize + 1000, 1};
static_assert(demi::kEagerBufferSize + 1000 > demi::kEagerBufferSize);
const std::string kEnd = "END";  // No message has its size.

size_t SizeOf(uint64_t i) { return kSizes[i % std::size(kSizes)]; }
uint32_t SeedOf(int host, uint64_t i) {
  return static_cast<uint32_t>(i * 2 + host);
}

int DurationSeconds() {
  const char* text = std::getenv("DEMI_LOSSY_SECONDS");
  return text != nullptr && std::atoi(text) > 0 ? std::atoi(text) : 60;
}

struct Counts {
  int connections = 0;
  int finished = 0;  // Ended with END both ways and closed.
  int failed = 0;    // An operation failed.
  int stalled = 0;   // An operation took longer than kBound.
  uint64_t pushes = 0;
  uint64_t rendezvous = 0;  // Of the pushes.
  uint64_t pops = 0;
  int corrupt = 0;
};

// One connection's two streams. Not copyable: tokens point at it.
struct Stream {
  int qd = -1;
  uint64_t pushed = 0;  // Messages pushed (END excluded).
  uint64_t popped = 0;  // Messages popped (END excluded).
  size_t pushes_out = 0;
  bool pop_out = false;
  bool end_pushed = false;
  bool end_popped = false;
  bool dead = false;
};

struct Pending {
  Stream* stream;
  bool is_push;
  absl::Time since;
};

class Peer {
 public:
  explicit Peer(int host) : host_(host) {}

  // Runs until the streaming time is over and every stream has ended (or
  // failed); false if `deadline` passed first. Host 1 streams until
  // `stop_streaming`; host 0 until each stream's END, and waits for
  // kConnections streams to end, not before `stop_streaming`.
  bool Run(absl::Time stop_streaming, absl::Time deadline);
  void AddStream(int qd);
  void Listen(int listener);
  const Counts& counts() const { return counts_; }
  int live() const {
    int n = 0;
    for (const auto& s : streams_) n += s->dead ? 0 : 1;
    return n;
  }

 private:
  void Feed(Stream& s);
  void OnResult(demi_qresult_t& qr, const Pending& p);
  // Counts `s` as failed (or stalled) and closes it.
  void Fail(Stream& s, const char* what, int err, bool stalled = false);
  bool Streaming() const { return absl::Now() < stop_streaming_; }
  bool Finished() const {
    if (Streaming() || live() > 0) return false;
    return host_ == 1 ||
           counts_.finished + counts_.failed + counts_.stalled >= kConnections;
  }

  const int host_;
  absl::Time stop_streaming_;
  int listener_ = -1;
  demi_qtoken_t accept_qt_ = 0;
  std::vector<std::unique_ptr<Stream>> streams_;
  std::map<demi_qtoken_t, Pending> pending_;
  Counts counts_;
};

void Peer::AddStream(int qd) {
  streams_.push_back(std::make_unique<Stream>());
  streams_.back()->qd = qd;
  ++counts_.connections;
  Feed(*streams_.back());
}

void Peer::Listen(int listener) {
  listener_ = listener;
  ASSERT_EQ(demi_accept(&accept_qt_, listener_), 0);
}

void Peer::Fail(Stream& s, const char* what, int err, bool stalled) {
  if (s.dead) return;
  ++(stalled ? counts_.stalled : counts_.failed);
  std::printf(
      "lossy_rendezvous: host %d qd %d: %s (%d) after %llu pushed, "
      "%llu popped\n",
      host_, s.qd, what, err, static_cast<unsigned long long>(s.pushed),
      static_cast<unsigned long long>(s.popped));
  s.dead = true;
  // Its tokens are forgotten: whatever they end with no longer counts.
  for (auto it = pending_.begin(); it != pending_.end();) {
    it = it->second.stream == &s ? pending_.erase(it) : std::next(it);
  }
  demi_close(s.qd);
}

// Keeps kWindow pushes and a pop outstanding; END once streaming is over
// (host 1) or the peer's END came (host 0).
void Peer::Feed(Stream& s) {
  absl::Time now = absl::Now();
  while (!s.dead && !s.end_pushed && s.pushes_out < kWindow) {
    bool more = host_ == 1 ? Streaming() : !s.end_popped;
    std::string bytes =
        more ? Pattern(SizeOf(s.pushed), SeedOf(host_, s.pushed)) : kEnd;
    demi_sgarray_t sga = demi_sgaalloc(bytes.size());
    ASSERT_EQ(sga.sga_numsegs, 1u);
    std::memcpy(sga.sga_segs[0].sgaseg_buf, bytes.data(), bytes.size());
    demi_qtoken_t qt = 0;
    int err = demi_push(&qt, s.qd, &sga);
    demi_sgafree(&sga);
    if (err != 0) {
      Fail(s, "demi_push", err);
      return;
    }
    pending_[qt] = {&s, true, now};
    ++s.pushes_out;
    if (more) {
      counts_.rendezvous += bytes.size() > demi::kEagerBufferSize ? 1 : 0;
      ++s.pushed;
      ++counts_.pushes;
    } else {
      s.end_pushed = true;
    }
  }
  if (!s.dead && !s.pop_out && !s.end_popped) {
    demi_qtoken_t qt = 0;
    if (int err = demi_pop(&qt, s.qd); err != 0) {
      Fail(s, "demi_pop", err);
      return;
    }
    pending_[qt] = {&s, false, now};
    s.pop_out = true;
  }
  if (!s.dead && s.end_pushed && s.pushes_out == 0 && s.end_popped) {
    s.dead = true;
    ++counts_.finished;
    EXPECT_EQ(demi_close(s.qd), 0);
  }
}

void Peer::OnResult(demi_qresult_t& qr, const Pending& p) {
  Stream& s = *p.stream;
  if (p.is_push) {
    --s.pushes_out;
    if (qr.qr_opcode != DEMI_OPC_PUSH) {
      Fail(s, "push failed", qr.qr_ret);
      return;
    }
  } else {
    s.pop_out = false;
    if (qr.qr_opcode != DEMI_OPC_POP) {
      Fail(s, "pop failed", qr.qr_ret);
      return;
    }
    std::string bytes = SgaBytes(qr.qr_value.sga);
    demi_sgafree(&qr.qr_value.sga);
    if (bytes == kEnd) {
      s.end_popped = true;
    } else if (bytes !=
               Pattern(SizeOf(s.popped), SeedOf(1 - host_, s.popped))) {
      ++counts_.corrupt;
      ADD_FAILURE() << "host " << host_ << " qd " << s.qd << ": message "
                    << s.popped << " has " << bytes.size()
                    << " bytes, not the ones sent";
      Fail(s, "wrong bytes", 0);
      return;
    } else {
      ++s.popped;
      ++counts_.pops;
    }
  }
  Feed(s);
}

bool Peer::Run(absl::Time stop_streaming, absl::Time deadline) {
  stop_streaming_ = stop_streaming;
  std::vector<demi_qtoken_t> qts;
  while (true) {
    // A failed connection is replaced while there is time to stream.
    while (host_ == 1 && live() < kConnections && Streaming()) {
      int qd = demi::testing::ConnectToServerOrFail(kPort);
      if (qd < 0) return false;
      AddStream(qd);
    }
    if (Finished()) return true;
    absl::Time now = absl::Now();
    if (now >= deadline) return false;
    for (auto& entry : pending_) {
      if (now - entry.second.since > Scaled(kBound)) {
        Fail(*entry.second.stream, "no completion within the bound", 0,
             /*stalled=*/true);
        break;  // Fail changed pending_.
      }
    }
    qts.clear();
    if (accept_qt_ != 0) qts.push_back(accept_qt_);
    for (const auto& entry : pending_) qts.push_back(entry.first);
    demi_qresult_t qr;
    int offset = -1;
    timespec second = absl::ToTimespec(absl::Seconds(1));
    int err = demi_wait_any(&qr, &offset, qts.data(),
                            static_cast<int>(qts.size()), &second);
    if (err == ETIMEDOUT) continue;
    if (err != 0) {
      ADD_FAILURE() << "demi_wait_any: " << err;
      return false;
    }
    if (qts[offset] == accept_qt_) {
      accept_qt_ = 0;
      EXPECT_EQ(qr.qr_opcode, DEMI_OPC_ACCEPT) << qr.qr_ret;
      if (qr.qr_opcode == DEMI_OPC_ACCEPT) AddStream(qr.qr_value.ares.qd);
      EXPECT_EQ(demi_accept(&accept_qt_, listener_), 0);
      continue;
    }
    auto it = pending_.find(qts[offset]);
    Pending p = it->second;
    pending_.erase(it);
    OnResult(qr, p);
  }
}

TEST(LossyRendezvousTest, EveryPushAndPopCompletesUnderLoss) {
  ASSERT_EQ(demi::testing::TestHosts(), 2) << "run with two hosts";
  ASSERT_EQ(demi_init(nullptr), 0);
  int host = demi::testing::TestHost();
  absl::Duration streaming = absl::Seconds(DurationSeconds());
  Peer peer(host);
  int listener = -1;
  absl::Time start = absl::Now();
  if (host == 0) {
    absl::StatusOr<sockaddr_in> addr = demi::testing::TestAddr(kPort);
    ASSERT_TRUE(addr.ok());
    ASSERT_EQ(demi_socket(&listener, AF_INET, SOCK_STREAM, 0), 0);
    ASSERT_EQ(demi_bind(listener, demi::testing::Sa(*addr), sizeof(*addr)), 0);
    ASSERT_EQ(demi_listen(listener, kConnections), 0);
    peer.Listen(listener);
  }
  // Host 1's VM may boot later, and the ENDs take a while under loss.
  bool done = peer.Run(start + streaming,
                       start + streaming + Scaled(absl::Seconds(240)));
  const Counts& c = peer.counts();
  std::printf(
      "lossy_rendezvous: host %d, %.0f s: %d connections, %d finished, "
      "%d failed, %d stalled over %.0f s; %llu pushes (%llu rendezvous), "
      "%llu pops\n",
      host, absl::ToDoubleSeconds(absl::Now() - start), c.connections,
      c.finished, c.failed, c.stalled, absl::ToDoubleSeconds(Scaled(kBound)),
      static_cast<unsigned long long>(c.pushes),
      static_cast<unsigned long long>(c.rendezvous),
      static_cast<unsigned long long>(c.pops));
  EXPECT_TRUE(done) << "the run did not end in time";
  EXPECT_EQ(c.failed, 0);
  EXPECT_EQ(c.stalled, 0);
  EXPECT_EQ(c.corrupt, 0);
  EXPECT_EQ(c.finished, kConnections);
  EXPECT_GT(c.rendezvous, 0u);
  if (listener >= 0) {
    EXPECT_EQ(demi_close(listener), 0);
  }
}

}  // namespace
