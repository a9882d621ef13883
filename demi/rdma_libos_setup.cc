// The setup path of RdmaLibOs: connecting, accepting, closing, and the
// rdma_cm events that drive them.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "demi/rdma_libos.h"
#include "rdma/cm_connection.h"
#include "rdma/log.h"
#include "rdma/status_util.h"
#include "rdma/verbs_call.h"

namespace demi {
namespace {

using rdma::ErrnoError;

void* ContextOf(int qd) {
  return reinterpret_cast<void*>(static_cast<intptr_t>(qd));
}
int QdOf(const rdma_cm_id* id) {
  return static_cast<int>(reinterpret_cast<intptr_t>(id->context));
}

sockaddr_in PeerAddr(rdma_cm_id* id) {
  sockaddr_in addr = {};
  sockaddr* peer = rdma_get_peer_addr(id);
  if (peer != nullptr && peer->sa_family == AF_INET) {
    std::memcpy(&addr, peer, sizeof(addr));
  }
  return addr;
}

}  // namespace

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
  SharedReceive& receive = *device->receive;
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
  connection.conn =
      std::make_unique<Connection>(queue.qd, EnvFor(device), connection.qp->qp,
                                   caps.max_inline_data, caps.max_send_sge);
  conn_by_qpn_[connection.qp->qp->qp_num] = connection.conn.get();
  last_conn_ = nullptr;
  return connection.conn->Start();
}

bool RdmaLibOs::PollCmEvents() {
  bool any = false;
  for (SharedListener* share : shares_) any |= share->Poll();
  if (inbox_->MayHaveArrivals()) {
    any = true;
    for (Arrival& arrival : inbox_->TakeAll()) AcceptArrival(arrival);
  }
  while (true) {
    absl::StatusOr<absl::optional<rdma::CmEvent>> event =
        rdma::PollCmEvent(cm_channel_.get());
    if (!event.ok()) {
      DEMI_LOG(ERROR) << event.status();
      return any;
    }
    if (!event->has_value()) return any;
    any = true;
    HandleCmEvent(**event);
  }
}

void RdmaLibOs::HandleCmEvent(const rdma::CmEvent& event) {
  DEMI_LOG(DEBUG) << "cm event " << rdma_event_str(event.type) << " status "
                  << event.status << " qd " << QdOf(event.id);
  if (event.type == RDMA_CM_EVENT_CONNECT_REQUEST) {
    HandleConnectRequest(event);
    return;
  }
  Queue* found = queues_.Get(QdOf(event.id));
  if (found != nullptr && found->dgram() != nullptr) {
    found->dgram()->OnCmEvent(event);  // Its routes' resolvers.
    return;
  }
  // Only connections (and the husks of failed connects) resolve, connect
  // and disconnect: a listener's or a bound socket's id has nothing more.
  if (found == nullptr || found->connection() == nullptr ||
      found->id.get() != event.id) {
    return;
  }
  Queue& queue = *found;
  if (queue.closed) {
    // Still flushing, or gone from the wire already: only the end of the
    // connection matters now.
    if (queue.conn() == nullptr) return;
    if (event.type == RDMA_CM_EVENT_DISCONNECTED ||
        event.type == RDMA_CM_EVENT_DEVICE_REMOVAL) {
      HandleDisconnect(queue);
      queue.flushing = false;
    } else if (event.type == RDMA_CM_EVENT_ESTABLISHED) {
      // Closed while connecting: the peer learns at once.
      rdma::Disconnect(queue.id.get()).IgnoreError();
    }
    return;
  }
  switch (event.type) {
    case RDMA_CM_EVENT_ADDR_RESOLVED: {
      // Its errno (ENODEV for an address that resolves to the loopback,
      // 0.0.0.0 say) is not one the header lists: no route is what it is.
      absl::Status status = rdma::ResolveRoute(queue.id.get());
      if (!status.ok()) HandleConnectFailure(queue, EHOSTUNREACH);
      break;
    }
    case RDMA_CM_EVENT_ROUTE_RESOLVED: {
      absl::Status status = SetupConnection(queue);
      if (status.ok()) {
        status = rdma::Connect(queue.id.get(), queue.conn()->LocalConnectData(),
                               rdma::ReadDepth(queue.id.get(), kReadDepth));
      }
      if (!status.ok()) HandleConnectFailure(queue, rdma::ErrnoOf(status));
      break;
    }
    case RDMA_CM_EVENT_ESTABLISHED:
      HandleEstablished(queue, event);
      break;
    case RDMA_CM_EVENT_REJECTED:
    case RDMA_CM_EVENT_CONNECT_ERROR:
      HandleConnectFailure(queue, ECONNREFUSED);
      break;
    case RDMA_CM_EVENT_UNREACHABLE:
      HandleConnectFailure(queue, ETIMEDOUT);
      break;
    case RDMA_CM_EVENT_ADDR_ERROR:
    case RDMA_CM_EVENT_ROUTE_ERROR:
      HandleConnectFailure(queue, EHOSTUNREACH);
      break;
    case RDMA_CM_EVENT_DISCONNECTED:
    case RDMA_CM_EVENT_DEVICE_REMOVAL:
      HandleDisconnect(queue);
      break;
    default:
      break;
  }
}

