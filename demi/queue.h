// What a queue descriptor names: a socket, a listener, an RC connection or a
// datagram socket. Every queue has the same header (qd, close state, local
// address, options, cm id); what only one kind has is in that kind's state,
// held in place in a variant, so the kind is the variant's index and no
// field can belong to the wrong kind.
#ifndef DEMI_DEMI_QUEUE_H_
#define DEMI_DEMI_QUEUE_H_

#include <demi/types.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <deque>
#include <memory>
#include <type_traits>
#include <variant>

#include "absl/time/time.h"
#include "demi/connection.h"
#include "demi/datagram_socket.h"
#include "demi/port_share.h"
#include "demi/wire.h"
#include "rdma/verbs_ptr.h"

namespace demi {

struct ThreadDevice;

// A SOCK_STREAM socket that neither listens nor connects (yet): all it has
// is in the queue's header.
struct SocketState {};

// A listening socket.
struct ListenerState {
  int backlog = 0;
  // ready + in_setup, for the threads that spread a shared listener's
  // requests (SharedListener::Join holds its address).
  std::atomic<int> load{0};
  std::deque<int> ready;  // Established, not yet accepted.
  std::deque<demi_qtoken_t> accepts;
  int in_setup = 0;  // Connection requests being accepted.

  void PublishLoad() {
    load.store(static_cast<int>(ready.size()) + in_setup,
               std::memory_order_relaxed);
  }
};

// An RC connection, from demi_connect (or an accepted request) on. `qp`
// is declared after `conn` so that it goes first.
struct ConnectionState {
  int listener_qd = -1;  // Accepted but not yet handed out: its listener.
  demi_qtoken_t connect_qt = 0;
  ThreadDevice* device = nullptr;
  ibv_cq* send_cq = nullptr;  // Reserved in device->send_cqs.
  ConnectData peer_data = {};
  bool notified_established = false;  // See RdmaLibOs::EstablishEarly.
  bool established = false;           // rdma_cm said ESTABLISHED.
  // Null until the route is resolved (a Connection needs its QP).
  std::unique_ptr<Connection> conn;
  rdma::CmQpPtr qp;

  // Past its setup: it can push, pop and name its peer.
  bool connected() const {
    return conn != nullptr && conn->state() != Connection::State::kSetup;
  }
};

// A SOCK_DGRAM socket.
struct DatagramState {
  std::unique_ptr<DatagramSocket> socket;  // Once bound.
};

// Not thread-safe; owned by a QueueTable. The state is declared after the
// cm id, so that a connection's QP and buffers go before its id.
struct Queue {
  // The order of `State`'s alternatives.
  enum class Kind { kSocket, kListener, kConnection, kDatagram };
  using State =
      std::variant<SocketState, ListenerState, ConnectionState, DatagramState>;

  int qd = -1;
  bool closed = false;  // Closed by the application; draining.
  // Accepted by a listener and not yet handed out by demi_accept: not the
  // application's yet.
  bool unclaimed = false;
  // Closed and still delivering earlier pushes, until `linger_deadline`.
  bool flushing = false;
  absl::Time linger_deadline;
  bool bound = false;
  sockaddr_in local = {};
  struct linger linger = {};
  bool reuse_port = false;  // SO_REUSEPORT.
  // A bound socket's, a listener's, a connection's or a bound datagram
  // socket's; null for a socket bound with SO_REUSEPORT (see `share`).
  rdma::CmIdPtr id;
  // Bound with SO_REUSEPORT: the listener it shares.
  std::shared_ptr<SharedListener> share;
  State state;

  Kind kind() const { return static_cast<Kind>(state.index()); }
  ListenerState* listener() { return std::get_if<ListenerState>(&state); }
  ConnectionState* connection() { return std::get_if<ConnectionState>(&state); }
  const ConnectionState* connection() const {
    return std::get_if<ConnectionState>(&state);
  }
  DatagramState* datagram() { return std::get_if<DatagramState>(&state); }
  const DatagramState* datagram() const {
    return std::get_if<DatagramState>(&state);
  }
  // The connection's Connection, or the datagram socket's DatagramSocket;
  // null for any other queue, or before there is one.
  Connection* conn() const {
    const ConnectionState* c = connection();
    return c == nullptr ? nullptr : c->conn.get();
  }
  DatagramSocket* dgram() const {
    const DatagramState* d = datagram();
    return d == nullptr ? nullptr : d->socket.get();
  }
  // A connection past its setup (see ConnectionState::connected).
  ConnectionState* connected() {
    ConnectionState* c = connection();
    return c != nullptr && c->connected() ? c : nullptr;
  }
};

// Queue::Kind names the alternatives of Queue::State in their order.
template <Queue::Kind kKind>
using QueueStateOf =
    std::variant_alternative_t<static_cast<size_t>(kKind), Queue::State>;
static_assert(std::is_same_v<QueueStateOf<Queue::Kind::kSocket>, SocketState>);
static_assert(
    std::is_same_v<QueueStateOf<Queue::Kind::kListener>, ListenerState>);
static_assert(
    std::is_same_v<QueueStateOf<Queue::Kind::kConnection>, ConnectionState>);
static_assert(
    std::is_same_v<QueueStateOf<Queue::Kind::kDatagram>, DatagramState>);

}  // namespace demi

#endif  // DEMI_DEMI_QUEUE_H_
