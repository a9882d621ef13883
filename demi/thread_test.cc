// A libOS per thread: demi_init per thread, each thread's queues and tokens
// its own, and a thread's exit delivering what it pushed. On an RDMA
// device; the main thread's libOS comes from DemiInitEnvironment.
#include <demi/libos.h>
#include <demi/sga.h>
#include <demi/wait.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "demi/sga_pool.h"
#include "gtest/gtest.h"
#include "testing/demi_helpers.h"

namespace demi::testing {
namespace {

// Registered memory for the whole process, every thread's pool together:
// small, so that memory that never came back runs the pool dry quickly.
constexpr int kPoolLimitMb = 512;
::testing::Environment* const env =
    ::testing::AddGlobalTestEnvironment(new DemiInitEnvironment(kPoolLimitMb));

// A message each way on `pair`, checked.
void EchoOnce(const DemiPair& pair, const std::string& bytes) {
  demi_qtoken_t qt = PushString(pair.client, bytes);
  EXPECT_TRUE(SameBytes(PopString(pair.server), bytes));
  EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
  qt = PushString(pair.server, bytes);
  EXPECT_TRUE(SameBytes(PopString(pair.client), bytes));
  EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
}

TEST(ThreadTest, InitIsPerThread) {
  EXPECT_EQ(demi_init(nullptr), EEXIST);
  std::thread([] {
    // Before its own demi_init, a thread has no libOS, whatever the main
    // thread has.
    int qd = -1;
    demi_qtoken_t qt = 0;
    demi_qresult_t qr;
    timespec zero = {0, 0};
    EXPECT_EQ(demi_socket(&qd, AF_INET, SOCK_STREAM, 0), ENOSYS);
    EXPECT_EQ(demi_pop(&qt, 1), ENOSYS);
    EXPECT_EQ(demi_wait(&qr, 1, &zero), ENOSYS);
    EXPECT_EQ(demi_close(1), ENOSYS);
    EXPECT_EQ(demi_sgaalloc(64).sga_numsegs, 0u);
    ASSERT_EQ(demi_init(nullptr), 0);
    EXPECT_EQ(demi_init(nullptr), EEXIST);
    DemiPair pair;
    ASSERT_TRUE(MakePair(&pair));
    EchoOnce(pair, "from a thread of its own");
    ClosePair(pair);
  }).join();
  WitnessPair witness;
  witness.ExpectUntouched();
}

TEST(ThreadTest, ThreadsRunTheirOwnLibOsesAtOnce) {
  WitnessPair witness;
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([t] {
      ASSERT_EQ(demi_init(nullptr), 0);
      DemiPair pair;
      ASSERT_TRUE(MakePair(&pair));
      for (int i = 0; i < 100; ++i) {
        // Now and then a message past the eager size: a rendezvous.
        size_t size = i % 10 == 0 ? 64 << 10 : 64;
        EchoOnce(pair, Pattern(size, t * 1000 + i));
      }
      ClosePair(pair);
    });
  }
  for (std::thread& thread : threads) thread.join();
  witness.ExpectUntouched();
}

TEST(ThreadTest, AnotherThreadsQueuesAndTokensAreNotItsOwn) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  demi_qtoken_t pending = 0;
  ASSERT_EQ(demi_pop(&pending, pair.server), 0);
  std::thread([&pair, pending] {
    ASSERT_EQ(demi_init(nullptr), 0);
    // Its own queues have qds of their own: unique in the process.
    for (int i = 0; i < 3; ++i) {
      int qd = -1;
      ASSERT_EQ(demi_socket(&qd, AF_INET, SOCK_STREAM, 0), 0);
      EXPECT_NE(qd, pair.listener);
      EXPECT_NE(qd, pair.client);
      EXPECT_NE(qd, pair.server);
    }
    // The main thread's qds name nothing here, its token no token.
    demi_sgarray_t sga = demi_sgaalloc(16);
    ASSERT_EQ(sga.sga_numsegs, 1u);
    demi_qtoken_t qt = 0;
    demi_qresult_t qr;
    timespec zero = {0, 0};
    int offset = -1;
    EXPECT_EQ(demi_push(&qt, pair.client, &sga), EBADF);
    EXPECT_EQ(demi_pop(&qt, pair.server), EBADF);
    EXPECT_EQ(demi_accept(&qt, pair.listener), EBADF);
    EXPECT_EQ(demi_close(pair.client), EBADF);
    EXPECT_EQ(demi_close(pair.listener), EBADF);
    EXPECT_EQ(demi_wait(&qr, pending, &zero), EINVAL);
    EXPECT_EQ(demi_wait_any(&qr, &offset, &pending, 1, &zero), EINVAL);
    EXPECT_EQ(demi_sgafree(&sga), 0);
  }).join();
  // Untouched, and the pending pop still the main thread's.
  demi_qtoken_t push = PushString(pair.client, "still here");
  demi_qresult_t qr = WaitOrFail(pending);
  ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP);
  EXPECT_EQ(SgaBytes(qr.qr_value.sga), "still here");
  EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
  EXPECT_EQ(WaitOrFail(push).qr_opcode, DEMI_OPC_PUSH);
  ClosePair(pair);
}

