// How RdmaLibOs closes queues: demi_close for each kind, an orderly close's
// flush and linger time (SO_LINGER), and the destruction of a queue once
// what it had in flight has drained; also the closes at a thread's end.
#include <algorithm>
#include <cerrno>
#include <utility>
#include <vector>

#include "demi/rdma_libos.h"
#include "rdma/clock.h"
#include "rdma/cm_connection.h"
#include "rdma/status_util.h"

namespace demi {

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
          rdma::MonotonicNow() + (queue->linger.l_onoff != 0
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
        rdma::MonotonicNow() + (queue.linger.l_onoff != 0
                                    ? absl::Seconds(queue.linger.l_linger)
                                    : kDefaultLinger);
    return;
  }
  EndConnection(
      queue, conn->state() == Connection::State::kSetup ? EBADF : ECONNRESET);
}

void RdmaLibOs::EndConnection(Queue& queue, int err) {
  queue.flushing = false;
  if (Connection* conn = queue.conn()) {
    conn->Abort(err);
    rdma::Disconnect(queue.id.get()).IgnoreError();
  }
}

void RdmaLibOs::MarkClosed(Queue& queue) {
  queue.closed = true;
  closed_.insert(queue.qd);
}

void RdmaLibOs::PollClosed(absl::Time now) {
  std::vector<int> drained;
  std::vector<std::pair<int, int>> ended;  // qd, errno
  for (int qd : closed_) {
    Queue* queue = queues_.Get(qd);
    if (queue == nullptr) {
      drained.push_back(qd);
      continue;
    }
    if (DatagramSocket* dgram = queue->dgram()) {
      if (dgram->Drained() || now >= queue->linger_deadline) {
        drained.push_back(qd);
      }
      continue;
    }
    Connection* conn = queue->conn();
    if (queue->flushing) {
      if (conn->FlushDone()) {
        ended.emplace_back(qd, EBADF);
      } else if (now >= queue->linger_deadline) {
        ended.emplace_back(qd, ETIMEDOUT);
      }
    } else if (conn == nullptr || !conn->HasOutstandingWork() ||
               conn->completions_lost()) {
      drained.push_back(qd);
    }
  }
  for (auto [qd, err] : ended) EndConnection(*queues_.Get(qd), err);
  for (int qd : drained) Destroy(qd);
}

void RdmaLibOs::FinishCloses() {
  auto flushing = [this] {
    for (int qd : closed_) {
      Queue* queue = queues_.Get(qd);
      if (queue != nullptr && queue->flushing) return true;
    }
    return false;
  };
  // A flush may wait on a slow peer up to its linger time: sleep between
  // passes rather than spin a core for it.
  while (flushing()) {
    Poll();
    if (flushing()) {
      Sleep(rdma::MonotonicNow() + kSleepTimerInterval,
            [&] { return !flushing(); });
    }
  }
}

void RdmaLibOs::CloseAll() {
  std::vector<int> open;
  queues_.ForEach([&](Queue& queue) {
    // Accepted connections nobody took go with their listener.
    if (!queue.closed && !queue.unclaimed) open.push_back(queue.qd);
  });
  for (int qd : open) Close(qd).IgnoreError();
}

void RdmaLibOs::Destroy(int qd) {
  closed_.erase(qd);
  Queue* queue = queues_.Get(qd);
  if (queue == nullptr) return;
  if (DatagramSocket* dgram = queue->dgram()) {
    datagrams_.erase(std::find(datagrams_.begin(), datagrams_.end(), dgram));
  }
  ThreadDevice* device = nullptr;
  bool had_qp = false;
  if (ConnectionState* connection = queue->connection()) {
    device = connection->device;
    had_qp = connection->qp != nullptr;
    if (had_qp) {
      conn_by_qpn_.erase(connection->qp->qp->qp_num);
      last_conn_ = nullptr;
    }
    if (connection->send_cq != nullptr) {
      device->send_cqs->Release(connection->send_cq, kSendDepth);
    }
  }
  queues_.Erase(qd);
  // Messages the QP took in before it went may still wait in the shared
  // receive CQ under its number, which a new QP could get, and so may its
  // sends' completions (flushed ones too) in the send CQs: handle them now,
  // while the number is nobody's. Passes do not poll the devices once no
  // connection is left.
  if (device != nullptr && had_qp) {
    bool all_sends = poll_all_sends_;
    poll_all_sends_ = true;
    while (PollCompletions(*device)) {
    }
    poll_all_sends_ = all_sends;
  }
}

}  // namespace demi
