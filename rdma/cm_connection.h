// The setup path of an RC connection over rdma_cm: listen, resolve, connect,
// accept, disconnect. Each call starts one step; its outcome arrives as an
// rdma_cm event on the id's channel (see cm_event.h).
//
// Active side:  ResolveAddr -> ADDR_RESOLVED -> ResolveRoute ->
//               ROUTE_RESOLVED -> (create QP) Connect -> ESTABLISHED.
// Passive side: Listen -> CONNECT_REQUEST (new id) -> (create QP) Accept ->
//               ESTABLISHED.
// Either side:  Disconnect -> DISCONNECTED.
#ifndef DEMI_RDMA_CM_CONNECTION_H_
#define DEMI_RDMA_CM_CONNECTION_H_

#include <netinet/in.h>
#include <rdma/rdma_cma.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace demi::rdma {

// How long address and route resolution may take.
inline constexpr int kResolveTimeoutMs = 5000;
// Transport retries before a send to a dead peer fails. Not 7: rxe takes 7
// as "retry forever" (as RNR does), so a vanished peer would never fail a
// send; with 6 a silent peer fails it after (6 + 1) ACK timeouts.
inline constexpr uint8_t kRetryCount = 6;
// Receiver-not-ready retries. Credits keep RNR from ever happening with an
// honest peer; 7 would mean "forever", so a peer that announces more
// receive buffers than it posts could wedge our sends for good. 6 is the
// most finite count: the send then fails (ETIMEDOUT) and the connection
// with it.
inline constexpr uint8_t kRnrRetryCount = 6;
// Local ACK timeout exponent: 4.096 us * 2^16 = 268 ms per try, so a dead
// peer is detected after about (kRetryCount + 1) * 268 ms = 1.9 s of
// silence. Shorter (67 ms) failed live connections between two emulated
// VMs under load once retries became finite.
inline constexpr uint8_t kAckTimeout = 16;
// Largest private data an RC connect or accept can carry over rdma_cm.
inline constexpr size_t kMaxPrivateData = 56;

// Binds `id` to `addr` and listens with `backlog`.
absl::Status Listen(rdma_cm_id* id, const sockaddr_in& addr, int backlog);

// Starts resolving `dst` to a device and port (event: ADDR_RESOLVED or
// ADDR_ERROR). `src` may be null.
absl::Status ResolveAddr(rdma_cm_id* id, const sockaddr_in* src,
                         const sockaddr_in& dst);

// Starts resolving the route of `id` (event: ROUTE_RESOLVED or ROUTE_ERROR),
// after setting the ACK timeout.
absl::Status ResolveRoute(rdma_cm_id* id);

// Starts connecting the QP of `id` (event: ESTABLISHED, REJECTED or
// UNREACHABLE, CONNECT_ERROR), sending `private_data` (at most
// kMaxPrivateData bytes). `read_depth` is the number of RDMA READs each side
// may have outstanding against the other.
absl::Status Connect(rdma_cm_id* id, absl::string_view private_data,
                     uint8_t read_depth);

// Accepts the connection request on `id` (event: ESTABLISHED).
absl::Status Accept(rdma_cm_id* id, absl::string_view private_data,
                    uint8_t read_depth);

// Tells rdma_cm that the QP of `id`, accepted, has received data
// (IBV_EVENT_COMM_EST): the connection is established now, even if the
// peer's RTU was lost (event: ESTABLISHED, unless it came already).
absl::Status NotifyEstablished(rdma_cm_id* id);

// Rejects the connection request on `id`.
absl::Status Reject(rdma_cm_id* id);

// Starts tearing down the connection of `id` (event: DISCONNECTED); moves
// its QP to the error state, which flushes its outstanding work requests.
absl::Status Disconnect(rdma_cm_id* id);

// The largest read depth the device of `id` supports, at most `wanted`.
uint8_t ReadDepth(rdma_cm_id* id, uint8_t wanted);

}  // namespace demi::rdma

#endif  // DEMI_RDMA_CM_CONNECTION_H_