// A thread that ends without waiting for its pushes or closing its queue:
// its libOS delivers them all (eager and rendezvous), then closes.
TEST(ThreadTest, AThreadThatEndsDeliversWhatItPushed) {
  constexpr int kMessages = 32;
  sockaddr_in addr = AddrOrDie(NextPort());
  int listener = -1;
  ASSERT_EQ(demi_socket(&listener, AF_INET, SOCK_STREAM, 0), 0);
  ASSERT_EQ(demi_bind(listener, Sa(addr), sizeof(addr)), 0);
  ASSERT_EQ(demi_listen(listener, 4), 0);
  std::thread client([addr] {
    ASSERT_EQ(demi_init(nullptr), 0);
    int qd = -1;
    ASSERT_EQ(demi_socket(&qd, AF_INET, SOCK_STREAM, 0), 0);
    demi_qtoken_t qt = 0;
    ASSERT_EQ(demi_connect(&qt, qd, Sa(addr), sizeof(addr)), 0);
    ASSERT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_CONNECT);
    for (int i = 0; i < kMessages; ++i) {
      size_t size = i % 8 == 7 ? 1 << 20 : 64;
      PushString(qd, Pattern(size, i));  // Never waited for.
    }
    // Returns with the pushes in flight and the queue open.
  });
  demi_qtoken_t qt = 0;
  ASSERT_EQ(demi_accept(&qt, listener), 0);
  demi_qresult_t accepted = WaitOrFail(qt);
  ASSERT_EQ(accepted.qr_opcode, DEMI_OPC_ACCEPT);
  int server = accepted.qr_value.ares.qd;
  for (int i = 0; i < kMessages; ++i) {
    size_t size = i % 8 == 7 ? 1 << 20 : 64;
    EXPECT_TRUE(SameBytes(PopString(server), Pattern(size, i))) << i;
  }
  EXPECT_EQ(PopString(server), "");  // EOF: it closed after them.
  client.join();
  EXPECT_EQ(demi_close(server), 0);
  EXPECT_EQ(demi_close(listener), 0);
}

// A worker thread without a libOS that frees what it is handed.
class FreeingWorker {
 public:
  FreeingWorker() : thread_([this] { Run(); }) {}
  ~FreeingWorker() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    ready_.notify_one();
    thread_.join();
  }
  void Hand(const demi_sgarray_t& sga) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      handed_.push_back(sga);
      ++outstanding_;
    }
    ready_.notify_one();
  }
  // Until every buffer handed so far is freed.
  void Drain() {
    std::unique_lock<std::mutex> lock(mutex_);
    drained_.wait(lock, [this] { return outstanding_ == 0; });
  }
  int failures() {
    std::lock_guard<std::mutex> lock(mutex_);
    return failures_;
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      ready_.wait(lock, [this] { return done_ || !handed_.empty(); });
      if (handed_.empty()) return;
      std::vector<demi_sgarray_t> batch;
      batch.swap(handed_);
      lock.unlock();
      int failed = 0;
      for (demi_sgarray_t& sga : batch) failed += demi_sgafree(&sga) != 0;
      lock.lock();
      failures_ += failed;
      outstanding_ -= static_cast<int>(batch.size());
      if (outstanding_ == 0) drained_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::condition_variable drained_;
  std::vector<demi_sgarray_t> handed_;
  int outstanding_ = 0;
  int failures_ = 0;
  bool done_ = false;
  std::thread thread_;
};

