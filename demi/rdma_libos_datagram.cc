// The datagram half of RdmaLibOs: SOCK_DGRAM sockets on UD queue pairs
// (datagram_socket.h). A datagram socket needs a bound address (which
// picks its device) before it can send or receive.
#include <cerrno>
#include <cstring>
#include <utility>

#include "demi/cm_context.h"
#include "demi/rdma_libos.h"
#include "rdma/log.h"
#include "rdma/status_util.h"
#include "rdma/verbs_call.h"

namespace demi {

using rdma::ErrnoError;

absl::Status RdmaLibOs::BindDatagram(Queue& queue, const sockaddr_in& local) {
  ExpectCmEvents();
  if (queue.dgram() != nullptr) return ErrnoError(EINVAL, "already bound");
  if (local.sin_addr.s_addr == htonl(INADDR_ANY)) {
    return ErrnoError(ENOTSUP, "a datagram socket binds to one device");
  }
  DEMI_ASSIGN_OR_RETURN(
      rdma::CmIdPtr id,
      rdma::CreateCmId(cm_channel_.get(), ContextOf(queue.qd), RDMA_PS_UDP));
  sockaddr_in addr = local;
  if (rdma_bind_addr(id.get(), reinterpret_cast<sockaddr*>(&addr)) != 0) {
    int err = errno;
    return ErrnoError(err == ENODEV ? EADDRNOTAVAIL : err, "rdma_bind_addr");
  }
  ThreadDevice* device = DeviceOf(id->verbs);
  if (device == nullptr) return ErrnoError(EADDRNOTAVAIL, "not an RDMA device");
  // Port 0: the port space picked one.
  std::memcpy(&addr, rdma_get_local_addr(id.get()), sizeof(addr));
  DatagramEnv env;
  env.pool = pool_.get();
  env.tokens = &tokens_;
  env.cm_channel = cm_channel_.get();
  env.pd = device->pd;
  env.device = device->index;
  env.channel = sleep_->channel(device->index);
  env.qd = queue.qd;
  env.poll_passes = &poll_passes_;
  absl::StatusOr<std::unique_ptr<DatagramSocket>> socket =
      DatagramSocket::Create(env, id.get(), addr);
  if (!socket.ok()) {
    int err = rdma::ErrnoOf(socket.status());
    return ErrnoError(err == ENOMEM ? ENOBUFS : err, "datagram socket");
  }
  queue.id = std::move(id);
  queue.datagram()->socket = std::move(socket).value();
  queue.bound = true;
  queue.local = addr;
  datagrams_.push_back(queue.dgram());
  ++datagrams_made_;  // Its CQs are not armed yet.
  return absl::OkStatus();
}

absl::StatusOr<demi_qtoken_t> RdmaLibOs::ConnectDatagram(
    Queue& queue, const sockaddr_in& remote) {
  // demi_pushto's checks, in its order: a destination no datagram can go
  // to is refused here, not by every demi_push after it.
  if (remote.sin_port == 0 || remote.sin_addr.s_addr == htonl(INADDR_ANY)) {
    return ErrnoError(EINVAL, "destination");
  }
  DatagramSocket* socket = queue.dgram();
  if (socket == nullptr) return ErrnoError(EDESTADDRREQ, "not bound");
  socket->has_peer = true;
  socket->peer = remote;
  demi_qtoken_t qt = tokens_.Add(queue.qd, DEMI_OPC_CONNECT);
  tokens_.Succeed(qt, DEMI_OPC_CONNECT);
  return qt;
}

absl::Status RdmaLibOs::GetDatagramStats(Queue& queue, void* optval,
                                         socklen_t* optlen) {
  if (optval == nullptr || optlen == nullptr ||
      *optlen < sizeof(demi_datagram_stats_t)) {
    return ErrnoError(EINVAL, "option buffer");
  }
  demi_datagram_stats_t out = {};
  if (queue.dgram() != nullptr) {
    DatagramStats s = queue.dgram()->stats();
    out.sent = s.sent;
    out.received = s.received;
    out.dropped_malformed = s.malformed;
    out.dropped_queue_full = s.queue_full;
    out.dropped_no_buffer = s.reassembly.no_memory;
    out.dropped_reassembly_timeout = s.reassembly.timed_out;
    out.dropped_reassembly_evicted = s.reassembly.evicted;
    out.dropped_reassembly_invalid = s.reassembly.inconsistent;
  }
  std::memcpy(optval, &out, sizeof(out));
  *optlen = sizeof(out);
  return absl::OkStatus();
}

}  // namespace demi
