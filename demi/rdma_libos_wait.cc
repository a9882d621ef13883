// The wait calls of RdmaLibOs: each drives the progress engine (Poll)
// until its result is in or its time is up.
#include <cerrno>

#include "demi/rdma_libos.h"
#include "rdma/status_util.h"

namespace demi {
namespace {

using rdma::ErrnoError;

// A wait's deadline: NULL is forever.
absl::Time DeadlineOf(const timespec* timeout) {
  if (timeout == nullptr) return absl::InfiniteFuture();
  return absl::Now() + absl::DurationFromTimespec(*timeout);
}

// A wait's clock: reading the time costs more than a progress pass under
// emulation, so after the first look only every kClockInterval-th pass
// looks again.
class WaitClock {
 public:
  explicit WaitClock(const timespec* timeout)
      : deadline_(DeadlineOf(timeout)) {}
  bool Expired() {
    if (deadline_ == absl::InfiniteFuture()) return false;
    if (passes_++ % kClockInterval != 0) return false;
    return absl::Now() >= deadline_;
  }

 private:
  static constexpr uint32_t kClockInterval = 32;
  absl::Time deadline_;
  uint32_t passes_ = 0;
};

absl::Status CheckTimeout(const timespec* timeout) {
  if (timeout != nullptr && (timeout->tv_sec < 0 || timeout->tv_nsec < 0 ||
                             timeout->tv_nsec >= 1000000000)) {
    return ErrnoError(EINVAL, "bad timeout");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RdmaLibOs::Wait(demi_qresult_t* qr_out, demi_qtoken_t qt,
                             const timespec* timeout) {
  DEMI_RETURN_IF_ERROR(CheckTimeout(timeout));
  if (!tokens_.Contains(qt)) return ErrnoError(EINVAL, "unknown token");
  WaitClock clock(timeout);
  while (true) {
    if (absl::optional<demi_qresult_t> result = tokens_.Take(qt)) {
      *qr_out = *result;
      return absl::OkStatus();
    }
    if (clock.Expired()) {
      // A zero timeout still polls once.
      Poll();
      if (absl::optional<demi_qresult_t> result = tokens_.Take(qt)) {
        *qr_out = *result;
        return absl::OkStatus();
      }
      return ErrnoError(ETIMEDOUT, "wait");
    }
    Poll();
  }
}

absl::Status RdmaLibOs::WaitAny(demi_qresult_t* qr_out, int* ready_offset,
                                const demi_qtoken_t* qts, int num_qts,
                                const timespec* timeout) {
  DEMI_RETURN_IF_ERROR(CheckTimeout(timeout));
  if (num_qts < 0 || (num_qts > 0 && qts == nullptr)) {
    return ErrnoError(EINVAL, "token array");
  }
  for (int i = 0; i < num_qts; ++i) {
    if (!tokens_.Contains(qts[i])) return ErrnoError(EINVAL, "unknown token");
  }
  WaitClock clock(timeout);
  bool last = false;
  while (true) {
    for (int i = 0; i < num_qts; ++i) {
      if (absl::optional<demi_qresult_t> result = tokens_.Take(qts[i])) {
        *qr_out = *result;
        *ready_offset = i;
        return absl::OkStatus();
      }
    }
    if (last) return ErrnoError(ETIMEDOUT, "wait_any");
    last = clock.Expired();
    Poll();
  }
}

absl::Status RdmaLibOs::WaitNextN(demi_qresult_t* qr_out, int num_qrs,
                                  int* num_qrs_out, const timespec* timeout) {
  DEMI_RETURN_IF_ERROR(CheckTimeout(timeout));
  if (num_qrs <= 0) return ErrnoError(EINVAL, "result count");
  WaitClock clock(timeout);
  int count = 0;
  bool last = false;
  while (true) {
    while (count < num_qrs) {
      absl::optional<demi_qresult_t> result = tokens_.TakeNextDone();
      if (!result.has_value()) break;
      qr_out[count++] = *result;
    }
    *num_qrs_out = count;
    if (count == num_qrs) return absl::OkStatus();
    if (last) return ErrnoError(ETIMEDOUT, "wait_next_n");
    last = clock.Expired();
    Poll();
  }
}

}  // namespace demi
