// Reading rdma_cm events: each event is copied and acked at once, because an
// unacked event makes rdma_destroy_id on its id wait forever.
#ifndef DEMI_RDMA_CM_EVENT_H_
#define DEMI_RDMA_CM_EVENT_H_

#include <rdma/rdma_cma.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"

namespace demi::rdma {

// What an rdma_cm event said, copied out of the acked event.
struct CmEvent {
  rdma_cm_event_type type = RDMA_CM_EVENT_ADDR_ERROR;
  // The event's status: for REJECTED the reject reason, for errors an errno
  // (negative, as librdmacm reports it).
  int status = 0;
  // The id the event is about (borrowed). For CONNECT_REQUEST it is a new id
  // that the caller owns from now on: accept it or destroy it.
  rdma_cm_id* id = nullptr;
  // For CONNECT_REQUEST: the listening id the request came in on.
  rdma_cm_id* listen_id = nullptr;
  // The connection's private data (CONNECT_REQUEST, ESTABLISHED, REJECTED).
  // The transport may pad it beyond what the peer sent.
  std::string private_data;
  // For ESTABLISHED on a UDP-port-space id (a resolved datagram
  // destination): how to reach the remote QP.
  ibv_ah_attr ah_attr = {};
  uint32_t remote_qpn = 0;
  uint32_t remote_qkey = 0;
};

// Returns the next event on `channel`, which must be non-blocking, or
// nullopt when none is waiting.
absl::StatusOr<absl::optional<CmEvent>> PollCmEvent(
    rdma_event_channel* channel);

// Waits up to `timeout` for the next event on `channel` (blocking or not).
// DEADLINE_EXCEEDED (ETIMEDOUT) when none arrives in time.
absl::StatusOr<CmEvent> WaitCmEvent(rdma_event_channel* channel,
                                    absl::Duration timeout);

}  // namespace demi::rdma

#endif  // DEMI_RDMA_CM_EVENT_H_