// Buffers popped in one thread and freed by a worker go back to their
// owner and are reused: 12 GiB of 64 KiB buffers allocated here and freed
// there, under a pool limit of kPoolLimitMb, never run the pool dry.
TEST(CrossThreadFreeTest, AWorkersFreesComeBackToTheOwner) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  {
    FreeingWorker worker;
    for (int i = 0; i < 200; ++i) {
      std::string bytes = Pattern(i % 4 == 0 ? 64 << 10 : 64, i);
      demi_qtoken_t push = PushString(pair.client, bytes);
      demi_qtoken_t pop = 0;
      ASSERT_EQ(demi_pop(&pop, pair.server), 0);
      demi_qresult_t qr = WaitOrFail(pop);
      ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP);
      EXPECT_TRUE(SameBytes(SgaBytes(qr.qr_value.sga), bytes));
      worker.Hand(qr.qr_value.sga);
      EXPECT_EQ(WaitOrFail(push).qr_opcode, DEMI_OPC_PUSH);
    }
    constexpr size_t kBuffer = 64 << 10;
    constexpr int kBatch = 1024;  // 64 MiB in flight at most.
    constexpr int kBatches =
        static_cast<int>((size_t{12} << 30) / kBuffer / kBatch);
    for (int b = 0; b < kBatches; ++b) {
      for (int i = 0; i < kBatch; ++i) {
        demi_sgarray_t sga = demi_sgaalloc(kBuffer);
        ASSERT_EQ(sga.sga_numsegs, 1u) << "ran dry at batch " << b;
        static_cast<char*>(sga.sga_segs[0].sgaseg_buf)[kBuffer - 1] = 1;
        worker.Hand(sga);
      }
      worker.Drain();
    }
    EXPECT_EQ(worker.failures(), 0);
  }
  // A thread with a libOS of its own gives them back the same way.
  demi_sgarray_t sga = demi_sgaalloc(4096);
  ASSERT_EQ(sga.sga_numsegs, 1u);
  std::thread([&sga] {
    ASSERT_EQ(demi_init(nullptr), 0);
    EXPECT_EQ(demi_sgafree(&sga), 0);
  }).join();
  WitnessPair witness;
  witness.ExpectUntouched();
  ClosePair(pair);
}

// What the pools hold: registered memory but the depot's idle slabs.
size_t HeldByPools() {
  return SgaPool::process_registered_bytes() - SgaPool::depot_bytes();
}

// A thread that ends with a pop done but never waited for: the pop's
// buffer is nobody's, so the thread's pool gives up all its slabs (to the
// depot, for the next thread), not kept for a free that never comes.
TEST(CrossThreadFreeTest, APopNeverTakenDoesNotKeepAnEndedThreadsPool) {
  size_t before = HeldByPools();
  std::thread([] {
    ASSERT_EQ(demi_init(nullptr), 0);
    DemiPair pair;
    ASSERT_TRUE(MakePair(&pair));
    demi_qtoken_t pop = 0;
    ASSERT_EQ(demi_pop(&pop, pair.server), 0);
    EXPECT_EQ(WaitOrFail(PushString(pair.client, "never taken")).qr_opcode,
              DEMI_OPC_PUSH);
    // Runs the engine until the pop is done, without taking its result.
    demi_qtoken_t idle = 0;
    ASSERT_EQ(demi_pop(&idle, pair.client), 0);
    demi_qresult_t qr;
    timespec timeout = Ms(200);
    EXPECT_EQ(demi_wait(&qr, idle, &timeout), ETIMEDOUT);
  }).join();
  EXPECT_EQ(HeldByPools(), before);
}

// A thread that pushes another thread's piece and frees it at once: the
// free goes back to the owner, whose next demi_sgaalloc of that size hands
// out the same piece (the last freed), and the owner writes into it. The
// rendezvous is read after that write (no progress pass runs before the
// pop, so not even ahead of it): the peer must still get the bytes of the
// push's time.
// Whether the pushed sga names the piece by its handle, or gives only the
// segment (sga_buf null): the piece is found by its address either way.
class FreedPushTest : public ::testing::TestWithParam<bool> {};