void RdmaLibOs::HandleConnectRequest(const rdma::CmEvent& event) {
  rdma::CmIdPtr id(event.id);  // Ours now: destroyed unless accepted.
  Queue* queue = queues_.Get(QdOf(event.listen_id));
  if (queue != nullptr && queue->dgram() != nullptr && !queue->closed) {
    queue->dgram()->AnswerResolve(std::move(id));
    return;
  }
  if (queue == nullptr || queue->listener() == nullptr || queue->closed) {
    rdma::Reject(id.get()).IgnoreError();
    return;
  }
  AcceptRequest(*queue, std::move(id), event.private_data);
}

void RdmaLibOs::AcceptArrival(Arrival& arrival) {
  Queue* queue = queues_.Get(arrival.listener_qd);
  if (queue == nullptr || queue->listener() == nullptr || queue->closed) {
    // Closed after the request was handed over: the peer's connect fails.
    rdma::Reject(arrival.id.get()).IgnoreError();
    return;
  }
  AcceptRequest(*queue, std::move(arrival.id), arrival.private_data);
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
  queue->unclaimed = true;
  queue->connection()->listener_qd = listener_queue.qd;
  queue->connection()->peer_data = *peer;
  id->context = ContextOf(queue->qd);
  queue->id = std::move(id);
  absl::Status status = SetupConnection(*queue);
  if (status.ok()) {
    status = rdma::Accept(queue->id.get(), queue->conn()->LocalConnectData(),
                          rdma::ReadDepth(queue->id.get(), kReadDepth));
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

void RdmaLibOs::HandleEstablished(Queue& queue, const rdma::CmEvent& event) {
  ConnectionState* connection = queue.connection();
  if (connection == nullptr || connection->conn == nullptr) return;
  Connection& conn = *connection->conn;
  conn.peer_addr = PeerAddr(queue.id.get());
  // Receives complete from the moment the QP is ready, which can be before
  // this event is polled: a peer that broke the protocol at once may have
  // aborted the connection already. rdma_cm sends no disconnect before the
  // connection is established, so the peer learns it now.
  auto open = [&](const ConnectData& peer) {
    conn.Open(peer);
    if (conn.state() == Connection::State::kDead) {
      rdma::Disconnect(queue.id.get()).IgnoreError();
    }
  };
  if (connection->listener_qd >= 0) {
    Queue* listener_queue = queues_.Get(connection->listener_qd);
    if (listener_queue == nullptr) return;
    ListenerState& listener = *listener_queue->listener();
    --listener.in_setup;
    open(connection->peer_data);
    listener.ready.push_back(queue.qd);
    MatchAccepts(listener);
    return;
  }
  absl::StatusOr<ConnectData> peer = ParseConnectData(absl::MakeConstSpan(
      reinterpret_cast<const std::byte*>(event.private_data.data()),
      event.private_data.size()));
  if (!peer.ok()) {
    HandleConnectFailure(queue, EPROTO);
    return;
  }
  open(*peer);
  tokens_.Succeed(connection->connect_qt, DEMI_OPC_CONNECT);
  connection->connect_qt = 0;
}

void RdmaLibOs::HandleConnectFailure(Queue& queue, int err) {
  ConnectionState& connection = *queue.connection();
  if (connection.listener_qd >= 0) {
    // An accepted connection that never got established.
    if (Queue* listener_queue = queues_.Get(connection.listener_qd)) {
      ListenerState& listener = *listener_queue->listener();
      --listener.in_setup;
      listener.PublishLoad();
    }
    MarkClosed(queue);
    if (connection.conn != nullptr) connection.conn->Abort(err);
    return;
  }
  if (connection.connect_qt != 0) tokens_.Fail(connection.connect_qt, err);
  connection.connect_qt = 0;
  // Back to a plain socket, ready for another connect; the failed id and
  // QP drain first.
  if (connection.conn != nullptr) {
    connection.conn->Abort(err);
    Queue* husk = queues_.Add<ConnectionState>();
    MarkClosed(*husk);
    husk->id = std::move(queue.id);
    husk->id->context = ContextOf(husk->qd);
    // The connection (and its entry in conn_by_qpn_) moves as it is.
    *husk->connection() = std::move(connection);
  } else {
    queue.id.reset();
  }
  queue.state.emplace<SocketState>();
  queue.bound = false;
}

void RdmaLibOs::HandleDisconnect(Queue& queue) {
  ConnectionState* connection = queue.connection();
  if (connection == nullptr || connection->conn == nullptr) return;
  if (connection->conn->state() == Connection::State::kSetup) {
    HandleConnectFailure(queue, ECONNRESET);
    return;
  }
  // Whatever the peer sent before it disconnected is already in the CQ
  // (its ACKs came before its DREQ): deliver that first, then abort.
  if (connection->device != nullptr) {
    while (PollCompletions(*connection->device)) {
    }
  }
  connection->conn->OnDisconnected();
  rdma::Disconnect(queue.id.get()).IgnoreError();
}

absl::Status RdmaLibOs::Close(int qd) {
  ExpectCmEvents();
  DEMI_ASSIGN_OR_RETURN(Queue * queue, queues_.Find(qd));
  switch (queue->kind()) {
    case Queue::Kind::kSocket:
      Destroy(qd);
      return absl::OkStatus();
    case Queue::Kind::kDatagram:
      // Datagrams already posted still go out (FinishCloses waits for
      // them at exit); the socket goes once they have, or at its linger
      // time.
      if (queue->dgram() == nullptr) {
        Destroy(qd);
        return absl::OkStatus();
      }
      queue->dgram()->StartClose();
      MarkClosed(*queue);
      queue->flushing = true;
      queue->linger_deadline =
          absl::Now() + (queue->linger.l_onoff != 0
                             ? absl::Seconds(queue->linger.l_linger)
                             : kDefaultLinger);
      return absl::OkStatus();
    case Queue::Kind::kListener: {
      ListenerState& listener = *queue->listener();
      for (demi_qtoken_t qt : listener.accepts) tokens_.Fail(qt, EBADF);
      listener.accepts.clear();
      MarkClosed(*queue);
      LeaveShare(*queue);
      queue->id.reset();
      // Connections it accepted that nobody took go with it.
      std::vector<int> children;
      queues_.ForEach([&](Queue& child) {
        const ConnectionState* connection = child.connection();
        if (connection != nullptr && connection->listener_qd == qd) {
          children.push_back(child.qd);
        }
      });
      for (int child : children) {
        if (Queue* queue = queues_.Get(child)) CloseConnection(*queue);
      }
      return absl::OkStatus();
    }
    case Queue::Kind::kConnection:
      CloseConnection(*queue);
      return absl::OkStatus();
  }
  return absl::OkStatus();
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

void RdmaLibOs::DisconnectAborted() {
  ExpectCmEvents();
  for (int qd : aborted_) {
    Queue* queue = queues_.Get(qd);
    // The queue may have moved on to a new connection (a failed connect
    // leaves its old one in a husk, under another qd).
    if (queue == nullptr || queue->conn() == nullptr ||
        queue->conn()->state() != Connection::State::kDead) {
      continue;
    }
    rdma::Disconnect(queue->id.get()).IgnoreError();
  }
  aborted_.clear();
}

void RdmaLibOs::EndConnection(Queue& queue, int err) {
  queue.flushing = false;
  if (Connection* conn = queue.conn()) {
    conn->Abort(err);
    rdma::Disconnect(queue.id.get()).IgnoreError();
  }
}

void RdmaLibOs::CloseConnection(Queue& queue) {
  ConnectionState& connection = *queue.connection();
  if (connection.connect_qt != 0) {
    tokens_.Fail(connection.connect_qt, EBADF);
    connection.connect_qt = 0;
  }
  // Nothing here polls: the progress engine finishes the close, so no cm
  // event can free this queue while we look at it, and demi_close returns
  // at once.
  MarkClosed(queue);
  Connection* conn = connection.conn.get();
  if (conn == nullptr) return;  // Still resolving: Poll destroys it.
  bool abortive = queue.linger.l_onoff != 0 && queue.linger.l_linger == 0;
  if (abortive) {
    conn->FailPopsOnClose();
    EndConnection(queue, ECONNABORTED);
    return;
  }
  // Orderly: every earlier push goes out, then CLOSE, so the peer pops
  // them all and then EOF; the disconnect comes after that (PollClosed).
  if (conn->StartClose()) {
    queue.flushing = true;
    queue.linger_deadline =
        absl::Now() + (queue.linger.l_onoff != 0
                           ? absl::Seconds(queue.linger.l_linger)
                           : kDefaultLinger);
    return;
  }
  EndConnection(
      queue, conn->state() == Connection::State::kSetup ? EBADF : ECONNRESET);
}

}  // namespace demi
