// Scale: one server process holds many connections from one client process
// in bounded registered memory, and connect/echo/close cycles leave it with
// exactly the QPs and memory regions it had before.
//
// Short forms run in `bazel test`; the full forms by hand:
//   DEMI_SCALE_CONNECTIONS=4096 DEMI_CHURN_CYCLES=10000
//   testing/run_on_rdma.sh -- bazel-bin/demi/scale_test_bin
#include <demi/libos.h>
#include <poll.h>
#include <rdma/rdma_cma.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "demi/connection.h"
#include "demi/credits.h"
#include "demi/limits.h"
#include "demi/wire.h"
#include "gtest/gtest.h"
#include "testing/child_process.h"
#include "testing/demi_helpers.h"
#include "testing/process_resources.h"
#include "testing/rdma_env.h"

namespace {

using demi::testing::AddrOrDie;
using demi::testing::ChildListen;
using demi::testing::ChildPush;
using demi::testing::ChildWait;
using demi::testing::ConnectWithRetry;
using demi::testing::EnvInt;
using demi::testing::NextPort;
using demi::testing::Progress;
using demi::testing::Reap;
using demi::testing::Resources;
using demi::testing::ResourcesOf;
using demi::testing::Scaled;
using demi::testing::SettledResources;
using demi::testing::Spawn;

// The bound for 10,000 connections (issue 27; 1,024 in CI).
constexpr uint64_t kMaxRegisteredBytes = uint64_t{64} << 20;
constexpr int kMaxBoundedConnections = 10000;
constexpr size_t kEchoSize = 64;

// An echo server for `total` connections: pops on each, pushes every
// message back, closes a connection at its EOF. `on_idle(accepted)` runs
// when all accepted connections so far are closed, `on_echoes(echoes)`
// after each batch of results; both see the server between events.
struct EchoServer {
  int total = 0;
  std::function<void(int accepted)> on_idle = [](int) {};
  std::function<void(int echoes)> on_echoes = [](int) {};
  std::function<void()> on_all_accepted = [] {};

