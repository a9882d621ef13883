// The wait calls of RdmaLibOs: each drives the progress engine (Poll)
// until its result is in or its time is up. No Status, no strings here:
// a wait that times out is routine, and returns a plain errno.
#include <cerrno>

#include "demi/rdma_libos.h"

namespace demi {
namespace {

// A wait's clock (a NULL timeout is forever). Reading the time costs more
// than a progress pass, and most waits end within a few passes: so the
// clock is first read after kClockInterval passes, the deadline counting
// from then (a few microseconds late at most), and then every
// kClockInterval-th pass. A zero timeout expires at once.
class WaitClock {
 public:
  // `timeout` (borrowed) is read again at the first clock read.
  explicit WaitClock(const timespec* timeout) : timeout_(timeout) {}
  bool Expired() {
    if (timeout_ == nullptr) return false;
    if (timeout_->tv_sec == 0 && timeout_->tv_nsec == 0) return true;
    if (++passes_ % kClockInterval != 0) return false;
    absl::Time now = absl::Now();
    if (passes_ == kClockInterval) {
      deadline_ = now + absl::DurationFromTimespec(*timeout_);
    }
    return now >= deadline_;
  }

 private:
  static constexpr uint32_t kClockInterval = 32;
  const timespec* timeout_;
  absl::Time deadline_;
  uint32_t passes_ = 0;
};

bool ValidTimeout(const timespec* timeout) {
  return timeout == nullptr || (timeout->tv_sec >= 0 && timeout->tv_nsec >= 0 &&
                                timeout->tv_nsec < 1000000000);
}

}  // namespace

int RdmaLibOs::Wait(demi_qresult_t* qr_out, demi_qtoken_t qt,
                    const timespec* timeout) {
  if (!ValidTimeout(timeout) || !tokens_.Contains(qt)) return EINVAL;
  WaitClock clock(timeout);
  while (true) {
    if (tokens_.Take(qt, qr_out)) return 0;
    if (clock.Expired()) {
      // A zero timeout still polls once.
      Poll();
      return tokens_.Take(qt, qr_out) ? 0 : ETIMEDOUT;
    }
    Poll();
  }
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
  WaitClock clock(timeout);
  bool last = false;
  while (true) {
    for (int i = 0; i < num_qts; ++i) {
      if (tokens_.Take(qts[i], qr_out)) {
        *ready_offset = i;
        return 0;
      }
    }
    if (last) return ETIMEDOUT;
    last = clock.Expired();
    Poll();
  }
}

int RdmaLibOs::WaitNextN(demi_qresult_t* qr_out, int num_qrs, int* num_qrs_out,
                         const timespec* timeout) {
  if (!ValidTimeout(timeout) || num_qrs <= 0) return EINVAL;
  WaitClock clock(timeout);
  int count = 0;
  bool last = false;
  while (true) {
    while (count < num_qrs && tokens_.TakeNextDone(&qr_out[count])) ++count;
    *num_qrs_out = count;
    if (count == num_qrs) return 0;
    if (last) return ETIMEDOUT;
    last = clock.Expired();
    Poll();
  }
}

}  // namespace demi
