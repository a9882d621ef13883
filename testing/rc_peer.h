// One end of an RC connection built from the rdma/ wrappers, for tests that
// exercise those wrappers directly (below the libOS). Blocking and simple.
#ifndef DEMI_TESTING_RC_PEER_H_
#define DEMI_TESTING_RC_PEER_H_

#include <netinet/in.h>

#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rdma/cm_event.h"
#include "rdma/verbs_ptr.h"

namespace demi::testing {

// A connected (or listening) cm id with its own PD, CQ, QP and one
// registered buffer. Members are declared parents first, so the QP goes
// before the MR and CQ, those before the PD, and the PD before the id.
struct RcPeer {
  rdma::EventChannelPtr channel;
  rdma::CmIdPtr id;
  rdma::PdPtr pd;
  rdma::CqPtr cq;
  std::vector<std::byte> buffer;
  rdma::MrPtr mr;
  rdma::CmQpPtr qp;
  // Private data the peer sent while connecting.
  std::string peer_private_data;
  // Messages received while a helper waited for another completion (bytes
  // copied out, since the receive is posted again at once), oldest first.
  std::deque<std::string> received;
};

// The next rdma_cm event on `channel` within `timeout`, which must be of
// type `want` (ECONNREFUSED for a REJECTED instead, EPROTO for another).
absl::StatusOr<rdma::CmEvent> ExpectEvent(rdma_event_channel* channel,
                                          rdma_cm_event_type want,
                                          absl::Duration timeout);

// Buffer size of every RcPeer and queue depths of its QP.
inline constexpr size_t kRcPeerBufferSize = 64 * 1024;
inline constexpr int kRcPeerDepth = 16;

// A listening peer bound to `addr` (port 0 picks one; read it back with
// rdma_get_src_port(peer->id.get())).
absl::StatusOr<std::unique_ptr<RcPeer>> ListenRc(const sockaddr_in& addr);

// Waits for a connection request on `listener`, posts one receive of the
// whole buffer and accepts, sending `private_data`.
absl::StatusOr<std::unique_ptr<RcPeer>> AcceptRc(
    RcPeer& listener, const std::string& private_data, absl::Duration timeout);

// Connects to `server`, sending `private_data`; posts one receive of the
// whole buffer before connecting. Retries while the server is not listening
// yet (REJECTED, UNREACHABLE) until `timeout`.
absl::StatusOr<std::unique_ptr<RcPeer>> ConnectRc(
    const sockaddr_in& server, const std::string& private_data,
    absl::Duration timeout);

// As ConnectRc, but without the RTU: the QP can send and receive while the
// server's rdma_cm still waits for it, as when the RTU is lost. SendRtu
// sends it late.
absl::StatusOr<std::unique_ptr<RcPeer>> ConnectRcWithoutRtu(
    const sockaddr_in& server, const std::string& private_data,
    absl::Duration timeout);
absl::Status SendRtu(RcPeer& peer);

// Posts a receive of `length` bytes at `offset` of the buffer.
absl::Status PostRecv(RcPeer& peer, size_t offset, size_t length);

// Posts a signalled SEND of `length` bytes at `offset` of the buffer.
absl::Status PostSend(RcPeer& peer, size_t offset, size_t length);
// The same with immediate data `imm` (host order).
absl::Status PostSendWithImm(RcPeer& peer, size_t offset, size_t length,
                             uint32_t imm);

// Posts a signalled RDMA READ of `length` bytes from the peer's
// (`remote_addr`, `rkey`) into the buffer at `offset`.
absl::Status PostRead(RcPeer& peer, size_t offset, size_t length,
                      uint64_t remote_addr, uint32_t rkey);

// Waits for one work completion on the peer's CQ.
absl::StatusOr<ibv_wc> PollOne(RcPeer& peer, absl::Duration timeout);

}  // namespace demi::testing

#endif  // DEMI_TESTING_RC_PEER_H_
