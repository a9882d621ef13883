// A step of the wall clock (NTP, an administrator, a VM's resume) while a
// wait runs: the wait still ends after its own timeout, neither an hour
// late (a step back) nor at once (a step forward). The library must time
// everything on CLOCK_MONOTONIC.
//
// This binary's clock_gettime stands in for the C library's (it is linked
// with the symbol exported, so the shared libraries' calls reach it too)
// and adds a shift to CLOCK_REALTIME: the step is this process's alone,
// and needs no privilege.
#include <demi/libos.h>
#include <dlfcn.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "testing/demi_helpers.h"

namespace {

std::atomic<int64_t> wall_shift_seconds{0};

}  // namespace

extern "C" int clock_gettime(clockid_t clock, struct timespec* now) {
  using ClockGettime = int (*)(clockid_t, struct timespec*);
  static const ClockGettime real =
      reinterpret_cast<ClockGettime>(dlsym(RTLD_NEXT, "clock_gettime"));
  int rc = real(clock, now);
  if (rc == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE)) {
    now->tv_sec += wall_shift_seconds.load(std::memory_order_relaxed);
  }
  return rc;
}

namespace {

using demi::testing::DemiPair;
using demi::testing::MakePair;
using demi::testing::Ms;

// The keepalive's timer (a tick every 750 ms) wakes a sleeping wait, which
// then looks at the clock: a wait timed on the wall clock would see a step
// forward there. Set here, before demi_init, whatever the environment says.
const bool kKeepaliveSet = setenv("DEMI_KEEPALIVE_MS", "3000", 1) == 0;

const auto* const kInit = ::testing::AddGlobalTestEnvironment(
    new demi::testing::DemiInitEnvironment(/*pool_limit_mb=*/64));

constexpr int64_t kHour = 3600;

// The wait calls, each on a pop that nothing will complete.
enum class Call { kWait, kWaitAny, kWaitNextN };

const char* Name(Call call) {
  switch (call) {
    case Call::kWait:
      return "demi_wait";
    case Call::kWaitAny:
      return "demi_wait_any";
    case Call::kWaitNextN:
      return "demi_wait_next_n";
  }
  return "?";
}

int WaitOnce(Call call, demi_qtoken_t qt, int timeout_ms) {
  timespec timeout = Ms(timeout_ms);
  demi_qresult_t qr = {};
  switch (call) {
    case Call::kWait:
      return demi_wait(&qr, qt, &timeout);
    case Call::kWaitAny: {
      int offset = -1;
      return demi_wait_any(&qr, &offset, &qt, 1, &timeout);
    }
    case Call::kWaitNextN: {
      int n = -1;
      return demi_wait_next_n(&qr, 1, &n, &timeout);
    }
  }
  return -1;
}

// One wait of `timeout_ms` on `pop` with the wall clock stepped by `step`
// seconds 300 ms in (the steps add up: each is a step from the last).
struct Attempt {
  int err;
  double seconds;
  bool stepped;  // Before the wait returned.
};

// A wait that takes longer than a minute has followed the wall clock back:
// it cannot be interrupted, so the test program ends with a failure.
Attempt WaitWithStep(Call call, demi_qtoken_t pop, int64_t step,
                     int timeout_ms) {
  auto start = std::chrono::steady_clock::now();
  std::atomic<bool> stepped{false};
  std::thread stepper([step, &stepped] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    wall_shift_seconds += step;
    stepped = true;
  });
  // The wait runs here, in the libOS's thread; a watchdog ends the
  // program if it never returns.
  std::mutex mu;
  std::condition_variable returned;
  bool done = false;
  std::thread watchdog([&] {
    std::unique_lock<std::mutex> lock(mu);
    if (!returned.wait_for(lock, std::chrono::seconds(60),
                           [&] { return done; })) {
      std::fprintf(stderr,
                   "FAILED: %s with a %d ms timeout was still waiting after "
                   "60 s, the wall clock stepped by %lld s\n",
                   Name(call), timeout_ms, static_cast<long long>(step));
      std::_Exit(1);
    }
  });
  Attempt attempt;
  attempt.err = WaitOnce(call, pop, timeout_ms);
  attempt.stepped = stepped;
  {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
  }
  returned.notify_one();
  watchdog.join();
  stepper.join();
  attempt.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return attempt;
}

// Waits on a pop of an idle connection through a step of the wall clock;
// expects ETIMEDOUT after the timeout (within a generous bound, as the VM
// runs slowly). A wait that ended before the stepper thread ran (a VM
// paused, a busy vCPU) tested nothing: it is made again, up to 3 times.
void WaitThroughStep(Call call, int64_t step, int timeout_ms) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  demi_qtoken_t pop = 0;
  ASSERT_EQ(demi_pop(&pop, pair.client), 0);
  Attempt attempt = WaitWithStep(call, pop, step, timeout_ms);
  for (int again = 0; !attempt.stepped && again < 2; ++again) {
    std::fprintf(stderr, "the wall clock stepped after the wait: again\n");
    attempt = WaitWithStep(call, pop, step, timeout_ms);
  }
  EXPECT_TRUE(attempt.stepped) << "the wall clock stepped after the wait";
  EXPECT_EQ(attempt.err, ETIMEDOUT);
  EXPECT_GE(attempt.seconds, timeout_ms / 1000.0 - 0.05);
  EXPECT_LT(attempt.seconds, timeout_ms / 1000.0 + 20);
  // The pop is still pending, and the connection still carries data.
  std::string sent = "after the step";
  demi_qtoken_t push = demi::testing::PushString(pair.server, sent);
  demi_qresult_t qr = demi::testing::WaitOrFail(push);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_PUSH);
  qr = demi::testing::WaitOrFail(pop);
  ASSERT_EQ(qr.qr_opcode, DEMI_OPC_POP);
  EXPECT_EQ(demi::testing::SgaBytes(qr.qr_value.sga), sent);
  EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
  demi::testing::ClosePair(pair);
}

class ClockStepTest : public ::testing::TestWithParam<Call> {};

TEST_P(ClockStepTest, AWaitEndsOnTimeWhenTheWallClockStepsBack) {
  ASSERT_TRUE(kKeepaliveSet);
  WaitThroughStep(GetParam(), -kHour, 2000);
}

TEST_P(ClockStepTest, AWaitRunsItsTimeWhenTheWallClockStepsForward) {
  ASSERT_TRUE(kKeepaliveSet);
  WaitThroughStep(GetParam(), kHour, 2000);
}

INSTANTIATE_TEST_SUITE_P(
    EveryWait, ClockStepTest,
    ::testing::Values(Call::kWait, Call::kWaitAny, Call::kWaitNextN),
    [](const ::testing::TestParamInfo<Call>& info) {
      return std::string(Name(info.param)).substr(5);  // Without "demi_".
    });

}  // namespace
