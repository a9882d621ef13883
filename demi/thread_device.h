// A thread's part of one RDMA device: what its libOS adds to the process's
// device and PD (SharedDevices): shared receive queues, send CQs, and the
// counters its progress engine keeps for them.
#ifndef DEMI_DEMI_THREAD_DEVICE_H_
#define DEMI_DEMI_THREAD_DEVICE_H_

#include <infiniband/verbs.h>

#include <cstdint>
#include <memory>
#include <optional>
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
  uint8_t read_depth = 1;          // SharedDevice's.
  bool binds_after_drain = false;  // SharedDevice's.
  // The pool ran dry refilling the SRQ: retried with the timers, not on
  // every pass (a failed allocation tries to register memory).
  bool refill_dry = false;
  // A poll of one of its CQs failed (and was logged, once).
  bool cq_failed = false;
  // The CQs Sleep armed last, by how many there were of each kind (the
  // counts only grow, so one made since shows); reset when the device's
  // channel has had an event. While it still matches, every CQ of the
  // device is armed and Sleep need not arm them again: a system call each
  // on soft-RoCE, several per sleep.
  struct ArmedCqs {
    size_t receives = 0;
    uint64_t send_cqs = 0;   // CqPool::created().
    uint64_t datagrams = 0;  // RdmaLibOs::datagrams_made_.
    bool operator==(const ArmedCqs& other) const {
      return receives == other.receives && send_cqs == other.send_cqs &&
             datagrams == other.datagrams;
    }
  };
  std::optional<ArmedCqs> armed;

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
