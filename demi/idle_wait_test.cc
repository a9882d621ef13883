// Waits that sleep when idle, on an RDMA device: an idle wait costs a few
// percent of a core (getrusage) whatever it waits on, and whatever wakes it
// (a message, a push's completion, its own timeout) does so promptly. The
// library runs with its default spin budget here (DEMI_SPIN_US unset), so
// each wait spins for it and then sleeps on the completion channels.
//
// The processes are forked before any demi_init (testing/child_process.h):
// a peer must act while the waiter sleeps, and the API is one thread's.
#include <demi/libos.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "testing/child_process.h"
#include "testing/demi_helpers.h"
#include "testing/rdma_env.h"

namespace {

using demi::testing::ChildListen;
using demi::testing::ChildPop;
using demi::testing::ChildPush;
using demi::testing::ChildWait;
using demi::testing::ConnectWithRetry;
using demi::testing::NextPort;
using demi::testing::Reap;
using demi::testing::Scaled;
using demi::testing::Spawn;

constexpr absl::Duration kIdle = absl::Seconds(5);
// At most this share of a core while idle.
constexpr double kMaxIdleCpu = 0.05;

// CPU time this process has used (user and system).
absl::Duration CpuTime() {
  rusage usage = {};
  getrusage(RUSAGE_SELF, &usage);
  return absl::DurationFromTimeval(usage.ru_utime) +
         absl::DurationFromTimeval(usage.ru_stime);
}

// Runs `wait` (which should sit idle for kIdle) and checks the share of a
// core it used.
void CheckIdleCpu(const char* what, const std::function<int()>& wait) {
  absl::Duration cpu = CpuTime();
  absl::Time start = absl::Now();
  int err = wait();
  double share = absl::FDivDuration(CpuTime() - cpu, absl::Now() - start);
  std::fprintf(stderr, "%s: %.1f%% of a core over %s\n", what, share * 100,
               absl::FormatDuration(absl::Now() - start).c_str());
  CHILD_CHECK(err == ETIMEDOUT);
  CHILD_CHECK(share <= kMaxIdleCpu);
}

int Accept(int listener) {
  demi_qtoken_t qt = 0;
  CHILD_CHECK(demi_accept(&qt, listener) == 0);
  demi_qresult_t qr = ChildWait(qt, absl::Seconds(60));
  CHILD_CHECK(qr.qr_opcode == DEMI_OPC_ACCEPT);
  return qr.qr_value.ares.qd;
}

demi_qtoken_t Push(int qd, size_t size, char fill) {
  return ChildPush(qd, std::string(size, fill));
}

// Waits (up to a minute) for the peer to close `qd`: the end of a client.
void AwaitClose(int qd) {
  demi_qtoken_t eof = 0;
  CHILD_CHECK(demi_pop(&eof, qd) == 0);
  ChildWait(eof, absl::Seconds(60));
}

// Pops one message and checks it is `size` bytes of `fill`.
void PopChecked(int qd, size_t size, char fill,
                absl::Duration timeout = absl::Seconds(60)) {
  CHILD_CHECK(ChildPop(qd, timeout) == std::string(size, fill));
}

TEST(IdleWaitTest, IdleWaitsCostAFewPercentOfACore) {
  constexpr int kConnections = 100;
  uint16_t port = NextPort();
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t server = Spawn([&] {
    CHILD_CHECK(demi_init(nullptr) == 0);
    int listener = ChildListen(port, kConnections);
    std::vector<int> qds;
    for (int i = 0; i < kConnections; ++i) qds.push_back(Accept(listener));
    timespec idle = absl::ToTimespec(kIdle);
    demi_qresult_t qr;
    std::vector<demi_qtoken_t> pops;
    for (int qd : qds) {
      demi_qtoken_t qt = 0;
      CHILD_CHECK(demi_pop(&qt, qd) == 0);
      pops.push_back(qt);
    }
    CheckIdleCpu("demi_wait on a pop",
                 [&] { return demi_wait(&qr, pops[0], &idle); });
    CheckIdleCpu("demi_wait_any over 100 connections", [&] {
      int offset = -1;
      return demi_wait_any(&qr, &offset, pops.data(), kConnections, &idle);
    });
    CheckIdleCpu("demi_wait on an accept", [&] {
      demi_qtoken_t qt = 0;
      CHILD_CHECK(demi_accept(&qt, listener) == 0);
      return demi_wait(&qr, qt, &idle);
    });
    CheckIdleCpu("demi_wait_next_n", [&] {
      int count = 0;
      return demi_wait_next_n(&qr, 1, &count, &idle);
    });
    CHILD_CHECK(write(ready[1], "d", 1) == 1);
    // Still there for the clients after all that sleeping.
    qr = ChildWait(pops[0], absl::Seconds(60));
    CHILD_CHECK(qr.qr_opcode == DEMI_OPC_POP);
    CHILD_CHECK(qr.qr_value.sga.sga_segs[0].sgaseg_len == 64);
    CHILD_CHECK(demi_sgafree(&qr.qr_value.sga) == 0);
    CHILD_CHECK(demi_close(qds[0]) == 0);  // The client's EOF.
    return 0;
  });
  pid_t clients = Spawn([&] {
    CHILD_CHECK(demi_init(nullptr) == 0);
    std::vector<int> qds;
    for (int i = 0; i < kConnections; ++i)
      qds.push_back(ConnectWithRetry(port));
    char byte = 0;
    CHILD_CHECK(read(ready[0], &byte, 1) == 1);
    demi_qtoken_t qt = Push(qds[0], 64, 'a');
    CHILD_CHECK(ChildWait(qt, absl::Seconds(60)).qr_opcode == DEMI_OPC_PUSH);
    // Stay until the server has it: its pops end with our connections.
    demi_qtoken_t eof = 0;
    CHILD_CHECK(demi_pop(&eof, qds[0]) == 0);
    ChildWait(eof, absl::Seconds(60));
    return 0;
  });
  EXPECT_EQ(Reap(server, Scaled(absl::Seconds(180))), 0);
  EXPECT_EQ(Reap(clients, Scaled(absl::Seconds(180))), 0);
  close(ready[0]);
  close(ready[1]);
}

// What wakes a sleeping wait: a message, a large push's completion (the
// peer reads it late), and the wait's own timeout, each on time.
TEST(IdleWaitTest, ASleepingWaitWakesForAMessageAPushAndItsTimeout) {
  uint16_t port = NextPort();
  pid_t server = Spawn([port] {
    CHILD_CHECK(demi_init(nullptr) == 0);
    int qd = Accept(ChildListen(port, 4));
    // The client sends after 1 s: the pop's wait has slept long since.
    absl::Duration cpu = CpuTime();
    absl::Time start = absl::Now();
    PopChecked(qd, 100, 'm');
    absl::Duration waited = absl::Now() - start;
    std::fprintf(stderr, "pop woke after %s, %s of CPU\n",
                 absl::FormatDuration(waited).c_str(),
                 absl::FormatDuration(CpuTime() - cpu).c_str());
    CHILD_CHECK(waited >= absl::Milliseconds(900));
    CHILD_CHECK(absl::FDivDuration(CpuTime() - cpu, waited) <= 0.2);
    // A 1 MiB push completes when the peer has read it, 1 s from now.
    start = absl::Now();
    demi_qtoken_t qt = Push(qd, 1 << 20, 'p');
    CHILD_CHECK(ChildWait(qt, absl::Seconds(60)).qr_opcode == DEMI_OPC_PUSH);
    waited = absl::Now() - start;
    std::fprintf(stderr, "push woke after %s\n",
                 absl::FormatDuration(waited).c_str());
    CHILD_CHECK(waited >= absl::Milliseconds(900));
    // A timeout is kept within 10 ms while asleep (the token stays valid;
    // the best of three, as the emulated VM's own scheduling is not).
    demi_qtoken_t pop = 0;
    CHILD_CHECK(demi_pop(&pop, qd) == 0);
    for (int ms : {1, 20, 200}) {
      absl::Duration best = absl::InfiniteDuration();
      for (int i = 0; i < 3; ++i) {
        timespec ts = absl::ToTimespec(absl::Milliseconds(ms));
        demi_qresult_t qr;
        start = absl::Now();
        CHILD_CHECK(demi_wait(&qr, pop, &ts) == ETIMEDOUT);
        absl::Duration late = absl::Now() - start - absl::Milliseconds(ms);
        CHILD_CHECK(late >= absl::ZeroDuration());
        best = std::min(best, late);
      }
      std::fprintf(stderr, "a %d ms timeout came %s late\n", ms,
                   absl::FormatDuration(best).c_str());
      CHILD_CHECK(best <= absl::Milliseconds(10));
    }
    demi_qresult_t qr = ChildWait(pop, absl::Seconds(60));
    CHILD_CHECK(qr.qr_opcode == DEMI_OPC_POP);
    CHILD_CHECK(qr.qr_value.sga.sga_segs[0].sgaseg_len == 8);
    CHILD_CHECK(demi_sgafree(&qr.qr_value.sga) == 0);
    CHILD_CHECK(demi_close(qd) == 0);
    return 0;
  });
  pid_t client = Spawn([port] {
    CHILD_CHECK(demi_init(nullptr) == 0);
    int qd = ConnectWithRetry(port);
    absl::SleepFor(absl::Seconds(1));
    demi_qtoken_t qt = Push(qd, 100, 'm');
    CHILD_CHECK(ChildWait(qt, absl::Seconds(60)).qr_opcode == DEMI_OPC_PUSH);
    absl::SleepFor(absl::Seconds(1));
    PopChecked(qd, 1 << 20, 'p');
    absl::SleepFor(absl::Seconds(2));  // After the server's timeouts.
    qt = Push(qd, 8, 'z');
    CHILD_CHECK(ChildWait(qt, absl::Seconds(60)).qr_opcode == DEMI_OPC_PUSH);
    AwaitClose(qd);
    return 0;
  });
  EXPECT_EQ(Reap(server, Scaled(absl::Seconds(120))), 0);
  EXPECT_EQ(Reap(client, Scaled(absl::Seconds(120))), 0);
}

// A sleep that ends by its own timeout leaves the CQs armed, and the next
// one does not arm them again (ThreadDevice::armed): a message after ten
// such sleeps must still wake the waiter, with no timer to mask a lost
// wake-up (keepalive off): lost, it would wait out its 30 s.
TEST(IdleWaitTest, AMessageAfterSleepsThatTimedOutWakesTheWaiter) {
  uint16_t port = NextPort();
  pid_t server = Spawn([port] {
    setenv("DEMI_KEEPALIVE_MS", "0", 1);
    CHILD_CHECK(demi_init(nullptr) == 0);
    int qd = Accept(ChildListen(port, 4));
    demi_qtoken_t pop = 0;
    CHILD_CHECK(demi_pop(&pop, qd) == 0);
    for (int i = 0; i < 10; ++i) {
      timespec ts = absl::ToTimespec(absl::Milliseconds(100));
      demi_qresult_t qr;
      CHILD_CHECK(demi_wait(&qr, pop, &ts) == ETIMEDOUT);
    }
    // The client sends 3 s after it connected: about 2 s from now.
    absl::Time start = absl::Now();
    demi_qresult_t qr = ChildWait(pop, absl::Seconds(30));
    absl::Duration waited = absl::Now() - start;
    std::fprintf(stderr, "pop woke after %s\n",
                 absl::FormatDuration(waited).c_str());
    CHILD_CHECK(qr.qr_opcode == DEMI_OPC_POP);
    CHILD_CHECK(qr.qr_value.sga.sga_segs[0].sgaseg_len == 16);
    CHILD_CHECK(waited < absl::Seconds(10));
    CHILD_CHECK(demi_sgafree(&qr.qr_value.sga) == 0);
    CHILD_CHECK(demi_close(qd) == 0);
    return 0;
  });
  pid_t client = Spawn([port] {
    setenv("DEMI_KEEPALIVE_MS", "0", 1);
    CHILD_CHECK(demi_init(nullptr) == 0);
    int qd = ConnectWithRetry(port);
    absl::SleepFor(absl::Seconds(3));
    demi_qtoken_t qt = Push(qd, 16, 'w');
    CHILD_CHECK(ChildWait(qt, absl::Seconds(60)).qr_opcode == DEMI_OPC_PUSH);
    AwaitClose(qd);
    return 0;
  });
  EXPECT_EQ(Reap(server, Scaled(absl::Seconds(120))), 0);
  EXPECT_EQ(Reap(client, Scaled(absl::Seconds(120))), 0);
}

// With no spin budget (DEMI_SPIN_US=0) a wait goes to Sleep at every
// turn. Sleep returned at once while a pass had work due (credits to give
// back, doorbells), and the wait went on without a pass: it spun, making
// no progress, until its deadline (for ever with none). Here 48 messages
// are waiting in the receive CQ (more than one pass takes, kPollBatch),
// the waiter's CQs disarmed by its wake before, when it asks for the last
// of them with keepalive off.
TEST(IdleWaitTest, AWaitWithNoSpinBudgetKeepsMakingProgress) {
  constexpr int kConnections = 25;  // 0 says go; 1 to 24 send 2 each.
  constexpr int kEach = 2;          // Within the credits, no return needed.
  uint16_t port = NextPort();
  pid_t server = Spawn([port] {
    setenv("DEMI_KEEPALIVE_MS", "0", 1);
    setenv("DEMI_SPIN_US", "0", 1);
    CHILD_CHECK(demi_init(nullptr) == 0);
    int listener = ChildListen(port, kConnections);
    std::vector<int> qds;
    for (int i = 0; i < kConnections; ++i) qds.push_back(Accept(listener));
    // Woken by a completion: the device's CQs are disarmed from here on.
    PopChecked(qds[0], 8, 'g');
    absl::SleepFor(absl::Seconds(3));  // The others' messages land now.
    std::vector<demi_qtoken_t> pops;
    for (int i = 1; i < kConnections; ++i) {
      for (int m = 0; m < kEach; ++m) {
        demi_qtoken_t qt = 0;
        CHILD_CHECK(demi_pop(&qt, qds[i]) == 0);
        pops.push_back(qt);
      }
    }
    timespec ts = absl::ToTimespec(absl::Seconds(5));
    demi_qresult_t qr;
    absl::Time start = absl::Now();
    CHILD_CHECK(demi_wait(&qr, pops.back(), &ts) == 0);
    absl::Duration waited = absl::Now() - start;
    std::fprintf(stderr, "the last of %zu messages taken after %s\n",
                 pops.size(), absl::FormatDuration(waited).c_str());
    // Not at the timeout's last poll: the messages were all there.
    CHILD_CHECK(waited < absl::Seconds(3));
    CHILD_CHECK(qr.qr_opcode == DEMI_OPC_POP);
    CHILD_CHECK(qr.qr_value.sga.sga_segs[0].sgaseg_len == 16);
    CHILD_CHECK(demi_sgafree(&qr.qr_value.sga) == 0);
    pops.pop_back();
    for (demi_qtoken_t qt : pops) {
      demi_qresult_t popped = ChildWait(qt, absl::Seconds(60));
      CHILD_CHECK(popped.qr_opcode == DEMI_OPC_POP);
      CHILD_CHECK(demi_sgafree(&popped.qr_value.sga) == 0);
    }
    for (int qd : qds) CHILD_CHECK(demi_close(qd) == 0);
    return 0;
  });
  pid_t client = Spawn([port] {
    setenv("DEMI_KEEPALIVE_MS", "0", 1);
    CHILD_CHECK(demi_init(nullptr) == 0);
    std::vector<int> qds;
    for (int i = 0; i < kConnections; ++i)
      qds.push_back(ConnectWithRetry(port));
    absl::SleepFor(absl::Seconds(1));  // The server sleeps in its pop.
    demi_qtoken_t go = Push(qds[0], 8, 'g');
    CHILD_CHECK(ChildWait(go, absl::Seconds(60)).qr_opcode == DEMI_OPC_PUSH);
    absl::SleepFor(absl::Milliseconds(500));  // It sleeps outside the API.
    std::vector<demi_qtoken_t> pushes;
    for (int i = 1; i < kConnections; ++i) {
      for (int m = 0; m < kEach; ++m) pushes.push_back(Push(qds[i], 16, 'b'));
    }
    for (demi_qtoken_t qt : pushes) {
      CHILD_CHECK(ChildWait(qt, absl::Seconds(60)).qr_opcode == DEMI_OPC_PUSH);
    }
    for (int qd : qds) AwaitClose(qd);
    return 0;
  });
  EXPECT_EQ(Reap(server, Scaled(absl::Seconds(180))), 0);
  EXPECT_EQ(Reap(client, Scaled(absl::Seconds(180))), 0);
}

// A message that arrives just as the waiter goes to sleep, between its
// last poll and its arming of the CQs, must still wake it: a ping-pong
// whose replies come after delays spread around the spin budget, with no
// timer to mask a lost wake-up (keepalive off, nothing closing): a round
// whose wake-up was lost would wait until its 30 s timeout. (How long a
// round takes is not checked: under emulation rxe itself stalls for
// seconds now and then, spinning or not.)
TEST(IdleWaitTest, AMessageAtTheMomentOfSleepIsNotMissed) {
  constexpr int kRounds = 600;
  uint16_t port = NextPort();
  pid_t server = Spawn([port] {
    setenv("DEMI_KEEPALIVE_MS", "0", 1);
    CHILD_CHECK(demi_init(nullptr) == 0);
    int qd = Accept(ChildListen(port, 4));
    absl::Duration slowest;
    for (int i = 0; i < kRounds; ++i) {
      absl::Time start = absl::Now();
      demi_qtoken_t qt = Push(qd, 32, 'q');
      PopChecked(qd, 32, 'r', absl::Seconds(30));
      CHILD_CHECK(ChildWait(qt, absl::Seconds(30)).qr_opcode == DEMI_OPC_PUSH);
      slowest = std::max(slowest, absl::Now() - start);
    }
    std::fprintf(stderr, "slowest of %d rounds: %s\n", kRounds,
                 absl::FormatDuration(slowest).c_str());
    CHILD_CHECK(demi_close(qd) == 0);
    return 0;
  });
  pid_t client = Spawn([port] {
    setenv("DEMI_KEEPALIVE_MS", "0", 1);
    CHILD_CHECK(demi_init(nullptr) == 0);
    int qd = ConnectWithRetry(port);
    for (int i = 0; i < kRounds; ++i) {
      PopChecked(qd, 32, 'q', absl::Seconds(30));
      // 0 to 600 us: below, at and past the server's spin budget.
      absl::SleepFor(absl::Microseconds((i * 37) % 600));
      demi_qtoken_t qt = Push(qd, 32, 'r');
      CHILD_CHECK(ChildWait(qt, absl::Seconds(30)).qr_opcode == DEMI_OPC_PUSH);
    }
    AwaitClose(qd);
    return 0;
  });
  EXPECT_EQ(Reap(server, Scaled(absl::Seconds(300))), 0);
  EXPECT_EQ(Reap(client, Scaled(absl::Seconds(300))), 0);
}

}  // namespace
