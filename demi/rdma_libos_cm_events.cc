// The rdma_cm events of RdmaLibOs's RC setup: connection requests (from its
// own listeners or handed over from a shared one), a connect's resolution,
// establishment, rejection and disconnects.
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "demi/cm_context.h"
#include "demi/rdma_libos.h"
#include "rdma/cm_connection.h"
#include "rdma/log.h"
#include "rdma/status_util.h"

namespace demi {
namespace {

sockaddr_in PeerAddr(rdma_cm_id* id) {
  sockaddr_in addr = {};
  sockaddr* peer = rdma_get_peer_addr(id);
  if (peer != nullptr && peer->sa_family == AF_INET) {
    std::memcpy(&addr, peer, sizeof(addr));
  }
  return addr;
}

}  // namespace

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
                               queue.connection()->device->read_depth);
      }
      if (!status.ok()) HandleConnectFailure(queue, rdma::ErrnoOf(status));
      break;
    }
    case RDMA_CM_EVENT_ESTABLISHED:
      HandleEstablished(queue, event);
      break;
    case RDMA_CM_EVENT_REJECTED:
    case RDMA_CM_EVENT_CONNECT_ERROR:
    case RDMA_CM_EVENT_UNREACHABLE:
      if (queue.connection()->established) {
        // Established by data before the peer's RTU (EstablishEarly, or
        // the peer's side of that), then rejected by a side that gave up
        // on the setup: the peer is gone.
        HandleDisconnect(queue);
      } else {
        HandleConnectFailure(queue, event.type == RDMA_CM_EVENT_UNREACHABLE
                                        ? ETIMEDOUT
                                        : ECONNREFUSED);
      }
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

void RdmaLibOs::HandleEstablished(Queue& queue, const rdma::CmEvent& event) {
  ConnectionState* connection = queue.connection();
  if (connection == nullptr || connection->conn == nullptr) return;
  if (connection->established) return;
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
    connection->established = true;
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
  connection->established = true;
  open(*peer);
  if (conn.state() == Connection::State::kDead) {
    // Died in its setup (its CQ failed; no receive can land before this
    // event on a connecting side): the connect failed, and the socket may
    // connect again.
    HandleConnectFailure(queue, EPROTO);
    return;
  }
  tokens_.Succeed(connection->connect_qt, DEMI_OPC_CONNECT);
  connection->connect_qt = 0;
}

void RdmaLibOs::EstablishEarly(Connection& conn) {
  Queue* queue = queues_.Get(conn.qd());
  // A connecting side sent the RTU itself: its rdma_cm is established.
  if (queue == nullptr || queue->conn() != &conn ||
      queue->connection()->listener_qd < 0 ||
      queue->connection()->notified_established) {
    return;
  }
  absl::Status status = rdma::NotifyEstablished(queue->id.get());
  // EINVAL or EISCONN: the RTU came meanwhile. Anything else is tried again
  // at the next message.
  int err = status.ok() ? 0 : rdma::ErrnoOf(status);
  queue->connection()->notified_established =
      err == 0 || err == EINVAL || err == EISCONN;
  if (err != 0) {
    DEMI_LOG(DEBUG) << "qd " << queue->qd << ": " << status;
  }
}

void RdmaLibOs::HandleConnectFailure(Queue& queue, int err) {
  ConnectionState& connection = *queue.connection();
  // A connection that died in its setup (its CQ failed) says why, not the
  // event that followed: rdma_cm could not make its QP ready.
  if (connection.conn != nullptr && connection.conn->error() != 0) {
    err = connection.conn->error();
  }
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
  // Back to a plain socket, ready for another connect.
  int husk_qd = -1;
  if (connection.conn != nullptr) {
    connection.conn->Abort(err);
    Queue* husk = queues_.Add<ConnectionState>();
    husk->id = std::move(queue.id);
    husk->id->context = ContextOf(husk->qd);
    // The connection (and its entry in conn_by_qpn_) moves as it is.
    *husk->connection() = std::move(connection);
    husk_qd = husk->qd;
  }
  queue.state.emplace<SocketState>();
  queue.id.reset();
  // The failed id and QP go now, not at a later pass, so that the port is
  // free for the socket to take again: as on Linux, a failed connect leaves
  // it bound, and the next connect goes out from its port. That is safe
  // because a connection that never got established never posted a send
  // (only Open lets it), so the only completions that can refer to its QP
  // are receives of what the peer sent at once, already in the shared CQ:
  // Destroy polls those away once the QP (and so its number) is gone. One
  // that died as Open let it send (HandleEstablished) may have sends in
  // flight: that husk drains first (PollClosed), keeping the port until
  // then.
  if (husk_qd >= 0) {
    Queue* husk = queues_.Get(husk_qd);
    if (husk->conn()->HasOutstandingWork()) {
      MarkClosed(*husk);
    } else {
      Destroy(husk_qd);
    }
  }
  if (queue.bound) {
    absl::StatusOr<rdma::CmIdPtr> id = BindStreamId(queue.qd, queue.local);
    if (id.ok()) {
      queue.id = std::move(id).value();
    } else {
      // Another process took the port in between, or the device went.
      DEMI_LOG(WARNING) << "qd " << queue.qd
                        << ": unbound after a failed connect: " << id.status();
      queue.bound = false;
    }
  }
}

void RdmaLibOs::HandleDisconnect(Queue& queue) {
  ConnectionState* connection = queue.connection();
  if (connection == nullptr || connection->conn == nullptr) return;
  // Never established: still in setup, or aborted before it (an accepted
  // one whose first receive failed) and not yet closed, as a failed setup
  // is. Either way its setup ends here: a listener's count of connections
  // in setup, a connect's token.
  Connection::State state = connection->conn->state();
  if (state == Connection::State::kSetup ||
      (state == Connection::State::kDead && !connection->established &&
       !queue.closed)) {
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

}  // namespace demi
