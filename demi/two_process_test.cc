// The C API between two processes on one RDMA device, each with its own
// libOS, as applications use it: a slow receiver under a flood of pushes,
// and a peer killed with SIGKILL while operations are pending.
//
// The test process itself never calls demi_init: it forks a server and a
// client (verbs resources do not survive fork) and judges their exit codes.
#include <demi/libos.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "testing/child_process.h"
#include "testing/demi_helpers.h"
#include "testing/rdma_env.h"

namespace {

using demi::testing::ChildListen;
using demi::testing::ChildWait;
using demi::testing::ConnectWithRetry;
using demi::testing::NextPort;
using demi::testing::Reap;
using demi::testing::Scaled;
using demi::testing::Spawn;

int ListenAndAccept(uint16_t port) {
  int listener = ChildListen(port, 4);
  demi_qtoken_t qt = 0;
  CHILD_CHECK(demi_accept(&qt, listener) == 0);
  demi_qresult_t qr = ChildWait(qt, absl::Seconds(60));
  CHILD_CHECK(qr.qr_opcode == DEMI_OPC_ACCEPT);
  return qr.qr_value.ares.qd;
}

TEST(TwoProcessTest, SlowReceiverGetsEveryOneOfAHundredThousandMessages) {
  constexpr uint64_t kMessages = 100000;
  uint16_t port = NextPort();
  pid_t server = Spawn([port] {
    CHILD_CHECK(demi_init(nullptr) == 0);
    int qd = ListenAndAccept(port);
    for (uint64_t i = 0; i < kMessages; ++i) {
      if (i % 10000 == 0) absl::SleepFor(absl::Milliseconds(200));  // Slow.
      demi_qtoken_t qt = 0;
      CHILD_CHECK(demi_pop(&qt, qd) == 0);
      demi_qresult_t qr = ChildWait(qt, absl::Seconds(60));
      CHILD_CHECK(qr.qr_opcode == DEMI_OPC_POP);
      CHILD_CHECK(qr.qr_value.sga.sga_segs[0].sgaseg_len == sizeof(i));
      uint64_t seq = 0;
      std::memcpy(&seq, qr.qr_value.sga.sga_segs[0].sgaseg_buf, sizeof(seq));
      if (seq != i) std::fprintf(stderr, "got %lu, want %lu\n", seq, i);
      CHILD_CHECK(seq == i);
      CHILD_CHECK(demi_sgafree(&qr.qr_value.sga) == 0);
    }
    CHILD_CHECK(demi_close(qd) == 0);
    return 0;
  });
  pid_t client = Spawn([port] {
    CHILD_CHECK(demi_init(nullptr) == 0);
    int qd = ConnectWithRetry(port);
    // A pure sender: every push is started before any is waited for.
    std::vector<demi_qtoken_t> pushes(kMessages);
    for (uint64_t i = 0; i < kMessages; ++i) {
      demi_sgarray_t sga = demi_sgaalloc(sizeof(i));
      CHILD_CHECK(sga.sga_numsegs == 1);
      std::memcpy(sga.sga_segs[0].sgaseg_buf, &i, sizeof(i));
      CHILD_CHECK(demi_push(&pushes[i], qd, &sga) == 0);
      CHILD_CHECK(demi_sgafree(&sga) == 0);
    }
    for (demi_qtoken_t qt : pushes) {
      CHILD_CHECK(ChildWait(qt, absl::Seconds(120)).qr_opcode == DEMI_OPC_PUSH);
    }
    // Wait for the server's close (EOF) so nothing is cut short.
    demi_qtoken_t qt = 0;
    CHILD_CHECK(demi_pop(&qt, qd) == 0);
    demi_qresult_t eof = ChildWait(qt, absl::Seconds(120));
    CHILD_CHECK(eof.qr_opcode == DEMI_OPC_POP);
    CHILD_CHECK(eof.qr_value.sga.sga_segs[0].sgaseg_len == 0);
    return 0;
  });
  EXPECT_EQ(Reap(client, Scaled(absl::Seconds(600))), 0);
  EXPECT_EQ(Reap(server, Scaled(absl::Seconds(60))), 0);
}

TEST(TwoProcessTest, KilledPeerFailsEveryPendingOperation) {
  uint16_t port = NextPort();
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t survivor = Spawn([port, &ready] {
    CHILD_CHECK(demi_init(nullptr) == 0);
    int qd = ListenAndAccept(port);
    std::vector<demi_qtoken_t> pending;
    for (int i = 0; i < 8; ++i) {
      demi_qtoken_t qt = 0;
      CHILD_CHECK(demi_pop(&qt, qd) == 0);
      pending.push_back(qt);
    }
    // Large pushes wait for the peer to read them; more small pushes than
    // the peer has credits for wait in the library.
    for (int i = 0; i < 200; ++i) {
      demi_sgarray_t sga = demi_sgaalloc(i < 4 ? (1 << 20) : 64);
      CHILD_CHECK(sga.sga_numsegs == 1);
      demi_qtoken_t qt = 0;
      CHILD_CHECK(demi_push(&qt, qd, &sga) == 0);
      CHILD_CHECK(demi_sgafree(&sga) == 0);
      pending.push_back(qt);
    }
    CHILD_CHECK(write(ready[1], "r", 1) == 1);
    absl::Time start = absl::Now();
    int failed = 0;
    for (demi_qtoken_t qt : pending) {
      demi_qresult_t qr = ChildWait(qt, absl::Seconds(30));
      if (qr.qr_opcode == DEMI_OPC_FAILED) {
        CHILD_CHECK(qr.qr_ret == ECONNRESET || qr.qr_ret == ETIMEDOUT);
        ++failed;
      } else {
        // Small pushes that the peer's device took before it died.
        CHILD_CHECK(qr.qr_opcode == DEMI_OPC_PUSH);
      }
    }
    std::fprintf(
        stderr, "survivor: %d of %zu pending operations failed in %s\n", failed,
        pending.size(), absl::FormatDuration(absl::Now() - start).c_str());
    CHILD_CHECK(failed >= 8 + 4);  // Every pop and every large push.
    // The queue is still the application's to close.
    CHILD_CHECK(demi_close(qd) == 0);
    return 0;
  });
  pid_t victim = Spawn([port] {
    CHILD_CHECK(demi_init(nullptr) == 0);
    ConnectWithRetry(port);
    pause();
    return 0;
  });
  char byte = 0;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  absl::SleepFor(absl::Milliseconds(200));
  absl::Time killed = absl::Now();
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  EXPECT_EQ(Reap(survivor, Scaled(absl::Seconds(30))), 0);
  std::printf("survivor finished %s after the kill\n",
              absl::FormatDuration(absl::Now() - killed).c_str());
  Reap(victim, absl::Seconds(5));
  close(ready[0]);
  close(ready[1]);
}

}  // namespace