TEST_P(FreedPushTest, AFreedPushOfAnotherThreadsPieceKeepsItsBytes) {
  const bool named = GetParam();
  constexpr size_t kSize = 1 << 20;  // A rendezvous, too large to copy.
  const std::string pushed = Pattern(kSize, 1);
  const std::string written_after = Pattern(kSize, 2);
  demi_sgarray_t sga = demi_sgaalloc(kSize);
  ASSERT_EQ(sga.sga_numsegs, 1u);
  void* const piece = sga.sga_segs[0].sgaseg_buf;
  std::memcpy(piece, pushed.data(), kSize);
  std::promise<void> freed;
  std::future<void> freed_done = freed.get_future();
  // Whether the owner got the same piece back and overwrote it.
  std::promise<bool> overwritten;
  std::future<bool> overwritten_done = overwritten.get_future();
  std::thread pusher([&] {
    bool signalled = false;
    auto signal_freed = [&] {
      if (!signalled) freed.set_value();
      signalled = true;
    };
    [&] {
      ASSERT_EQ(demi_init(nullptr), 0);
      DemiPair pair;
      ASSERT_TRUE(MakePair(&pair));
      demi_qtoken_t push = 0;
      demi_sgarray_t pushed_sga = sga;
      if (!named) pushed_sga.sga_buf = nullptr;
      ASSERT_EQ(demi_push(&push, pair.client, &pushed_sga), 0);
      EXPECT_EQ(demi_sgafree(&sga), 0);
      signal_freed();
      ASSERT_EQ(overwritten_done.wait_for(std::chrono::seconds(60)),
                std::future_status::ready);
      bool reused = overwritten_done.get();
      std::string popped = PopString(pair.server);
      if (reused) {
        EXPECT_TRUE(SameBytes(popped, pushed))
            << (popped == written_after ? "the bytes written after the free"
                                        : "");
      }
      EXPECT_EQ(WaitOrFail(push).qr_opcode, DEMI_OPC_PUSH);
      ClosePair(pair);
    }();
    // Also after a failure above, so that the main thread goes on.
    signal_freed();
  });
  bool reused = false;
  demi_sgarray_t again = {};
  if (freed_done.wait_for(std::chrono::seconds(60)) ==
      std::future_status::ready) {
    // Takes in the other thread's free first.
    again = demi_sgaalloc(kSize);
    EXPECT_EQ(again.sga_numsegs, 1u);
    // Another piece would prove nothing.
    reused = again.sga_numsegs == 1 && again.sga_segs[0].sgaseg_buf == piece;
    EXPECT_TRUE(reused) << "the freed piece was not handed out again";
    if (reused) std::memcpy(piece, written_after.data(), kSize);
  } else {
    ADD_FAILURE() << "the pusher did not free its sga in time";
  }
  overwritten.set_value(reused);
  pusher.join();
  if (again.sga_numsegs == 1) {
    EXPECT_EQ(demi_sgafree(&again), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(ByHandleOrAddress, FreedPushTest, ::testing::Bool());

// A socket bound to `addr` with SO_REUSEPORT (if `reuse`); the bind's
// errno in `err`.
int BoundSocket(const sockaddr_in& addr, bool reuse, int* err) {
  int qd = -1;
  EXPECT_EQ(demi_socket(&qd, AF_INET, SOCK_STREAM, 0), 0);
  int one = 1;
  if (reuse) {
    EXPECT_EQ(demi_setsockopt(qd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)),
              0);
  }
  *err = demi_bind(qd, Sa(addr), sizeof(addr));
  return qd;
}

TEST(ReusePortTest, OnlySocketsThatAskShareAPort) {
  sockaddr_in addr = AddrOrDie(NextPort());
  int err = -1;
  int plain = BoundSocket(addr, false, &err);
  ASSERT_EQ(err, 0);
  std::thread([addr] {
    ASSERT_EQ(demi_init(nullptr), 0);
    int err = -1;
    int qd = BoundSocket(addr, true, &err);
    EXPECT_EQ(err, EADDRINUSE);  // Taken without the option.
    EXPECT_EQ(demi_close(qd), 0);
  }).join();
  EXPECT_EQ(demi_close(plain), 0);

  int shared = BoundSocket(addr, true, &err);
  ASSERT_EQ(err, 0);
  int on = 0;
  socklen_t len = sizeof(on);
  EXPECT_EQ(demi_getsockopt(shared, SOL_SOCKET, SO_REUSEPORT, &on, &len), 0);
  EXPECT_EQ(on, 1);
  std::thread([addr] {
    ASSERT_EQ(demi_init(nullptr), 0);
    int err = -1;
    int qd = BoundSocket(addr, false, &err);
    EXPECT_EQ(err, EADDRINUSE);  // Shared, but not with it.
    EXPECT_EQ(demi_close(qd), 0);
    qd = BoundSocket(addr, true, &err);
    EXPECT_EQ(err, 0);
    EXPECT_EQ(demi_close(qd), 0);
  }).join();
  EXPECT_EQ(demi_close(shared), 0);
  // Its last holder gone, the port is free for anyone.
  int again = BoundSocket(addr, false, &err);
  EXPECT_EQ(err, 0);
  EXPECT_EQ(demi_close(again), 0);
  // The option's own edge values.
  int one = 1;
  int closed = BoundSocket(addr, true, &err);
  ASSERT_EQ(err, 0);
  ASSERT_EQ(demi_close(closed), 0);
  EXPECT_EQ(demi_setsockopt(-1, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)),
            EBADF);
  EXPECT_EQ(
      demi_setsockopt(closed, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)),
      EBADF);
  int qd = -1;
  ASSERT_EQ(demi_socket(&qd, AF_INET, SOCK_STREAM, 0), 0);
  EXPECT_EQ(demi_setsockopt(qd, SOL_SOCKET, SO_REUSEPORT, &one, 1), EINVAL);
  socklen_t small = 1;
  EXPECT_EQ(demi_getsockopt(qd, SOL_SOCKET, SO_REUSEPORT, &on, &small), EINVAL);
  EXPECT_EQ(demi_getsockopt(closed, SOL_SOCKET, SO_REUSEPORT, &on, &len),
            EBADF);
  EXPECT_EQ(demi_close(qd), 0);
  int datagram = -1;
  ASSERT_EQ(demi_socket(&datagram, AF_INET, SOCK_DGRAM, 0), 0);
  EXPECT_EQ(
      demi_setsockopt(datagram, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)),
      ENOPROTOOPT);
  EXPECT_EQ(demi_close(datagram), 0);
}

