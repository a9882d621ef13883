// Misuse at the level of the process, on an RDMA device: fork() after
// demi_init, exit() from a thread that is not the library's while the
// library's thread waits, and a close made in an atexit handler. Each case
// runs in processes of its own (testing/child_process.h), judged by their
// exit codes and how long they took.
#include <demi/libos.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

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

// A connection within this process: `client` connected to `server`.
struct LocalPair {
  int listener = -1;
  int client = -1;
  int server = -1;
};
LocalPair ChildPair() {
  LocalPair pair;
  uint16_t port = NextPort();
  pair.listener = ChildListen(port, 4);
  pair.client = ConnectWithRetry(port);
  demi_qtoken_t qt = 0;
  CHILD_CHECK(demi_accept(&qt, pair.listener) == 0);
  demi_qresult_t qr = ChildWait(qt, absl::Seconds(60));
  CHILD_CHECK(qr.qr_opcode == DEMI_OPC_ACCEPT);
  pair.server = qr.qr_value.ares.qd;
  return pair;
}

// qd -1 as the first call of a fresh libOS, and right after the queue the
// last call found was destroyed: the lookup's cache must not take -1 for
// its own (it crashed, then read a freed queue).
TEST(ProcessMisuseTest, QdMinusOneIsEbadfInAFreshLibOsAndAfterADestroy) {
  pid_t process = Spawn([] {
    CHILD_CHECK(demi_init(nullptr) == 0);
    CHILD_CHECK(demi_close(-1) == EBADF);
    demi_qtoken_t qt = 0;
    CHILD_CHECK(demi_pop(&qt, -1) == EBADF);
    int qd = -1;
    CHILD_CHECK(demi_socket(&qd, AF_INET, SOCK_STREAM, 0) == 0);
    CHILD_CHECK(demi_listen(qd, 8) == EDESTADDRREQ);  // Found and cached.
    CHILD_CHECK(demi_close(qd) == 0);                 // Destroyed.
    CHILD_CHECK(demi_close(-1) == EBADF);
    CHILD_CHECK(demi_listen(qd, 8) == EBADF);
    return 0;
  });
  EXPECT_EQ(Reap(process, Scaled(absl::Seconds(60))), 0);
}

// The child of a fork must not touch its parent's queues: its calls are
// ENOSYS, its exit flushes nothing, and the parent's connection carries on
// as if the child had never been.
TEST(ProcessMisuseTest, AChildOfForkCannotTouchItsParentsQueues) {
  pid_t parent = Spawn([] {
    CHILD_CHECK(demi_init(nullptr) == 0);
    LocalPair pair = ChildPair();
    // A closed connection still flushing at the fork: the child's exit
    // must not poll for it.
    LocalPair flushing = ChildPair();
    ChildPush(flushing.client, "flushed by the parent");
    CHILD_CHECK(demi_close(flushing.client) == 0);
    pid_t child = Spawn([&] {
      int qd = -1;
      demi_qtoken_t qt = 0;
      demi_qresult_t qr;
      CHILD_CHECK(demi_socket(&qd, AF_INET, SOCK_STREAM, 0) == ENOSYS);
      demi_sgarray_t sga = demi_sgaalloc(8);
      CHILD_CHECK(sga.sga_numsegs == 0);
      char bytes[] = "from the child";
      sga.sga_numsegs = 1;
      sga.sga_segs[0].sgaseg_buf = bytes;
      sga.sga_segs[0].sgaseg_len = sizeof(bytes);
      CHILD_CHECK(demi_push(&qt, pair.client, &sga) == ENOSYS);
      CHILD_CHECK(demi_pop(&qt, pair.server) == ENOSYS);
      timespec zero = {0, 0};
      CHILD_CHECK(demi_wait(&qr, 1, &zero) == ENOSYS);
      CHILD_CHECK(demi_close(pair.client) == ENOSYS);
      // The array of an end of stream holds nothing: 0 in any thread.
      demi_sgarray_t eof = {};
      eof.sga_numsegs = 1;
      CHILD_CHECK(demi_sgafree(&eof) == 0);
      return 0;  // exit(): the library's exit handler runs here too.
    });
    CHILD_CHECK(Reap(child, Scaled(absl::Seconds(30))) == 0);
    // Untouched: the child's push did not go out, its close did not close.
    demi_qtoken_t qt = ChildPush(pair.client, "from the parent");
    CHILD_CHECK(ChildPop(pair.server) == "from the parent");
    CHILD_CHECK(ChildWait(qt, absl::Seconds(60)).qr_opcode == DEMI_OPC_PUSH);
    qt = ChildPush(pair.server, "and back");
    CHILD_CHECK(ChildPop(pair.client) == "and back");
    CHILD_CHECK(ChildWait(qt, absl::Seconds(60)).qr_opcode == DEMI_OPC_PUSH);
    CHILD_CHECK(ChildPop(flushing.server) == "flushed by the parent");
    CHILD_CHECK(ChildPop(flushing.server).empty());  // EOF.
    return 0;
  });
  EXPECT_EQ(Reap(parent, Scaled(absl::Seconds(120))), 0);
}

