// Connection's life and bookkeeping: setup, credits going back, send
// completions, close, keepalive and abort. Its send half is in
// connection_send.cc, its receive half in connection_receive.cc.
#include "demi/connection.h"

#include <cerrno>
#include <utility>

#include "rdma/log.h"
#include "rdma/status_util.h"
#include "rdma/wc_status.h"

namespace demi {

Connection::Connection(int qd, ConnectionEnv env, ibv_qp* qp,
                       uint32_t max_inline, uint32_t max_send_sge)
    : qd_(qd),
      env_(env),
      qp_(qp),
      max_inline_(max_inline),
      max_send_sge_(max_send_sge),
      credits_(&env.receive->credits()),
      sends_(qp, kSendDepth, kSignalInterval, nullptr, env.signaled_sends) {
  // Not this pass: the first push goes out at once.
  posted_pass_ = *env_.poll_passes - 1;
  data_wr_.sg_list = data_sges_;
  data_wr_.opcode = IBV_WR_SEND_WITH_IMM;
}

Connection::~Connection() {
  sends_.DropStaged(EBADF, StagedDone());
  // Whatever was still posted can no longer complete: the QP is gone first
  // (RdmaLibOs destroys it before us only after draining, or on shutdown).
  sends_.ForEachPosted([&](SendSlot& slot) {
    if (slot.push != nullptr) FinishPush(*slot.push, EBADF);
    if (slot.qt != 0) CompletePush(slot.qt, EBADF);
  });
  for (auto& op : push_backlog_) FinishPush(*op, EBADF);
  for (auto& entry : rndv_waiting_) FinishPush(*entry.second, EBADF);
  while (!pops_.empty()) {
    env_.tokens->Fail(pops_.front(), EBADF);
    pops_.pop_front();
  }
}

absl::Status Connection::Start() {
  if (max_inline_ < sizeof(WireHeader)) {
    // One header per slot of the send ring: next_index() picks it.
    absl::StatusOr<Buffer*> ring =
        env_.pool->Allocate(size_t{sends_.ring_size()} * sizeof(WireHeader));
    if (!ring.ok()) return rdma::ErrnoError(ENOMEM, "no memory for headers");
    header_ring_.reset(*ring);
  }
  if (!credits_.Reserve()) {
    return rdma::ErrnoError(ENOBUFS, "the shared receive queue is full");
  }
  env_.receive->Refill();
  if (!credits_.GrantInitial()) {
    return rdma::ErrnoError(ENOMEM, "no memory for receive buffers");
  }
  return absl::OkStatus();
}

std::string Connection::LocalConnectData() const {
  return EncodeConnectData(kBaseCredits, kMaxConnCredits,
                           env_.receive->buffer_size());
}

void Connection::Open(const ConnectData& peer) {
  if (state_ != State::kSetup) return;  // Aborted before it was established.
  // ParseConnectData bounds both: a peer cannot make us trust more
  // credits than kMaxPeerCredits.
  peer_eager_size_ = peer.eager_size;
  peer_max_credits_ = peer.max_credits;
  send_credits_ = peer.initial_credits;
  state_ = State::kOpen;
  Service();
}

void Connection::ConsumeCredit() {
  credits_.OnConsumed();
  BackCredits();
}

void Connection::WaitForBuffers() {
  waiting_buffers_ = true;
  env_.receive->AddWaiting(qd_);
}

void Connection::CreditDue() {
  credit_due_ = true;
  env_.credit_due->push_back(qd_);
}

void Connection::OnBuffersPosted() {
  waiting_buffers_ = false;
  if (state_ == State::kDead) return;
  BackCredits();
  Service();
}

void Connection::FlushDueCredits() {
  credit_due_ = false;
  if ((state_ == State::kOpen || state_ == State::kClosing) &&
      CreditReturnDue()) {
    // A full send queue, no credit of its own or a bind holding the queue:
    // Service sends it once that changes (a completion or an arrival runs
    // it), or the peer, whose pushes may wait for these, could wait for
    // ever.
    credit_stalled_ = !TrySendControl(WireType::kCredit, 0);
  }
}

void Connection::PeerShortOfCredits() {
  if (CreditReturnDue()) {
    if (!credit_due_) CreditDue();
    return;
  }
  // No credit to spare: the peer, stranded, cannot send the rendezvous
  // completion a push waits for (its application may have popped the
  // message long ago), and this side's application may wait for that push
  // before it pops what would return more. The last credit goes on the
  // timers, not at once, in case the peer is in the same state.
  if (!stranded_listed_ && credits_.PeerStranded() && !rndv_waiting_.empty()) {
    ListStranded();
  }
}

void Connection::ListStranded() {
  stranded_listed_ = true;
  env_.stranded->push_back(qd_);
}

void Connection::ReturnLastCredit() {
  stranded_listed_ = false;
  if ((state_ != State::kOpen && state_ != State::kClosing) ||
      !credits_.PeerStranded() || rndv_waiting_.empty()) {
    return;
  }
  if (!TrySendControl(WireType::kCredit, 0) && state_ != State::kDead) {
    // No credit or no room in the send queue yet: at the next interval.
    ListStranded();
  }
}

void Connection::ServiceQueued() {
  if (state_ != State::kOpen && state_ != State::kClosing) return;
  auto send_dones = [this] {
    while (!done_backlog_.empty() &&
           TrySendControl(WireType::kRndvDone, done_backlog_.front())) {
      done_backlog_.pop_front();
    }
  };
  send_dones();
  while (!push_backlog_.empty() && state_ != State::kDead && TrySendPush()) {
  }
  // A rendezvous that waited to bind held them back (bind_waits_).
  if (!done_backlog_.empty()) send_dones();
  if (state_ != State::kDead &&
      (credits_.ReturnNow() || (credit_stalled_ && CreditReturnDue()))) {
    credit_stalled_ = !TrySendControl(WireType::kCredit, 0);
  }
  if (rndv_unread_ > 0) StartReads();
}

void Connection::OnSendCompletion(const ibv_wc& wc) {
  heard_ = true;
  probe_ticks_ = 0;  // The queue moves: a probe behind others is not stuck.
  int err = rdma::WcStatusToConnectionErrno(wc.status);
  // Everything posted before it is complete too: those requests were
  // unsignalled and succeeded (a failure always completes on its own).
  bool known = sends_.Complete(
      wc.wr_id, err, [&](SendSlot& slot, int e) { RetireSend(slot, e); });
  if (!known) return;
  if (err != 0) {
    FailOn(wc, "send");
    return;
  }
  // Ends with Service: a rendezvous waiting for an empty send queue
  // (binds_after_drain) goes then, or asks again with a mark if what is
  // left is unsignalled.
  if (!pops_.empty() && !incoming_.empty()) {
    DeliverPops();
  } else {
    Service();
  }
}

void Connection::PostDrainMark() {
  ibv_send_wr mark = {};
  mark.opcode = IBV_WR_RDMA_WRITE;  // Zero bytes: no address, no rkey.
  if (int err =
          PostSendWr(mark, SendSlot(SendSlot::kControl), /*must_signal=*/true);
      err != 0) {
    Abort(err);
  }
}

void Connection::RetireSend(SendSlot& slot, int err) {
  switch (slot.kind) {
    case SendSlot::kPush:
      // A push of one piece carries its token only (TryPushPiece); a
      // rendezvous announcement carries nothing: it waits for RNDV_DONE.
      if (slot.push == nullptr) {
        if (slot.qt != 0) CompletePush(slot.qt, err);
        break;
      }
      if (slot.push->is_close && err == 0) close_sent_ = true;
      EndPush(std::move(slot.push), err);
      break;
    case SendSlot::kControl:
      break;
    case SendSlot::kProbe:
      probing_ = false;
      break;
    case SendSlot::kRead:
      if (Incoming* in = FindIncoming(slot.read_id)) {
        --in->reads_left;
        if (err != 0) in->read_error = err;
      }
      break;
  }
}

void Connection::EndPush(std::unique_ptr<PushOp> op, int err) {
  if (op == nullptr) return;
  FinishPush(*op, err);
  env_.push_ops->Give(std::move(op));
}

void Connection::FinishPush(PushOp& op, int err) {
  if (op.qt != 0) {
    CompletePush(op.qt, err);
    op.qt = 0;
  }
  ReleasePush(op);
}

void Connection::FailPopsOnClose() {
  while (!pops_.empty()) {
    env_.tokens->Fail(pops_.front(), EBADF);
    pops_.pop_front();
  }
}

bool Connection::StartClose() {
  FailPopsOnClose();
  if (state_ != State::kOpen || peer_closed_ || unpopped_data_ > 0) {
    return false;
  }
  std::unique_ptr<PushOp> op = env_.push_ops->Take();
  op->is_close = true;
  push_backlog_.push_back(std::move(op));
  state_ = State::kClosing;
  Service();
  return state_ == State::kClosing;
}

bool Connection::FlushDone() const {
  return state_ == State::kDead ||
         (close_sent_ && push_backlog_.empty() && rndv_waiting_.empty());
}

void Connection::KeepaliveTick(uint32_t ticks, uint32_t stall_ticks) {
  if (state_ != State::kOpen && state_ != State::kClosing) return;
  // The transport gives up on a silent peer within about 2 s, and fails
  // the probe then: one still out after whole intervals never will be.
  if (probing_ && ++probe_ticks_ >= stall_ticks) {
    DEMI_LOG(WARNING) << "qd " << qd_ << ": keepalive probe not completed in "
                      << stall_ticks << " ticks: send queue stalled";
    Abort(ETIMEDOUT);
    return;
  }
  bool waiting_on_peer = !pops_.empty() || !rndv_waiting_.empty() ||
                         !push_backlog_.empty() || state_ == State::kClosing;
  if (!waiting_on_peer || heard_) {
    heard_ = false;
    idle_ticks_ = 0;
    return;
  }
  if (++idle_ticks_ < ticks || probing_ || sends_.room() == 0) {
    return;
  }
  idle_ticks_ = 0;
  ibv_send_wr probe = {};
  probe.opcode = IBV_WR_RDMA_WRITE;  // Zero bytes: no address, no rkey.
  if (int err =
          PostSendWr(probe, SendSlot(SendSlot::kProbe), /*must_signal=*/true);
      err != 0) {
    Abort(err);
    return;
  }
  probing_ = true;
  probe_ticks_ = 0;
  DEMI_LOG(DEBUG) << "qd " << qd_ << ": keepalive probe";
}

void Connection::OnDisconnected() {
  if (state_ == State::kOpen && !peer_closed_) {
    // Not after its CLOSE: a peer that goes without one crashed, timed
    // out, or was cut off. INFO: a server whose clients come and go would
    // log one line each (2,000 in a soak's burst).
    DEMI_LOG(INFO) << "qd " << qd_ << ": the peer disconnected";
  }
  Abort(ECONNRESET);
}

void Connection::FailOn(const ibv_wc& wc, const char* what) {
  // Only the first failure says why: the flushes after it are its echo.
  // A soak's reset connections are diagnosed from these lines.
  if (state_ != State::kDead) {
    DEMI_LOG(WARNING) << "qd " << qd_ << ": " << what << " work request "
                      << wc.wr_id << " failed: " << ibv_wc_status_str(wc.status)
                      << " (vendor error " << wc.vendor_err << ")";
  }
  Abort(rdma::WcStatusToConnectionErrno(wc.status));
}

void Connection::Abort(int err) {
  if (error_ == 0) error_ = err;
  if (state_ == State::kDead) return;
  state_ = State::kDead;
  env_.aborted->insert(qd_);
  // Tokens fail now; memory that posted work requests still point at is
  // released only when their flush completions arrive.
  sends_.ForEachPosted([&](SendSlot& slot) {
    if (slot.push != nullptr && slot.push->qt != 0) {
      env_.tokens->Fail(slot.push->qt, error_);
      slot.push->qt = 0;
    }
    if (slot.qt != 0) {
      env_.tokens->Fail(slot.qt, error_);
      slot.qt = 0;
    }
  });
  sends_.DropStaged(error_, StagedDone());
  for (auto& op : push_backlog_) FinishPush(*op, error_);
  push_backlog_.clear();
  for (auto& entry : rndv_waiting_) FinishPush(*entry.second, error_);
  rndv_waiting_.clear();
  done_backlog_.clear();
  DeliverPops();  // Messages already here are still delivered.
  while (!pops_.empty()) {
    env_.tokens->Fail(pops_.front(), error_);
    pops_.pop_front();
  }
  ibv_qp_attr attr = {};
  attr.qp_state = IBV_QPS_ERR;
  if (int rc = ibv_modify_qp(qp_, &attr, IBV_QP_STATE); rc != 0) {
    DEMI_LOG(WARNING) << "qd " << qd_ << ": ibv_modify_qp(ERR): " << rc;
  }
}

}  // namespace demi