// With its last listener gone, a port still bound with SO_REUSEPORT
// refuses connections (rather than leaving them unanswered), takes them
// again when a listener comes, and cannot connect out itself.
TEST(ReusePortTest, ABoundPortWithoutListenersRefuses) {
  sockaddr_in addr = AddrOrDie(NextPort());
  int err = -1;
  int bound = BoundSocket(addr, true, &err);
  ASSERT_EQ(err, 0);
  demi_qtoken_t qt = 0;
  sockaddr_in elsewhere = AddrOrDie(NextPort());
  EXPECT_EQ(demi_connect(&qt, bound, Sa(elsewhere), sizeof(elsewhere)),
            EADDRINUSE);
  int listener = BoundSocket(addr, true, &err);
  ASSERT_EQ(err, 0);
  ASSERT_EQ(demi_listen(listener, 4), 0);
  ASSERT_EQ(demi_close(listener), 0);
  int client = -1;
  ASSERT_EQ(demi_socket(&client, AF_INET, SOCK_STREAM, 0), 0);
  ASSERT_EQ(demi_connect(&qt, client, Sa(addr), sizeof(addr)), 0);
  demi_qresult_t qr = WaitOrFail(qt, absl::Seconds(30));
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, ECONNREFUSED);
  listener = BoundSocket(addr, true, &err);
  ASSERT_EQ(err, 0);
  ASSERT_EQ(demi_listen(listener, 4), 0);
  demi_qtoken_t accept = 0;
  ASSERT_EQ(demi_connect(&qt, client, Sa(addr), sizeof(addr)), 0);
  ASSERT_EQ(demi_accept(&accept, listener), 0);
  EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_CONNECT);
  qr = WaitOrFail(accept);
  ASSERT_EQ(qr.qr_opcode, DEMI_OPC_ACCEPT);
  EXPECT_EQ(demi_close(qr.qr_value.ares.qd), 0);
  EXPECT_EQ(demi_close(client), 0);
  EXPECT_EQ(demi_close(listener), 0);
  EXPECT_EQ(demi_close(bound), 0);
}