// Nor can it start a libOS of its own (the verbs state it inherited is its
// parent's); the parent's goes on.
TEST(ProcessMisuseTest, AChildOfForkCannotInitALibOs) {
  pid_t parent = Spawn([] {
    CHILD_CHECK(demi_init(nullptr) == 0);
    pid_t child = Spawn([] {
      CHILD_CHECK(demi_init(nullptr) == ENOTSUP);
      int qd = -1;
      CHILD_CHECK(demi_socket(&qd, AF_INET, SOCK_STREAM, 0) == ENOSYS);
      pid_t grandchild =
          Spawn([] { return demi_init(nullptr) == ENOTSUP ? 0 : 1; });
      CHILD_CHECK(Reap(grandchild, Scaled(absl::Seconds(30))) == 0);
      return 0;
    });
    CHILD_CHECK(Reap(child, Scaled(absl::Seconds(60))) == 0);
    LocalPair pair = ChildPair();
    ChildPush(pair.client, "the parent's");
    CHILD_CHECK(ChildPop(pair.server) == "the parent's");
    return 0;
  });
  EXPECT_EQ(Reap(parent, Scaled(absl::Seconds(120))), 0);
}

// exit() from a thread other than the library's, while the library's thread
// waits: the exit flush does not run (it would run the progress engine
// beside the waiting thread, for up to the linger time), so the process
// ends at once.
TEST(ProcessMisuseTest, ExitFromAnotherThreadDoesNotRunTheEngineBesideAWait) {
  absl::Time start = absl::Now();
  pid_t process = Spawn([] {
    std::atomic<bool> waiting{false};
    std::thread library([&] {
      CHILD_CHECK(demi_init(nullptr) == 0);
      // A close that cannot finish: the peer never pops, so the flush
      // would wait for its linger time (30 s).
      LocalPair pair = ChildPair();
      for (int i = 0; i < 64; ++i) ChildPush(pair.client, std::string(64, 'x'));
      CHILD_CHECK(demi_close(pair.client) == 0);
      LocalPair idle = ChildPair();
      demi_qtoken_t qt = 0;
      CHILD_CHECK(demi_pop(&qt, idle.server) == 0);
      waiting = true;
      demi_qresult_t qr;
      demi_wait(&qr, qt, nullptr);  // Never returns: the process exits.
    });
    library.detach();
    while (!waiting) absl::SleepFor(absl::Milliseconds(10));
    absl::SleepFor(absl::Milliseconds(100));
    std::exit(7);
    return 0;
  });
  EXPECT_EQ(Reap(process, Scaled(absl::Seconds(60))), 7);
  EXPECT_LT(absl::Now() - start, absl::Seconds(20))
      << "the exit flush ran beside the waiting thread";
}

// A close made in an atexit handler registered after demi_init is flushed:
// handlers run in reverse order, so it runs before the library's.
TEST(ProcessMisuseTest, ACloseInAnAtexitHandlerIsFlushed) {
  uint16_t port = NextPort();
  pid_t server = Spawn([port] {
    CHILD_CHECK(demi_init(nullptr) == 0);
    int listener = ChildListen(port, 4);
    demi_qtoken_t qt = 0;
    CHILD_CHECK(demi_accept(&qt, listener) == 0);
    demi_qresult_t qr = ChildWait(qt, absl::Seconds(60));
    CHILD_CHECK(qr.qr_opcode == DEMI_OPC_ACCEPT);
    int qd = qr.qr_value.ares.qd;
    CHILD_CHECK(ChildPop(qd) == "before exit");
    CHILD_CHECK(ChildPop(qd) == "from the atexit handler");
    CHILD_CHECK(ChildPop(qd).empty());  // EOF: the close went out.
    return 0;
  });
  static int client_qd = -1;
  pid_t client = Spawn([port] {
    CHILD_CHECK(demi_init(nullptr) == 0);
    client_qd = ConnectWithRetry(port);
    std::atexit([] {
      ChildPush(client_qd, "from the atexit handler");
      CHILD_CHECK(demi_close(client_qd) == 0);
    });
    ChildPush(client_qd, "before exit");
    return 0;
  });
  EXPECT_EQ(Reap(client, Scaled(absl::Seconds(90))), 0);
  EXPECT_EQ(Reap(server, Scaled(absl::Seconds(90))), 0);
}

}  // namespace
