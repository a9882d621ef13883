// A thread's part of one RDMA device: what its libOS adds to the process's
// device and PD (SharedDevices): shared receive queues, send CQs, and the
// counters its progress engine keeps for them.
#ifndef DEMI_DEMI_THREAD_DEVICE_H_
#define DEMI_DEMI_THREAD_DEVICE_H_

#include <infiniband/verbs.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "demi/cq_pool.h"
#include "demi/shared_receive.h"

namespace demi {

// Not thread-safe; owned by RdmaLibOs.
struct ThreadDevice {
  ibv_context* context = nullptr;  // Borrowed from librdmacm.
  int index = 0;                   // In the libOS's devices (and SgaPool's).
  ibv_pd* pd = nullptr;            // The process's (SharedDevices).
  // Its shared receive queues: the first of kEagerBufferSize buffers, the
  // rest of kSmallBufferSize, each added when the ones before are full
  // (see kFullBufferConnections). Never removed before the libOS goes: an
  // empty one costs its spare buffers.
  std::vector<std::unique_ptr<SharedReceive>> receives;
  std::unique_ptr<CqPool> send_cqs;
  // Signalled send requests in flight on the device's QPs: while there
  // are none, a pass polls the send CQs only every kIdleSendPollInterval
  // (a failed unsignalled request completes too, and is found then).
  uint32_t signaled_sends = 0;
  uint32_t max_send_sge = 1;
  bool binds_after_drain = false;  // SharedDevice's.
  // The pool ran dry refilling the SRQ: retried with the timers, not on
  // every pass (a failed allocation tries to register memory).
  bool refill_dry = false;
  // A poll of one of its CQs failed (and was logged, once).
  bool cq_failed = false;

  // Whether connections wait for buffers to back their credits.
  bool ReceiveWaiting() const {
    for (const auto& receive : receives) {
      if (receive->HasWaiting()) return true;
    }
    return false;
  }
};

}  // namespace demi

#endif  // DEMI_DEMI_THREAD_DEVICE_H_