// Serves echoes on a listener shared on `addr` until `finished` reaches
// `total` connections; counts the connections it accepted.
void EchoServer(const sockaddr_in& addr, std::atomic<int>* finished, int total,
                std::atomic<int>* accepted) {
  ASSERT_EQ(demi_init(nullptr), 0);
  int err = -1;
  int listener = BoundSocket(addr, true, &err);
  ASSERT_EQ(err, 0);
  ASSERT_EQ(demi_listen(listener, 16), 0);
  std::vector<demi_qtoken_t> tokens(1);
  std::vector<int> qds = {listener};
  ASSERT_EQ(demi_accept(&tokens[0], listener), 0);
  while (finished->load() < total) {
    demi_qresult_t qr;
    int offset = -1;
    timespec timeout = Ms(100);
    int rc = demi_wait_any(&qr, &offset, tokens.data(),
                           static_cast<int>(tokens.size()), &timeout);
    if (rc == ETIMEDOUT) continue;
    ASSERT_EQ(rc, 0);
    if (qr.qr_opcode == DEMI_OPC_ACCEPT) {
      accepted->fetch_add(1);
      ASSERT_EQ(demi_accept(&tokens[offset], listener), 0);
      int qd = qr.qr_value.ares.qd;
      qds.push_back(qd);
      tokens.emplace_back();
      ASSERT_EQ(demi_pop(&tokens.back(), qd), 0);
      continue;
    }
    ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP);
    int qd = qds[offset];
    if (qr.qr_value.sga.sga_buf == nullptr) {  // EOF: the client is done.
      EXPECT_EQ(demi_close(qd), 0);
      tokens.erase(tokens.begin() + offset);
      qds.erase(qds.begin() + offset);
      finished->fetch_add(1);
      continue;
    }
    demi_qtoken_t push = PushString(qd, SgaBytes(qr.qr_value.sga));
    EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
    EXPECT_EQ(WaitOrFail(push).qr_opcode, DEMI_OPC_PUSH);
    ASSERT_EQ(demi_pop(&tokens[offset], qd), 0);
  }
  EXPECT_EQ(demi_close(listener), 0);
}

// Four threads listen on one port; a four-thread client opens 16
// connections: each reaches one of them, every echo comes back, and the
// connections spread over the threads.
TEST(ReusePortTest, FourThreadsServeOnePort) {
  constexpr int kServers = 4;
  constexpr int kClients = 4;
  constexpr int kPerClient = 4;
  constexpr int kTotal = kClients * kPerClient;
  sockaddr_in addr = AddrOrDie(NextPort());
  std::atomic<int> finished{0};
  std::atomic<int> accepted[kServers] = {};
  std::vector<std::thread> servers;
  for (int i = 0; i < kServers; ++i) {
    servers.emplace_back(EchoServer, addr, &finished, kTotal, &accepted[i]);
  }
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([addr, c] {
      ASSERT_EQ(demi_init(nullptr), 0);
      std::vector<int> qds;
      for (int i = 0; i < kPerClient; ++i) {
        int qd = -1;
        ASSERT_EQ(demi_socket(&qd, AF_INET, SOCK_STREAM, 0), 0);
        // Until every server thread listens, a connect may be refused.
        demi_qresult_t qr = {};
        for (int attempt = 0; attempt < 100; ++attempt) {
          demi_qtoken_t qt = 0;
          ASSERT_EQ(demi_connect(&qt, qd, Sa(addr), sizeof(addr)), 0);
          qr = WaitOrFail(qt);
          if (qr.qr_opcode == DEMI_OPC_CONNECT) break;
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        ASSERT_EQ(qr.qr_opcode, DEMI_OPC_CONNECT);
        qds.push_back(qd);
      }
      for (int round = 0; round < 10; ++round) {
        for (int i = 0; i < kPerClient; ++i) {
          std::string bytes = Pattern(round % 3 == 0 ? 32 << 10 : 64,
                                      c * 1000 + i * 10 + round);
          demi_qtoken_t qt = PushString(qds[i], bytes);
          EXPECT_TRUE(SameBytes(PopString(qds[i]), bytes));
          EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
        }
      }
      for (int qd : qds) EXPECT_EQ(demi_close(qd), 0);
    });
  }
  for (std::thread& client : clients) client.join();
  for (std::thread& server : servers) server.join();
  EXPECT_EQ(finished.load(), kTotal);
  int sum = 0;
  for (int i = 0; i < kServers; ++i) {
    EXPECT_GE(accepted[i].load(), 1) << "server thread " << i;
    sum += accepted[i].load();
  }
  EXPECT_EQ(sum, kTotal);
}