  int Run(uint16_t port) {
    CHILD_CHECK(demi_init(nullptr) == 0);
    int listener = ChildListen(port, 64);
    demi_qtoken_t qt = 0;
    CHILD_CHECK(demi_accept(&qt, listener) == 0);
    int accepted = 0, open = 0, echoes = 0;
    // One at a time: demi_wait_next_n waits until it has all it asked for.
    std::vector<demi_qresult_t> results(1);
    while (accepted < total || open > 0) {
      int n = 0;
      timespec wait = absl::ToTimespec(Scaled(absl::Seconds(120)));
      int err = demi_wait_next_n(results.data(),
                                 static_cast<int>(results.size()), &n, &wait);
      CHILD_CHECK(err == 0 || (err == ETIMEDOUT && n > 0));
      for (int i = 0; i < n; ++i) {
        const demi_qresult_t& qr = results[i];
        if (qr.qr_opcode == DEMI_OPC_FAILED) {
          std::fprintf(stderr, "server: qd %d failed: %s\n", qr.qr_qd,
                       std::strerror(qr.qr_ret));
        }
        CHILD_CHECK(qr.qr_opcode != DEMI_OPC_FAILED);
        if (qr.qr_opcode == DEMI_OPC_ACCEPT) {
          ++accepted;
          ++open;
          CHILD_CHECK(demi_pop(&qt, qr.qr_value.ares.qd) == 0);
          if (accepted < total) CHILD_CHECK(demi_accept(&qt, listener) == 0);
          if (accepted == total) on_all_accepted();
        } else if (qr.qr_opcode == DEMI_OPC_POP) {
          demi_sgarray_t sga = qr.qr_value.sga;
          if (sga.sga_segs[0].sgaseg_len == 0) {
            CHILD_CHECK(demi_close(qr.qr_qd) == 0);
            --open;
            if (open == 0) on_idle(accepted);
            continue;
          }
          CHILD_CHECK(demi_push(&qt, qr.qr_qd, &sga) == 0);
          CHILD_CHECK(demi_sgafree(&sga) == 0);
          CHILD_CHECK(demi_pop(&qt, qr.qr_qd) == 0);
          ++echoes;
        }
      }
      on_echoes(echoes);
    }
    CHILD_CHECK(demi_close(listener) == 0);
    return 0;
  }
};

// One message of `kEchoSize` bytes naming connection `c` and `round`.
std::string EchoMessage(int c, int round) {
  std::string text = absl::StrFormat("connection %d round %d ", c, round);
  text.resize(kEchoSize, '.');
  return text;
}

void ExpectEcho(int qd, const std::string& text) {
  demi_qtoken_t qt = 0;
  CHILD_CHECK(demi_pop(&qt, qd) == 0);
  demi_qresult_t qr = ChildWait(qt, absl::Seconds(60));
  CHILD_CHECK(qr.qr_opcode == DEMI_OPC_POP);
  const demi_sgaseg_t& seg = qr.qr_value.sga.sga_segs[0];
  CHILD_CHECK(std::string(static_cast<char*>(seg.sgaseg_buf), seg.sgaseg_len) ==
              text);
  CHILD_CHECK(demi_sgafree(&qr.qr_value.sga) == 0);
}

// Connects a new socket to `port`: 0 (and the queue in `qd`) or the
// connect's errno.
int TryConnect(uint16_t port, int* qd) {
  sockaddr_in addr = AddrOrDie(port);
  CHILD_CHECK(demi_socket(qd, AF_INET, SOCK_STREAM, 0) == 0);
  demi_qtoken_t qt = 0;
  CHILD_CHECK(demi_connect(&qt, *qd, reinterpret_cast<sockaddr*>(&addr),
                           sizeof(addr)) == 0);
  demi_qresult_t qr = ChildWait(qt, absl::Seconds(60));
  return qr.qr_opcode == DEMI_OPC_CONNECT ? 0 : static_cast<int>(qr.qr_ret);
}

int Connect(uint16_t port) {
  int qd = -1;
  int err = TryConnect(port, &qd);
  if (err != 0) std::fprintf(stderr, "connect: %s\n", std::strerror(err));
  CHILD_CHECK(err == 0);
  return qd;
}

// A one-byte message between two children.
struct Signal {
  int fds[2];
  Signal() { CHILD_CHECK(pipe(fds) == 0); }
  ~Signal() {
    close(fds[0]);
    close(fds[1]);
  }
  void Raise() { CHILD_CHECK(write(fds[1], "s", 1) == 1); }
  // Waits for the signal, driving the progress engine meanwhile (unless
  // this process has no libOS yet).
  void Await(bool drive = true) {
    pollfd ready = {fds[0], POLLIN, 0};
    while (poll(&ready, 1, drive ? 0 : -1) == 0) {
      Progress(absl::Milliseconds(50));
    }
    char byte;
    CHILD_CHECK(read(fds[0], &byte, 1) == 1);
  }
};

TEST(ScaleTest, OneServerHoldsAThousandConnectionsInBoundedMemory) {
  const int connections = EnvInt("DEMI_SCALE_CONNECTIONS", 1024);
  uint16_t port = NextPort();
  Signal measured;
  pid_t server = Spawn([&] {
    EchoServer echo;
    echo.total = connections;
    bool done = false;
    echo.on_echoes = [&](int echoes) {
      if (done || echoes < 2 * connections) return;
      done = true;
      Resources r = SettledResources();
      std::printf("scale: server holds %d connections: %s\n", connections,
                  r.ToString().c_str());
      std::fflush(stdout);
      CHILD_CHECK(r.qps >= connections);
      if (connections <= kMaxBoundedConnections) {
        CHILD_CHECK(r.mr_bytes <= kMaxRegisteredBytes);
      }
      measured.Raise();
    };
    return echo.Run(port);
  });
  pid_t client = Spawn([&] {
    CHILD_CHECK(demi_init(nullptr) == 0);
    std::vector<int> qds;
    qds.push_back(ConnectWithRetry(port));
    absl::Time start = absl::Now();
    while (static_cast<int>(qds.size()) < connections) {
      qds.push_back(Connect(port));
      if (qds.size() % 1000 == 0) {
        // The full form by hand takes minutes: show the rate as it goes.
        std::printf("scale: %zu connected after %.1f s\n", qds.size(),
                    absl::ToDoubleSeconds(absl::Now() - start));
        std::fflush(stdout);
      }
    }
    double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    std::printf("scale: %d sequential connects in %.2f s: %.0f per second\n",
                connections - 1, seconds, (connections - 1) / seconds);
    for (int round = 0; round < 2; ++round) {
      std::vector<demi_qtoken_t> pushes;
      for (size_t c = 0; c < qds.size(); ++c) {
        pushes.push_back(ChildPush(qds[c], EchoMessage(c, round)));
      }
      for (size_t c = 0; c < qds.size(); ++c) {
        ExpectEcho(qds[c], EchoMessage(c, round));
      }
      for (demi_qtoken_t qt : pushes) {
        CHILD_CHECK(ChildWait(qt, absl::Seconds(60)).qr_opcode ==
                    DEMI_OPC_PUSH);
      }
    }
    Resources r = ResourcesOf(getpid());
    std::printf("scale: client holds %d connections: %s\n", connections,
                r.ToString().c_str());
    std::fflush(stdout);
    measured.Await();
    for (int qd : qds) CHILD_CHECK(demi_close(qd) == 0);
    return 0;
  });
  // Connects slow down as QPs add up under emulation: 4,096 took 149 s on
  // a loaded host, 10,000 take ~10 minutes.
  EXPECT_EQ(Reap(client,
                 Scaled(absl::Seconds(900) + absl::Seconds(0.3) * connections)),
            0);
  EXPECT_EQ(Reap(server, Scaled(absl::Seconds(120))), 0);
}

// Connections beyond a device's first kFullBufferConnections take their
// messages into kSmallBufferSize buffers (here beyond the first 16): an
// idle one costs 3 KiB, and a message larger than 1 KiB to it goes by
// rendezvous. Every size arrives intact both ways, and the server's
// registered memory is what small buffers cost: with 8 KiB ones, the
// receive buffers alone would be 26 MiB.
TEST(ScaleTest, ConnectionsBeyondTheFullBufferOnesCostAFewKib) {
  // Enough that their send requests need more than one CQ of the kCqDepth
  // asked for, even where the device doubles that (mlx5 rounds it up to
  // 65,535): on rxe three CQs.
  constexpr int kConnections = 2 * demi::kCqDepth / demi::kSendDepth + 64;
  constexpr uint64_t kMaxBytes = uint64_t{10} << 20;
  const size_t sizes[] = {64, 1000, 1008, 1009, 4096, 8192, 20000};
  uint16_t port = NextPort();
  Signal counted;
  pid_t server = Spawn([&] {
    CHILD_CHECK(setenv("DEMI_FULL_BUFFER_CONNECTIONS", "16", 1) == 0);
    EchoServer echo;
    echo.total = kConnections;
    Resources held;
    echo.on_all_accepted = [&] {
      held = SettledResources();
      std::printf(
          "scale: server holds %d connections, 16 with 8 KiB "
          "buffers: %s\n",
          kConnections, held.ToString().c_str());
      std::fflush(stdout);
      CHILD_CHECK(held.qps >= kConnections);
      CHILD_CHECK(held.mr_bytes <= kMaxBytes);
      counted.Raise();
    };
    echo.on_idle = [&](int accepted) {
      if (accepted < kConnections) return;
      // The send CQs the burst needed beyond the first go once idle (each
      // is 4 MiB of resident memory on soft-RoCE).
      Progress(demi::kIdleCqTime + absl::Seconds(2));
      Resources after = SettledResources();
      std::printf("scale: all closed: %s\n", after.ToString().c_str());
      std::fflush(stdout);
      // Of the three send CQs on rxe two go (5 -> 3 CQs with the receive
      // groups').
      CHILD_CHECK(after.cqs < held.cqs);
    };
    return echo.Run(port);
  });
  pid_t client = Spawn([&] {
    CHILD_CHECK(demi_init(nullptr) == 0);
    std::vector<int> qds;
    qds.push_back(ConnectWithRetry(port));
    while (static_cast<int>(qds.size()) < kConnections) {
      qds.push_back(Connect(port));
    }
    counted.Await();
    for (int round = 0; round < 2; ++round) {
      std::vector<demi_qtoken_t> pushes;
      std::vector<std::string> texts;
      for (size_t c = 0; c < qds.size(); ++c) {
        std::string text = EchoMessage(static_cast<int>(c), round);
        text.resize(sizes[(c + round) % std::size(sizes)], '.');
        pushes.push_back(ChildPush(qds[c], text));
        texts.push_back(std::move(text));
      }
      for (size_t c = 0; c < qds.size(); ++c) ExpectEcho(qds[c], texts[c]);
      for (demi_qtoken_t qt : pushes) {
        CHILD_CHECK(ChildWait(qt, absl::Seconds(60)).qr_opcode ==
                    DEMI_OPC_PUSH);
      }
    }
    for (int qd : qds) CHILD_CHECK(demi_close(qd) == 0);
    return 0;
  });
  EXPECT_EQ(Reap(client, Scaled(absl::Seconds(900))), 0);
  EXPECT_EQ(Reap(server, Scaled(absl::Seconds(120))), 0);
}

TEST(ScaleTest, ConnectEchoCloseCyclesLeaveTheServerAsItWas) {
  const int cycles = EnvInt("DEMI_CHURN_CYCLES", 500);
  constexpr int kWarmup = 50;
  uint16_t port = NextPort();
  Signal measured;
  pid_t server = Spawn([&] {
    EchoServer echo;
    echo.total = kWarmup + cycles;
    Resources before;
    echo.on_idle = [&](int accepted) {
      if (accepted == kWarmup) {
        before = SettledResources();
        std::printf("churn: after %d cycles: %s\n", kWarmup,
                    before.ToString().c_str());
        std::fflush(stdout);
        measured.Raise();
      } else if (accepted == kWarmup + cycles) {
        Resources after = SettledResources();
        std::printf("churn: after %d more cycles: %s\n", cycles,
                    after.ToString().c_str());
        std::fflush(stdout);
        CHILD_CHECK(after.qps == before.qps);
        CHILD_CHECK(after.mrs == before.mrs);
        CHILD_CHECK(after.mr_bytes == before.mr_bytes);
        // Tables may settle a little differently; a leak per cycle would
        // be cycles times its size.
        CHILD_CHECK(after.heap <= before.heap + 64 * 1024);
      }
    };
    return echo.Run(port);
  });
  pid_t client = Spawn([&] {
    CHILD_CHECK(demi_init(nullptr) == 0);
    absl::Time start;
    for (int c = 0; c < kWarmup + cycles; ++c) {
      if (c == kWarmup) {
        // The server measures with every warm-up connection gone.
        measured.Await();
        start = absl::Now();
      }
      int qd = c == 0 ? ConnectWithRetry(port) : Connect(port);
      std::string text = EchoMessage(c, 0);
      demi_qtoken_t push = ChildPush(qd, text);
      ExpectEcho(qd, text);
      CHILD_CHECK(ChildWait(push, absl::Seconds(60)).qr_opcode ==
                  DEMI_OPC_PUSH);
      CHILD_CHECK(demi_close(qd) == 0);
    }
    double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    std::printf(
        "churn: %d connect/echo/close cycles in %.2f s: %.0f per "
        "second\n",
        cycles, seconds, cycles / seconds);
    return 0;
  });
  EXPECT_EQ(Reap(client, Scaled(absl::Seconds(1800))), 0);
  EXPECT_EQ(Reap(server, Scaled(absl::Seconds(120))), 0);
}

// Admission: connections beyond the listen backlog are refused until the
// application accepts, and handshakes a client abandons hold no slot.
TEST(ScaleTest, BacklogIsHonoured) {
  uint16_t port = NextPort();
  Signal listening, connected, accepted;
  pid_t server = Spawn([&] {
    CHILD_CHECK(demi_init(nullptr) == 0);
    int listener = ChildListen(port, 2);
    listening.Raise();
    connected.Await();  // Two established, a third refused.
    demi_qtoken_t qt = 0;
    CHILD_CHECK(demi_accept(&qt, listener) == 0);
    CHILD_CHECK(ChildWait(qt, absl::Seconds(10)).qr_opcode == DEMI_OPC_ACCEPT);
    accepted.Raise();
    Progress(Scaled(absl::Seconds(3)));  // The fourth comes in.
    return 0;
  });
  pid_t client = Spawn([&] {
    CHILD_CHECK(demi_init(nullptr) == 0);
    listening.Await();
    auto connect = [port] {
      int qd = -1;
      return TryConnect(port, &qd);
    };
    CHILD_CHECK(connect() == 0);
    CHILD_CHECK(connect() == 0);
    CHILD_CHECK(connect() == ECONNREFUSED);
    connected.Raise();
    accepted.Await();
    CHILD_CHECK(connect() == 0);
    return 0;
  });
  EXPECT_EQ(Reap(client, Scaled(absl::Seconds(120))), 0);
  EXPECT_EQ(Reap(server, Scaled(absl::Seconds(120))), 0);
}

// Sends a connection request with valid connect data, then exits at once:
// the kernel tears the half-made connection down (or never finishes it).
int AbandonHandshake(uint16_t port) {
  rdma_event_channel* channel = rdma_create_event_channel();
  CHILD_CHECK(channel != nullptr);
  rdma_cm_id* id = nullptr;
  CHILD_CHECK(rdma_create_id(channel, &id, nullptr, RDMA_PS_TCP) == 0);
  sockaddr_in addr = AddrOrDie(port);
  CHILD_CHECK(rdma_resolve_addr(id, nullptr, reinterpret_cast<sockaddr*>(&addr),
                                2000) == 0);
  for (rdma_cm_event_type want :
       {RDMA_CM_EVENT_ADDR_RESOLVED, RDMA_CM_EVENT_ROUTE_RESOLVED}) {
    rdma_cm_event* event = nullptr;
    CHILD_CHECK(rdma_get_cm_event(channel, &event) == 0);
    CHILD_CHECK(event->event == want);
    rdma_ack_cm_event(event);
    if (want == RDMA_CM_EVENT_ADDR_RESOLVED) {
      CHILD_CHECK(rdma_resolve_route(id, 2000) == 0);
    }
  }
  ibv_qp_init_attr attr = {};
  attr.qp_type = IBV_QPT_RC;
  attr.cap.max_send_wr = attr.cap.max_recv_wr = 1;
  attr.cap.max_send_sge = attr.cap.max_recv_sge = 1;
  CHILD_CHECK(rdma_create_qp(id, nullptr, &attr) == 0);
  std::string data = demi::EncodeConnectData(
      demi::kBaseCredits, demi::kMaxConnCredits, demi::kEagerBufferSize);
  rdma_conn_param param = {};
  param.private_data = data.data();
  param.private_data_len = static_cast<uint8_t>(data.size());
  param.retry_count = 6;
  param.rnr_retry_count = 6;
  CHILD_CHECK(rdma_connect(id, &param) == 0);
  std::_Exit(0);
}

TEST(ScaleTest, AbandonedHandshakesHoldNoBacklogSlotAndNoQp) {
  constexpr int kAbandoned = 20;
  uint16_t port = NextPort();
  Signal listening, done;
  pid_t server = Spawn([&] {
    CHILD_CHECK(demi_init(nullptr) == 0);
    // One slot: a handshake that held it for good would refuse the rest.
    int listener = ChildListen(port, 1);
    listening.Raise();
    // Accept and serve whatever comes: connections whose client died fail
    // their pop and are closed, as an application would.
    demi_qtoken_t qt = 0;
    CHILD_CHECK(demi_accept(&qt, listener) == 0);
    int echoed = 0, dead = 0;
    while (echoed == 0) {
      demi_qresult_t qr;
      int n = 0;
      timespec wait = absl::ToTimespec(Scaled(absl::Seconds(120)));
      CHILD_CHECK(demi_wait_next_n(&qr, 1, &n, &wait) == 0);
      if (qr.qr_opcode == DEMI_OPC_ACCEPT) {
        CHILD_CHECK(demi_pop(&qt, qr.qr_value.ares.qd) == 0);
        CHILD_CHECK(demi_accept(&qt, listener) == 0);
      } else if (qr.qr_opcode == DEMI_OPC_FAILED ||
                 (qr.qr_opcode == DEMI_OPC_POP &&
                  qr.qr_value.sga.sga_segs[0].sgaseg_len == 0)) {
        CHILD_CHECK(demi_close(qr.qr_qd) == 0);
        ++dead;
      } else if (qr.qr_opcode == DEMI_OPC_POP) {
        CHILD_CHECK(demi_push(&qt, qr.qr_qd, &qr.qr_value.sga) == 0);
        CHILD_CHECK(demi_sgafree(&qr.qr_value.sga) == 0);
        ++echoed;
      }
    }
    done.Await();  // The client has its echo and has closed.
    Resources r = SettledResources();
    std::printf(
        "admission: %d abandoned handshakes seen as accepted and "
        "dead: %d; then %s\n",
        kAbandoned, dead, r.ToString().c_str());
    std::fflush(stdout);
    // Only the live connection may remain, and it is closing.
    CHILD_CHECK(r.qps <= 1);
    return 0;
  });
  pid_t client = Spawn([&] {
    listening.Await(/*drive=*/false);
    for (int i = 0; i < kAbandoned; ++i) {
      pid_t child = Spawn([port] { return AbandonHandshake(port); });
      CHILD_CHECK(Reap(child, Scaled(absl::Seconds(20))) == 0);
    }
    CHILD_CHECK(demi_init(nullptr) == 0);
    int qd = ConnectWithRetry(port);
    std::string text = EchoMessage(0, 0);
    demi_qtoken_t push = ChildPush(qd, text);
    ExpectEcho(qd, text);
    CHILD_CHECK(ChildWait(push, absl::Seconds(60)).qr_opcode == DEMI_OPC_PUSH);
    CHILD_CHECK(demi_close(qd) == 0);
    done.Raise();
    Progress(absl::Seconds(1));
    return 0;
  });
  EXPECT_EQ(Reap(client, Scaled(absl::Seconds(300))), 0);
  EXPECT_EQ(Reap(server, Scaled(absl::Seconds(300))), 0);
}

}  // namespace
