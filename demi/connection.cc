#include "demi/connection.h"

#include <endian.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "rdma/log.h"
#include "rdma/status_util.h"
#include "rdma/verbs_call.h"
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
}

Connection::~Connection() {
  sends_.DropStaged(EBADF, StagedDone());
  // Whatever was still posted can no longer complete: the QP is gone first
  // (RdmaLibOs destroys it before us only after draining, or on shutdown).
  sends_.ForEachPosted([&](SendSlot& slot) {
    if (slot.header != nullptr) env_.pool->Unref(slot.header);
    if (slot.push != nullptr) FinishPush(*slot.push, EBADF);
  });
  if (header_ring_ != nullptr) env_.pool->Unref(header_ring_);
  for (auto& op : push_backlog_) FinishPush(*op, EBADF);
  for (auto& entry : rndv_waiting_) FinishPush(*entry.second, EBADF);
  for (Incoming& in : incoming_) {
    if (in.buffer != nullptr) env_.pool->Unref(in.buffer);
    if (in.target != nullptr) env_.pool->Unref(in.target);
  }
  while (!pops_.empty()) {
    env_.tokens->Fail(pops_.front(), EBADF);
    pops_.pop_front();
  }
}

absl::Status Connection::Start() {
  absl::StatusOr<Buffer*> ring =
      env_.pool->Allocate(size_t{kSendDepth} * sizeof(WireHeader));
  if (!ring.ok()) return rdma::ErrnoError(ENOMEM, "no memory for headers");
  header_ring_ = *ring;
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
  return EncodeConnectData(kBaseCredits, kMaxConnCredits, kEagerBufferSize);
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

void Connection::BackCredits() {
  if (credits_.Back() && !waiting_buffers_) {
    waiting_buffers_ = true;
    env_.receive->AddWaiting(qd_);
  }
  if (!credit_due_ && credits_.ReturnSoon()) {
    credit_due_ = true;
    env_.credit_due->push_back(qd_);
  }
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
      credits_.ReturnSoon()) {
    TrySendControl(WireType::kCredit, 0);
  }
}

int Connection::Push(demi_qtoken_t qt, const demi_sgarray_t& sga,
                     uint32_t length) {
  if (state_ == State::kDead) {
    env_.tokens->Fail(qt, error_ != 0 ? error_ : ECONNRESET);
    return 0;
  }
  if (TryPushInline(qt, sga, length)) return 0;
  auto op = std::make_unique<PushOp>();
  op->qt = qt;
  op->length = length;
  absl::Status status =
      op->length <= std::min(kMaxEagerPayload,
                             peer_eager_size_ - uint32_t{sizeof(WireHeader)})
          ? PrepareEager(PushMemoryOf(), *op, sga)
          : PrepareRndv(PushMemoryOf(), *op, sga);
  if (!status.ok()) {
    op->qt = 0;  // The call fails; no token to complete.
    FinishPush(*op, 0);
    return rdma::ErrnoOf(status);
  }
  push_backlog_.push_back(std::move(op));
  Service();
  return 0;
}

bool Connection::TryPushInline(demi_qtoken_t qt, const demi_sgarray_t& sga,
                               uint32_t length) {
  // Data keeps one credit in reserve, as in TrySendPush.
  if (state_ != State::kOpen || !push_backlog_.empty() ||
      length > max_inline_ || sga.sga_numsegs > max_send_sge_ ||
      send_credits_ < 2 || sends_.room() == 0) {
    return false;
  }
  // No header: its credits go in the immediate data (wire.h).
  uint32_t imm = htobe32(EagerImm(0, credits_.TakeReturn()));
  // Inline data is copied when posted: no keys, no references.
  ibv_sge sges[DEMI_SGARRAY_MAXSIZE];
  for (uint32_t i = 0; i < sga.sga_numsegs; ++i) {
    sges[i] = {reinterpret_cast<uintptr_t>(sga.sga_segs[i].sgaseg_buf),
               sga.sga_segs[i].sgaseg_len, 0};
  }
  int num_sge = static_cast<int>(sga.sga_numsegs);
  if (WouldStage(length)) {
    Stage(sges, num_sge, IBV_WR_SEND_WITH_IMM, imm, qt);
    --send_credits_;
    return true;
  }
  ibv_send_wr send = {};
  send.sg_list = sges;
  send.num_sge = num_sge;
  send.opcode = IBV_WR_SEND_WITH_IMM;
  send.imm_data = imm;
  send.send_flags = IBV_SEND_INLINE;
  absl::Status status =
      PostSendWr(send, SendSlot(SendSlot::kControl), /*must_signal=*/false);
  if (!status.ok()) {
    CompletePush(qt, rdma::ErrnoOf(status));
    Abort(rdma::ErrnoOf(status));
    return true;
  }
  --send_credits_;
  CompletePush(qt, 0);
  return true;
}

