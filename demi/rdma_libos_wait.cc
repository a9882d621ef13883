// The wait calls of RdmaLibOs: each drives the progress engine (Poll)
// until its result is in or its time is up. No Status, no strings here:
// a wait that times out is routine, and returns a plain errno.
#include <cerrno>

#include "demi/rdma_libos.h"
#include "rdma/clock.h"

namespace demi {
namespace {

// A zero timeout makes one pass (wait.h).
bool ZeroTimeout(const timespec* timeout) {
  return timeout != nullptr && timeout->tv_sec == 0 && timeout->tv_nsec == 0;
}

// A wait's clock: its deadline (a NULL timeout is forever) and its spin
// budget (the libOS's, DEMI_SPIN_US). Reading the time costs more than a
// progress pass, and most waits end within a few passes: so the clock is
// first read after kClockInterval passes, the deadline and the budget
// counting from then (a few microseconds late at most), and then every
// kClockInterval-th pass; with no spin budget, at every pass. A zero
// timeout expires at once.
//
// Connects and accepts spin too, though rdma_cm ends them in milliseconds:
// their events come in bursts (an address, then a route, then a request on
// the same host), and a sleep and a wake between them cost more than the
// budget. 1,000 sequential connects on rxe, 27 rounds alternating with a
// build whose setup waits slept at once: faster in 23 rounds.
class WaitClock {
 public:
  enum class Step { kSpin, kSleep, kExpired };

  // `timeout` (borrowed) is read at the first clock read.
  WaitClock(const timespec* timeout, absl::Duration spin)
      : timeout_(timeout),
        spin_(spin),
        interval_(ZeroTimeout(timeout) || spin == absl::ZeroDuration()
                      ? 1
                      : kClockInterval),
        until_clock_(interval_) {}

  // What the wait does after its latest pass. Inline, and a countdown
  // alone between clock reads: a spinning wait runs it at every pass.
  Step Next() {
    if (--until_clock_ != 0) return Step::kSpin;
    until_clock_ = interval_;
    return ReadClock();
  }
  absl::Time deadline() const { return deadline_; }
  // After a sleep: something happened, so spinning pays again.
  void Woke() { spin_until_ = rdma::MonotonicNow() + spin_; }

 private:
  static constexpr uint32_t kClockInterval = 32;

  Step ReadClock() {
    if (ZeroTimeout(timeout_)) return Step::kExpired;
    absl::Time now = rdma::MonotonicNow();
    if (!started_) {
      started_ = true;
      deadline_ = timeout_ == nullptr
                      ? absl::InfiniteFuture()
                      : now + absl::DurationFromTimespec(*timeout_);
      spin_until_ = now + spin_;
    }
    if (now >= deadline_) return Step::kExpired;
    return now >= spin_until_ ? Step::kSleep : Step::kSpin;
  }

