// The progress engine of RdmaLibOs: one pass polls every device's
// completion queues, the datagram sockets, and now and then the rdma_cm
// channel and the timers (closes that drain, keepalive ticks, refills that
// ran dry).
#include <malloc.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "demi/rdma_libos.h"
#include "rdma/clock.h"
#include "rdma/log.h"

namespace demi {

void RdmaLibOs::Poll() {
  // Before this pass's completions: the application had its chance to
  // carry the credits in a reply since the last one.
  if (!credit_due_.empty()) FlushDueCredits();
  bool full = false;
  // Without a connection (a process of datagram sockets only) the devices'
  // CQs have nothing to give: Destroy drained each QP's as it went.
  if (!conn_by_qpn_.empty()) {
    for (auto& device : devices_) full |= PollCompletions(*device);
  }
  for (DatagramSocket* socket : datagrams_) full |= socket->Poll();
  polled_full_batch_ = full;
  // The sends staged since the last pass, the application's and this
  // pass's (credits came back, a backlog went out), go in one post each.
  if (!doorbell_due_.empty()) RingDoorbells();
  // In the same pass: the application may stop polling once its pop failed.
  if (!aborted_.empty()) DisconnectAborted();
  if (--cm_countdown_ == 0) {
    // Quiet looks back off: on an established data path the channel is
    // empty, and each look is a system call. Not at once: a connection
    // being set up goes quiet between its events.
    bool busy = PollCmEvents() || !closed_.empty();
    cm_quiet_looks_ = busy ? 0 : cm_quiet_looks_ + 1;
    cm_interval_ = cm_quiet_looks_ < kCmQuietLooks
                       ? kCmPollInterval
                       : std::min(2 * cm_interval_, kCmIdlePollInterval);
    cm_countdown_ = cm_interval_;
  }
  if (++poll_passes_ % kCmPollInterval == 0) PollTimers();
}

void RdmaLibOs::ExpectCmEvents() {
  cm_quiet_looks_ = 0;
  cm_interval_ = kCmPollInterval;
  cm_countdown_ = std::min(cm_countdown_, kCmPollInterval);
}

void RdmaLibOs::PollTimers() {
  absl::Time now = rdma::MonotonicNow();
  // Frees from other threads: now and then is soon enough (one load when
  // there are none).
  pool_->DrainOtherThreadFrees();
  SgaPool::ReleaseIdleDepot(now);
  pool_->ReleaseIdleSpares(now);
  if (!closed_.empty()) PollClosed(now);
  connections_high_ = std::max(connections_high_, conn_by_qpn_.size());
  if (closed_.empty() &&
      connections_high_ >= conn_by_qpn_.size() + kTrimAfterConnectionsGone) {
    // Rare (after a burst), and a few milliseconds: not per close.
    malloc_trim(0);
    connections_high_ = conn_by_qpn_.size();
  }
  if (!stranded_.empty() && now >= next_stranded_) {
    next_stranded_ = now + kStrandedCreditInterval;
    ForEachDue(stranded_, [](Connection& conn) { conn.ReturnLastCredit(); });
  }
  for (DatagramSocket* socket : datagrams_) socket->PollTimers(now);
  for (auto& device : devices_) {
    device->send_cqs->ReleaseIdle(now);
    // Waiters too: a rendezvous waiting for pool memory has no completion
    // to wake it when the application frees some.
    if (device->refill_dry || device->ReceiveWaiting()) {
      device->refill_dry = false;
      RefillReceives(*device);
    }
  }
  if (keepalive_ == absl::InfiniteDuration() || now < next_tick_) return;
  next_tick_ = now + keepalive_ / kKeepaliveTicks;
  queues_.ForEach([this](Queue& queue) {
    if (Connection* conn = queue.conn()) {
      conn->KeepaliveTick(kKeepaliveTicks, stall_ticks_);
    }
  });
}

bool RdmaLibOs::PollCompletions(ThreadDevice& device) {
  ibv_wc wcs[kPollBatch];
  bool more = false;
  int n;
  for (auto& receive : device.receives) {
    n = ibv_poll_cq(receive->cq(), kPollBatch, wcs);
    if (n < 0) FailCompletionQueue(device);
    for (int i = 0; i < n; ++i) {
      BufferRef buffer = receive->Take(wcs[i].wr_id);
      if (!buffer) continue;
      // If its connection is gone, the buffer goes back to the pool.
      if (Connection* conn = ConnOf(wcs[i].qp_num)) {
        if (conn->state() == Connection::State::kSetup &&
            wcs[i].status == IBV_WC_SUCCESS) {
          EstablishEarly(*conn);
        }
        conn->OnRecvCompletion(wcs[i], std::move(buffer));
      }
    }
    more |= n == kPollBatch;
  }
  bool sends_due = device.signaled_sends > 0 || poll_all_sends_ ||
                   poll_passes_ % kIdleSendPollInterval == 0;
  for (size_t c = 0; sends_due && c < device.send_cqs->size(); ++c) {
    n = ibv_poll_cq(device.send_cqs->cq(c), kPollBatch, wcs);
    if (n < 0) FailCompletionQueue(device);
    for (int i = 0; i < n; ++i) {
      if (Connection* conn = ConnOf(wcs[i].qp_num)) {
        conn->OnSendCompletion(wcs[i]);
      }
    }
    more |= n == kPollBatch;
  }
  for (auto& receive : device.receives) {
    if (receive->NeedsRefill() && !device.refill_dry) {
      RefillReceive(device, *receive);
    }
  }
  return more;
}

void RdmaLibOs::FailCompletionQueue(ThreadDevice& device) {
  // What the CQ holds is lost with it: every connection on the device
  // fails now rather than wait for completions that will never be seen.
  // The device's CQs are shared, so all of them go (a send CQ serves many
  // connections, the receive CQ all). Later connections meet the same
  // fate at their first failed poll; those made once the CQs poll again
  // live on.
  if (!device.cq_failed) {
    DEMI_LOG(ERROR) << "ibv_poll_cq failed on device " << device.index
                    << ": its connections fail with EIO";
  }
  device.cq_failed = true;
  queues_.ForEach([&](Queue& queue) {
    Connection* conn = queue.conn();
    if (conn == nullptr || conn->device() != device.index ||
        conn->completions_lost()) {
      return;
    }
    conn->LoseCompletions();
    conn->Abort(EIO);
  });
}

void RdmaLibOs::RefillReceives(ThreadDevice& device) {
  for (auto& receive : device.receives) RefillReceive(device, *receive);
}

void RdmaLibOs::RefillReceive(ThreadDevice& device, SharedReceive& receive) {
  if (!receive.Refill()) device.refill_dry = true;
  if (!receive.HasWaiting()) return;
  receive.TakeWaiting(waiting_scratch_);
  for (int qd : waiting_scratch_) {
    Queue* queue = queues_.Get(qd);
    if (Connection* conn = queue == nullptr ? nullptr : queue->conn()) {
      conn->OnBuffersPosted();
    }
  }
}

template <typename F>
void RdmaLibOs::ForEachDue(std::vector<int>& due, F&& f) {
  due_scratch_.clear();
  due_scratch_.swap(due);
  for (int qd : due_scratch_) {
    Queue* queue = queues_.Get(qd);
    if (Connection* conn = queue == nullptr ? nullptr : queue->conn()) {
      f(*conn);
    }
  }
}

void RdmaLibOs::RingDoorbells() {
  ForEachDue(doorbell_due_, [](Connection& conn) { conn.RingDoorbell(); });
}

void RdmaLibOs::FlushDueCredits() {
  ForEachDue(credit_due_, [](Connection& conn) { conn.FlushDueCredits(); });
}

}  // namespace demi