void Connection::Stage(const ibv_sge* sges, int num_sge, ibv_wr_opcode opcode,
                       uint32_t imm, demi_qtoken_t qt) {
  if (sends_.staged() == kDoorbellBatch) {
    PostStaged();
    if (state_ == State::kDead) {
      // Gone with the connection, as if it had been staged.
      if (qt != 0) CompletePush(qt, error_);
      return;
    }
  }
  sends_.StageInline(sges, num_sge, opcode, imm, qt);
  if (!doorbell_due_) {
    doorbell_due_ = true;
    env_.doorbell_due->push_back(qd_);
  }
}

void Connection::RingDoorbell() {
  doorbell_due_ = false;
  PostStaged();
}

void Connection::PostStaged() {
  posted_pass_ = *env_.poll_passes;
  if (int rc = sends_.Flush(StagedDone()); rc != 0) {
    DEMI_LOG(WARNING) << "qd " << qd_ << ": ibv_post_send: " << rc;
    Abort(rc);
  }
}

absl::Status Connection::BindWindows(PushOp& op) {
  for (size_t i = 0; i < op.windows.size(); ++i) {
    ibv_mw* mw = op.windows[i].get();
    ibv_send_wr bind = {};
    bind.opcode = IBV_WR_BIND_MW;
    bind.bind_mw.mw = mw;
    bind.bind_mw.rkey = ibv_inc_rkey(mw->rkey);
    bind.bind_mw.bind_info = op.binds[i];
    // Unsignalled: a failed bind completes on its own and aborts; RC runs
    // the send queue in order, so the window is bound before the peer can
    // see the announcement that names it.
    DEMI_RETURN_IF_ERROR(PostSendWr(bind, SendSlot(SendSlot::kControl),
                                    /*must_signal=*/false));
    mw->rkey = bind.bind_mw.rkey;
    op.rndv.segments[i].rkey = mw->rkey;
  }
  return absl::OkStatus();
}