// A listener that closes, and one whose thread ends without closing it,
// take no more connections; the one left takes them all.
TEST(ReusePortTest, ListenersThatGoTakeNoMore) {
  sockaddr_in addr = AddrOrDie(NextPort());
  int err = -1;
  int listener = BoundSocket(addr, true, &err);
  ASSERT_EQ(err, 0);
  ASSERT_EQ(demi_listen(listener, 16), 0);
  std::thread([addr] {
    ASSERT_EQ(demi_init(nullptr), 0);
    int err = -1;
    int closes = BoundSocket(addr, true, &err);
    ASSERT_EQ(err, 0);
    ASSERT_EQ(demi_listen(closes, 16), 0);
    EXPECT_EQ(demi_close(closes), 0);
    int stays_open = BoundSocket(addr, true, &err);
    ASSERT_EQ(err, 0);
    ASSERT_EQ(demi_listen(stays_open, 16), 0);
    // Ends with it open: its libOS closes it.
  }).join();
  for (int i = 0; i < 6; ++i) {
    int client = -1;
    ASSERT_EQ(demi_socket(&client, AF_INET, SOCK_STREAM, 0), 0);
    demi_qtoken_t connect = 0;
    demi_qtoken_t accept = 0;
    ASSERT_EQ(demi_connect(&connect, client, Sa(addr), sizeof(addr)), 0);
    ASSERT_EQ(demi_accept(&accept, listener), 0);
    ASSERT_EQ(WaitOrFail(connect).qr_opcode, DEMI_OPC_CONNECT);
    demi_qresult_t accepted = WaitOrFail(accept);
    ASSERT_EQ(accepted.qr_opcode, DEMI_OPC_ACCEPT);
    DemiPair pair;
    pair.listener = -1;
    pair.client = client;
    pair.server = accepted.qr_value.ares.qd;
    EchoOnce(pair, "connection " + std::to_string(i));
    EXPECT_EQ(demi_close(pair.client), 0);
    EXPECT_EQ(demi_close(pair.server), 0);
  }
  EXPECT_EQ(demi_close(listener), 0);
}

// One thread's socket on a shared port closes (the port's last) while
// another binds it: the bind must find the port either shared or free,
// never taken by the listener that is going.
TEST(ReusePortTest, ABindRacingTheLastCloseNeverFindsThePortTaken) {
  sockaddr_in addr = AddrOrDie(NextPort());
  constexpr int kRounds = 3000;
  std::atomic<int> taken{0};
  auto churn = [&] {
    for (int i = 0; i < kRounds; ++i) {
      int err = -1;
      int qd = BoundSocket(addr, true, &err);
      if (err == EADDRINUSE) ++taken;
      EXPECT_TRUE(err == 0 || err == EADDRINUSE) << err;
      EXPECT_EQ(demi_close(qd), 0);
    }
  };
  std::thread other([&] {
    ASSERT_EQ(demi_init(nullptr), 0);
    churn();
  });
  churn();
  other.join();
  EXPECT_EQ(taken.load(), 0) << "binds that found the port taken";
}

}  // namespace
}  // namespace demi::testing