  const timespec* timeout_;
  const absl::Duration spin_;
  const uint32_t interval_;  // Passes from one clock read to the next.
  uint32_t until_clock_;     // Passes left until the next.
  bool started_ = false;
  absl::Time deadline_;
  absl::Time spin_until_;
};

}  // namespace

int RdmaLibOs::WaitSlow(demi_qresult_t* qr_out, demi_qtoken_t qt,
                        const timespec* timeout) {
  if (!ValidTimeout(timeout) || !tokens_.Contains(qt)) return EINVAL;
  // Most results the inline front found missing come in the next pass,
  // which needs no clock.
  Poll();
  if (tokens_.TakeInRing(qt, qr_out)) return 0;
  if (ZeroTimeout(timeout)) return tokens_.Take(qt, qr_out) ? 0 : ETIMEDOUT;
  return WaitLoop(qr_out, qt, timeout);
}

int RdmaLibOs::WaitLoop(demi_qresult_t* qr_out, demi_qtoken_t qt,
                        const timespec* timeout) {
  // In already, but out of the ring or with done_order_ to tidy.
  if (tokens_.Take(qt, qr_out)) return 0;
  WaitClock clock(timeout, spin_);
  while (true) {
    switch (clock.Next()) {
      case WaitClock::Step::kExpired:
        // One more pass at the deadline.
        Poll();
        return tokens_.Take(qt, qr_out) ? 0 : ETIMEDOUT;
      case WaitClock::Step::kSleep:
        Sleep(clock.deadline(), [&] { return tokens_.IsDone(qt); });
        clock.Woke();
        break;
      case WaitClock::Step::kSpin:
        Poll();
        break;
    }
    if (tokens_.Take(qt, qr_out)) return 0;
  }
}

bool RdmaLibOs::TakeAny(demi_qresult_t* qr_out, int* ready_offset,
                        const demi_qtoken_t* qts, int num_qts) {
  for (int i = 0; i < num_qts; ++i) {
    if (tokens_.Take(qts[i], qr_out)) {
      *ready_offset = i;
      return true;
    }
  }
  return false;
}

int RdmaLibOs::WaitAny(demi_qresult_t* qr_out, int* ready_offset,
                       const demi_qtoken_t* qts, int num_qts,
                       const timespec* timeout) {
  if (!ValidTimeout(timeout) || num_qts < 0 ||
      (num_qts > 0 && qts == nullptr)) {
    return EINVAL;
  }
  for (int i = 0; i < num_qts; ++i) {
    if (!tokens_.Contains(qts[i])) return EINVAL;
  }
  // As WaitSlow: what is in, then the next pass, before any clock.
  if (TakeAny(qr_out, ready_offset, qts, num_qts)) return 0;
  Poll();
  if (TakeAny(qr_out, ready_offset, qts, num_qts)) return 0;
  if (ZeroTimeout(timeout)) return ETIMEDOUT;
  WaitClock clock(timeout, spin_);
  while (true) {
    WaitClock::Step step = clock.Next();
    if (step == WaitClock::Step::kSleep) {
      Sleep(clock.deadline(), [&] {
        for (int i = 0; i < num_qts; ++i) {
          if (tokens_.IsDone(qts[i])) return true;
        }
        return false;
      });
      clock.Woke();
    } else {
      Poll();
    }
    if (TakeAny(qr_out, ready_offset, qts, num_qts)) return 0;
    if (step == WaitClock::Step::kExpired) return ETIMEDOUT;
  }
}

int RdmaLibOs::WaitNextNSlow(demi_qresult_t* qr_out, int num_qrs,
                             int* num_qrs_out, const timespec* timeout) {
  if (!ValidTimeout(timeout) || num_qrs <= 0) return EINVAL;
  if (num_qrs == 1) {
    // As in WaitSlow: the next pass first, without a clock.
    Poll();
    if (tokens_.TakeNextDoneInRing(qr_out)) {
      *num_qrs_out = 1;
      return 0;
    }
    if (ZeroTimeout(timeout)) {
      *num_qrs_out = tokens_.TakeNextDone(qr_out) ? 1 : 0;
      return *num_qrs_out == 1 ? 0 : ETIMEDOUT;
    }
  }
  return WaitNextNLoop(qr_out, num_qrs, num_qrs_out, timeout);
}

int RdmaLibOs::WaitNextNLoop(demi_qresult_t* qr_out, int num_qrs,
                             int* num_qrs_out, const timespec* timeout) {
  WaitClock clock(timeout, spin_);
  int count = 0;
  bool last = false;
  while (true) {
    while (count < num_qrs && tokens_.TakeNextDone(&qr_out[count])) ++count;
    *num_qrs_out = count;
    if (count == num_qrs) return 0;
    if (last) return ETIMEDOUT;
    WaitClock::Step step = clock.Next();
    last = step == WaitClock::Step::kExpired;
    if (step == WaitClock::Step::kSleep) {
      Sleep(clock.deadline(), [&] { return tokens_.MayHaveDone(); });
      clock.Woke();
      continue;
    }
    Poll();
  }
}

}  // namespace demi
