// The RC setup path of RdmaLibOs, as the application calls it: bind,
// listen, accept and connect, and a connection's QP. What rdma_cm answers
// is handled in rdma_libos_cm_events.cc.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "demi/cm_context.h"
#include "demi/rdma_libos.h"
#include "rdma/cm_connection.h"
#include "rdma/log.h"
#include "rdma/status_util.h"
#include "rdma/verbs_call.h"

namespace demi {

using rdma::ErrnoError;

absl::Status RdmaLibOs::Bind(int qd, const sockaddr* addr, socklen_t size) {
  DEMI_ASSIGN_OR_RETURN(Queue * queue, queues_.Find(qd));
  if (size != sizeof(sockaddr_in)) return ErrnoError(EINVAL, "address size");
  sockaddr_in local;
  std::memcpy(&local, addr, sizeof(local));
  if (local.sin_family != AF_INET) return ErrnoError(ENOTSUP, "family");
  if (queue->datagram() != nullptr) return BindDatagram(*queue, local);
  if (queue->kind() != Queue::Kind::kSocket || queue->bound ||
      queue->id != nullptr) {
    return ErrnoError(EINVAL, "already bound or in use");
  }
  if (local.sin_port == 0) return ErrnoError(ENOTSUP, "port 0");
  if (queue->reuse_port) {
    DEMI_ASSIGN_OR_RETURN(queue->share, SharedListener::Bind(local));
    queue->bound = true;
    queue->local = local;
    return absl::OkStatus();
  }
  DEMI_ASSIGN_OR_RETURN(queue->id, BindStreamId(qd, local));
  queue->bound = true;
  queue->local = local;
  return absl::OkStatus();
}

absl::StatusOr<rdma::CmIdPtr> RdmaLibOs::BindStreamId(int qd,
                                                      sockaddr_in local) {
  DEMI_ASSIGN_OR_RETURN(rdma::CmIdPtr id,
                        rdma::CreateCmId(cm_channel_.get(), ContextOf(qd)));
  if (rdma_bind_addr(id.get(), reinterpret_cast<sockaddr*>(&local)) != 0) {
    int err = errno;
    return ErrnoError(err == ENODEV ? EADDRNOTAVAIL : err, "rdma_bind_addr");
  }
  return id;
}

absl::Status RdmaLibOs::Listen(int qd, int backlog) {
  ExpectCmEvents();
  DEMI_ASSIGN_OR_RETURN(Queue * queue, queues_.Find(qd));
  if (backlog < 1 || backlog > SOMAXCONN) {
    return ErrnoError(EINVAL, "backlog");
  }
  switch (queue->kind()) {
    case Queue::Kind::kSocket:
      break;
    case Queue::Kind::kListener:
      return ErrnoError(EADDRINUSE, "already listening");
    case Queue::Kind::kDatagram:
      return ErrnoError(EOPNOTSUPP, "a datagram socket");
    case Queue::Kind::kConnection:
      return ErrnoError(
          queue->connection()->connect_qt != 0 ? EADDRINUSE : EISCONN,
          "a connection");
  }
  if (!queue->bound) return ErrnoError(EDESTADDRREQ, "not bound");
  if (queue->share == nullptr) {
    DEMI_RETURN_IF_ERROR(
        rdma::CheckCm(rdma_listen(queue->id.get(), backlog), "rdma_listen"));
    queue->state.emplace<ListenerState>().backlog = backlog;
    return absl::OkStatus();
  }
  // Joined with the address of its load, which must not move: the state
  // is made in place first, and undone if the join fails.
  ListenerState& listener = queue->state.emplace<ListenerState>();
  listener.backlog = backlog;
  // Watched once, however many of this thread's listeners share it.
  bool watched = std::find(shares_.begin(), shares_.end(),
                           queue->share.get()) != shares_.end();
  absl::Status joined =
      watched ? absl::OkStatus() : sleep_->Watch(queue->share->fd());
  if (joined.ok()) {
    joined = queue->share->Join(inbox_.get(), qd, backlog, &listener.load);
    if (!joined.ok() && !watched) sleep_->Unwatch(queue->share->fd());
  }
  if (!joined.ok()) {
    queue->state.emplace<SocketState>();
    return joined;
  }
  shares_.push_back(queue->share.get());
  return absl::OkStatus();
}

absl::StatusOr<demi_qtoken_t> RdmaLibOs::Accept(int qd) {
  ExpectCmEvents();
  DEMI_ASSIGN_OR_RETURN(Queue * queue, queues_.Find(qd));
  ListenerState* listener = queue->listener();
  if (listener == nullptr) return ErrnoError(EINVAL, "not listening");
  demi_qtoken_t qt = tokens_.Add(qd, DEMI_OPC_ACCEPT);
  listener->accepts.push_back(qt);
  MatchAccepts(*listener);
  return qt;
}

void RdmaLibOs::MatchAccepts(ListenerState& listener) {
  while (!listener.accepts.empty() && !listener.ready.empty()) {
    int qd = listener.ready.front();
    listener.ready.pop_front();
    Queue* queue = queues_.Get(qd);
    if (queue == nullptr) continue;
    // Now the application's.
    queue->unclaimed = false;
    queue->connection()->listener_qd = -1;
    tokens_.CompleteAccept(listener.accepts.front(), qd,
                           queue->conn()->peer_addr);
    listener.accepts.pop_front();
  }
  listener.PublishLoad();
}

absl::StatusOr<demi_qtoken_t> RdmaLibOs::Connect(int qd, const sockaddr* addr,
                                                 socklen_t size) {
  ExpectCmEvents();
  DEMI_ASSIGN_OR_RETURN(Queue * queue, queues_.Find(qd));
  if (size != sizeof(sockaddr_in)) return ErrnoError(EINVAL, "address size");
  sockaddr_in remote;
  std::memcpy(&remote, addr, sizeof(remote));
  if (remote.sin_family != AF_INET) return ErrnoError(ENOTSUP, "family");
  switch (queue->kind()) {
    case Queue::Kind::kSocket:
      break;
    case Queue::Kind::kDatagram:
      return ConnectDatagram(*queue, remote);
    case Queue::Kind::kListener:
      return ErrnoError(EOPNOTSUPP, "listening");
    case Queue::Kind::kConnection:
      return ErrnoError(
          queue->connection()->connect_qt != 0 ? EINPROGRESS : EISCONN,
          "a connection");
  }
  if (queue->share != nullptr) {
    // Its port is the shared listener's: no connection can have it.
    return ErrnoError(EADDRINUSE, "bound with SO_REUSEPORT");
  }
  if (queue->id == nullptr) {
    DEMI_ASSIGN_OR_RETURN(queue->id,
                          rdma::CreateCmId(cm_channel_.get(), ContextOf(qd)));
  }
  demi_qtoken_t qt = tokens_.Add(qd, DEMI_OPC_CONNECT);
  queue->state.emplace<ConnectionState>().connect_qt = qt;
  absl::Status status = rdma::ResolveAddr(
      queue->id.get(), queue->bound ? &queue->local : nullptr, remote);
  // No route to the address: the operation fails, as a TCP connect would.
  if (!status.ok()) HandleConnectFailure(*queue, EHOSTUNREACH);
  return qt;
}

absl::Status RdmaLibOs::SetupConnection(Queue& queue) {
  ConnectionState& connection = *queue.connection();
  ThreadDevice* device = DeviceOf(queue.id->verbs);
  if (device == nullptr) return ErrnoError(ENODEV, "unknown device");
  // Room for every send work request of the QP in its CQ; receives come
  // from the device's SRQ and complete on its own CQ.
  DEMI_ASSIGN_OR_RETURN(ibv_cq * send_cq,
                        device->send_cqs->Reserve(kSendDepth));
  rdma::QpCaps caps;
  caps.max_send_wr = kSendDepth;
  caps.max_send_sge = device->max_send_sge;
  caps.max_inline_data = 128;
  absl::StatusOr<SharedReceive*> chosen = ReceiveFor(*device);
  if (!chosen.ok()) {
    device->send_cqs->Release(send_cq, kSendDepth);
    return chosen.status();
  }
  SharedReceive& receive = **chosen;
  absl::StatusOr<rdma::CmQpPtr> qp = rdma::CreateRcQp(
      queue.id.get(), device->pd, send_cq, receive.cq(), receive.srq(), &caps);
  if (!qp.ok()) {
    // Some devices inline less, or nothing.
    caps.max_inline_data = 0;
    qp = rdma::CreateRcQp(queue.id.get(), device->pd, send_cq, receive.cq(),
                          receive.srq(), &caps);
  }
  if (!qp.ok()) {
    device->send_cqs->Release(send_cq, kSendDepth);
    return qp.status();
  }
  connection.qp = std::move(qp).value();
  connection.device = device;
  connection.send_cq = send_cq;
  connection.conn = std::make_unique<Connection>(
      queue.qd, EnvFor(device, &receive), connection.qp->qp,
      caps.max_inline_data, caps.max_send_sge);
  conn_by_qpn_[connection.qp->qp->qp_num] = connection.conn.get();
  last_conn_ = nullptr;
  return connection.conn->Start();
}

void RdmaLibOs::AcceptRequest(Queue& listener_queue, rdma::CmIdPtr id,
                              const std::string& private_data) {
  ListenerState& listener = *listener_queue.listener();
  absl::StatusOr<ConnectData> peer = ParseConnectData(absl::MakeConstSpan(
      reinterpret_cast<const std::byte*>(private_data.data()),
      private_data.size()));
  if (!peer.ok() ||
      static_cast<int>(listener.ready.size()) + listener.in_setup >=
          listener.backlog) {
    rdma::Reject(id.get()).IgnoreError();
    return;
  }
  Queue* queue = queues_.Add<ConnectionState>();
  // As on Linux, an accepted socket starts with its listener's options.
  queue->linger = listener_queue.linger;
  queue->reuse_port = listener_queue.reuse_port;
  queue->unclaimed = true;
  queue->connection()->listener_qd = listener_queue.qd;
  queue->connection()->peer_data = *peer;
  id->context = ContextOf(queue->qd);
  queue->id = std::move(id);
  absl::Status status = SetupConnection(*queue);
  if (status.ok()) {
    status = rdma::Accept(queue->id.get(), queue->conn()->LocalConnectData(),
                          queue->connection()->device->read_depth);
  }
  if (!status.ok()) {
    DEMI_LOG(WARNING) << "accept failed: " << status;
    rdma::Reject(queue->id.get()).IgnoreError();
    Destroy(queue->qd);
    return;
  }
  ++listener.in_setup;
  listener.PublishLoad();
}

void RdmaLibOs::LeaveShare(Queue& queue) {
  if (queue.share == nullptr) return;
  if (queue.listener() != nullptr) {
    queue.share->Leave(inbox_.get(), queue.qd);
    shares_.erase(std::find(shares_.begin(), shares_.end(), queue.share.get()));
    if (std::find(shares_.begin(), shares_.end(), queue.share.get()) ==
        shares_.end()) {
      sleep_->Unwatch(queue.share->fd());
    }
  }
  queue.share.reset();
}

}  // namespace demi