absl::Status Connection::PostSend(const WireHeader& header, const void* extra,
                                  size_t extra_size,
                                  absl::Span<const ibv_sge> body,
                                  SendSlot slot) {
  WireHeader sent = header;
  // Data keeps a credit in reserve: with at most two left, what is queued
  // behind this message waits for the peer to return some.
  if (!push_backlog_.empty() && send_credits_ <= 2) {
    sent.flags |= kFlagStarved;
  }
  // Data goes without a header: its credits and flags in the immediate
  // data (wire.h).
  bool headless = sent.type == static_cast<uint8_t>(WireType::kEager);
  size_t head_size = headless ? 0 : sizeof(WireHeader) + extra_size;
  size_t total = head_size;
  for (const ibv_sge& sge : body) total += sge.length;
  // Inline data is copied at posting time: the header can live here, and
  // a push's memory is free again as soon as the post returns.
  bool inline_data = total <= max_inline_;
  alignas(8) std::byte local_head[sizeof(WireHeader) + sizeof(RndvDescriptor)];
  std::byte* head_bytes = local_head;
  uint32_t head_lkey = 0;
  if (headless) {
    // Nothing to place.
  } else if (!inline_data && head_size == sizeof(WireHeader)) {
    // The slot's own header space: registered once, nothing to allocate.
    head_bytes = header_ring_->data + sends_.next_index() * sizeof(WireHeader);
    head_lkey = SgaPool::Lkey(header_ring_, env_.device);
  } else if (!inline_data || head_size > sizeof(local_head)) {
    absl::StatusOr<Buffer*> piece = env_.pool->Allocate(head_size);
    if (!piece.ok()) {
      if (slot.push != nullptr) FinishPush(*slot.push, ENOMEM);
      return piece.status();
    }
    slot.header = *piece;
    head_bytes = slot.header->data;
    head_lkey = SgaPool::Lkey(slot.header, env_.device);
  }
  ibv_sge sges[DEMI_SGARRAY_MAXSIZE + 1];
  int num_sge = 0;
  if (!headless) {
    std::memcpy(head_bytes, &sent, sizeof(sent));
    if (extra_size > 0) {
      std::memcpy(head_bytes + sizeof(sent), extra, extra_size);
    }
    sges[num_sge++] = {reinterpret_cast<uintptr_t>(head_bytes),
                       static_cast<uint32_t>(head_size), head_lkey};
  }
  for (const ibv_sge& sge : body) sges[num_sge++] = sge;
  ibv_send_wr send = {};
  send.sg_list = sges;
  send.num_sge = num_sge;
  send.opcode = headless ? IBV_WR_SEND_WITH_IMM : IBV_WR_SEND;
  if (headless) send.imm_data = htobe32(EagerImm(sent.flags, sent.credits));
  if (inline_data) send.send_flags |= IBV_SEND_INLINE;
  std::unique_ptr<PushOp> done_now;
  if (inline_data && slot.push != nullptr && !slot.push->is_close) {
    done_now = std::move(slot.push);
  }
  if (inline_data && slot.push == nullptr && slot.header == nullptr &&
      WouldStage(static_cast<uint32_t>(total))) {
    // Copied when staged: the push's memory is free now, its token
    // completes when the stage is posted.
    demi_qtoken_t qt = done_now != nullptr ? done_now->qt : 0;
    Stage(sges, num_sge, send.opcode, send.imm_data, qt);
    if (done_now != nullptr) {
      done_now->qt = 0;
      FinishPush(*done_now, 0);
    }
    --send_credits_;
    return absl::OkStatus();
  }
  // A push completes with its send unless it was inline; CLOSE is waited for.
  bool must_signal = slot.push != nullptr;
  absl::Status status = PostSendWr(send, std::move(slot), must_signal);
  if (!status.ok()) {
    if (done_now != nullptr) FinishPush(*done_now, rdma::ErrnoOf(status));
    return status;
  }
  --send_credits_;
  if (done_now != nullptr) FinishPush(*done_now, 0);
  return absl::OkStatus();
}

absl::Status Connection::PostSendWr(ibv_send_wr& send, SendSlot slot,
                                    bool must_signal) {
  posted_pass_ = *env_.poll_passes;
  if (int rc = sends_.Post(send, slot, must_signal, StagedDone()); rc != 0) {
    if (slot.header != nullptr) env_.pool->Unref(slot.header);
    if (slot.push != nullptr) FinishPush(*slot.push, rc);
    return rdma::ErrnoError(rc, "ibv_post_send");
  }
  return absl::OkStatus();
}

bool Connection::TrySendControl(WireType type, uint64_t cookie) {
  if (send_credits_ < 1 || sends_.room() == 0) return false;
  WireHeader header = {};
  header.type = static_cast<uint8_t>(type);
  header.credits = credits_.TakeReturn();
  header.cookie = cookie;
  absl::Status status =
      PostSend(header, nullptr, 0, {}, SendSlot(SendSlot::kControl));
  if (!status.ok()) {
    Abort(rdma::ErrnoOf(status));
    return false;
  }
  return true;
}

