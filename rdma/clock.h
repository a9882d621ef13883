// The clock of every timeout and timer in the library: CLOCK_MONOTONIC.
// The wall clock (absl::Now) is stepped by NTP, an administrator or a VM's
// resume: a step back would stretch a one-second wait by the step, a step
// forward would expire waits, lingers and a datagram socket's watch at
// once. Times from here are for comparing with each other only.
#ifndef DEMI_RDMA_CLOCK_H_
#define DEMI_RDMA_CLOCK_H_

#include <time.h>

#include "absl/time/time.h"

namespace demi::rdma {

inline absl::Time MonotonicNow() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return absl::TimeFromTimespec(now);
}

}  // namespace demi::rdma

#endif  // DEMI_RDMA_CLOCK_H_