bool Connection::TrySendPush() {
  PushOp& op = *push_backlog_.front();
  // Data keeps one credit in reserve so that credits and rendezvous
  // completions can always be sent: otherwise two peers that both ran out
  // could wait on each other forever.
  uint32_t needed = op.is_close ? 1 : 2;
  if (send_credits_ < needed || op.windows.size() >= sends_.room()) {
    return false;
  }
  WireHeader header = {};
  header.credits = credits_.TakeReturn();
  SendSlot slot{SendSlot::kPush};
  const void* extra = nullptr;
  size_t extra_size = 0;
  absl::Span<const ibv_sge> body;
  if (op.is_close) {
    header.type = static_cast<uint8_t>(WireType::kClose);
  } else if (op.is_rndv) {
    if (absl::Status status = BindWindows(op); !status.ok()) {
      Abort(rdma::ErrnoOf(status));
      return false;
    }
    header.type = static_cast<uint8_t>(WireType::kRndv);
    header.length = op.length;
    header.cookie = next_cookie_++;
    extra = &op.rndv;
    extra_size = RndvMessageSize(op.rndv.num_segments) - sizeof(WireHeader);
  } else {
    header.type = static_cast<uint8_t>(WireType::kEager);
    header.length = op.length;
    body = op.sges;
  }
  std::unique_ptr<PushOp> owned = std::move(push_backlog_.front());
  push_backlog_.pop_front();
  // `op` may be gone once PostSend returns (finished inline, or failed).
  bool is_rndv = op.is_rndv;
  if (is_rndv) {
    // The peer may answer before this send's own completion shows up.
    rndv_waiting_.emplace(header.cookie, std::move(owned));
  } else {
    slot.push = std::move(owned);
  }
  absl::Status status =
      PostSend(header, extra, extra_size, body, std::move(slot));
  if (!status.ok()) {
    if (is_rndv) {
      auto node = rndv_waiting_.extract(header.cookie);
      FinishPush(*node.mapped(), rdma::ErrnoOf(status));
    }
    Abort(rdma::ErrnoOf(status));
    return false;
  }
  return true;
}

void Connection::Service() {
  if (state_ != State::kOpen && state_ != State::kClosing) return;
  while (!done_backlog_.empty() &&
         TrySendControl(WireType::kRndvDone, done_backlog_.front())) {
    done_backlog_.pop_front();
  }
  while (!push_backlog_.empty() && state_ != State::kDead && TrySendPush()) {
  }
  if (state_ != State::kDead && credits_.ReturnNow()) {
    TrySendControl(WireType::kCredit, 0);
  }
  if (rndv_unread_ > 0) StartReads();
}

void Connection::OnSendCompletion(const ibv_wc& wc) {
  heard_ = true;
  int err = rdma::WcStatusToErrno(wc.status);
  // Everything posted before it is complete too: those requests were
  // unsignalled and succeeded (a failure always completes on its own).
  bool known = sends_.Complete(
      wc.wr_id, err, [&](SendSlot& slot, int e) { RetireSend(slot, e); });
  if (!known) return;
  if (err != 0) {
    Abort(err);
    return;
  }
  DeliverPops();
}

void Connection::RetireSend(SendSlot& slot, int err) {
  if (slot.header != nullptr) env_.pool->Unref(slot.header);
  switch (slot.kind) {
    case SendSlot::kPush:
      // A rendezvous announcement carries no push: it waits for RNDV_DONE.
      if (slot.push == nullptr) break;
      if (slot.push->is_close && err == 0) close_sent_ = true;
      FinishPush(*slot.push, err);
      break;
    case SendSlot::kControl:
      break;
    case SendSlot::kProbe:
      probing_ = false;
      break;
    case SendSlot::kRead:
      if (Incoming* in = FindIncoming(slot.read_cookie)) {
        --in->reads_left;
        if (err != 0) in->read_error = err;
      }
      break;
  }
}

void Connection::CompletePush(demi_qtoken_t qt, int err) {
  if (err != 0) {
    env_.tokens->Fail(qt, err);
  } else {
    env_.tokens->Succeed(qt, DEMI_OPC_PUSH);
  }
}

void Connection::FinishPush(PushOp& op, int err) {
  if (op.qt != 0) {
    CompletePush(op.qt, err);
    op.qt = 0;
  }
  ReleasePush(env_.pool, op);
}

bool Connection::StartClose() {
  while (!pops_.empty()) {
    env_.tokens->Fail(pops_.front(), EBADF);
    pops_.pop_front();
  }
  if (state_ != State::kOpen || peer_closed_ || unpopped_data_ > 0) {
    return false;
  }
  auto op = std::make_unique<PushOp>();
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

void Connection::KeepaliveTick(uint32_t ticks) {
  if (state_ != State::kOpen && state_ != State::kClosing) return;
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
  absl::Status status =
      PostSendWr(probe, SendSlot(SendSlot::kProbe), /*must_signal=*/true);
  if (!status.ok()) {
    Abort(rdma::ErrnoOf(status));
    return;
  }
  probing_ = true;
  DEMI_LOG(DEBUG) << "qd " << qd_ << ": keepalive probe";
}

void Connection::OnDisconnected() { Abort(ECONNRESET); }

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
