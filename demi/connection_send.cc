// The send half of Connection: pushes (inline, staged for the doorbell,
// eager or rendezvous from the backlog), control messages, and the posting
// of send work requests.
#include <endian.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "demi/connection.h"
#include "rdma/log.h"
#include "rdma/status_util.h"

namespace demi {

int Connection::PushNotInline(const demi_sgarray_t& sga, uint32_t length,
                              demi_qtoken_t* qt_out) {
  if (state_ == State::kDead) {
    *qt_out = env_.tokens->AddFailed(qd_, DEMI_OPC_PUSH,
                                     error_ != 0 ? error_ : ECONNRESET);
    return 0;
  }
  demi_qtoken_t qt = env_.tokens->Add(qd_, DEMI_OPC_PUSH);
  if (TryPushPiece(qt, sga, length)) {
    *qt_out = qt;
    return 0;
  }
  std::unique_ptr<PushOp> op = env_.push_ops->Take();
  op->qt = qt;
  op->length = length;
  absl::Status status = FitsEager(op->length)
                            ? PrepareEager(PushMemoryOf(), *op, sga)
                            : PrepareRndv(PushMemoryOf(), *op, sga);
  if (!status.ok()) {
    op->qt = 0;  // The call fails; no token to complete.
    EndPush(std::move(op), 0);
    env_.tokens->Erase(qt);
    return rdma::ErrnoOf(status);
  }
  *qt_out = qt;
  if (push_backlog_.empty() && done_backlog_.empty() &&
      state_ == State::kOpen && !op->is_rndv && CanSendEager()) {
    // Nothing waits ahead of it: straight to the wire, as Service would.
    SendEager(std::move(op));
    return 0;
  }
  push_backlog_.push_back(std::move(op));
  Service();
  return 0;
}

bool Connection::TryPushInline(const demi_sgarray_t& sga, uint32_t length,
                               demi_qtoken_t* qt_out) {
  // Data keeps one credit in reserve, as in TrySendPush.
  if (state_ != State::kOpen || !push_backlog_.empty() ||
      length > max_inline_ || sga.sga_numsegs > max_send_sge_ ||
      send_credits_ < 2 || sends_.room() == 0) {
    return false;
  }
  // No header: its credits go in the immediate data (wire.h).
  uint32_t imm = htobe32(EagerImm(0, credits_.TakeReturn()));
  // Inline data is copied when posted (or staged): no keys, no references.
  for (uint32_t i = 0; i < sga.sga_numsegs; ++i) {
    data_sges_[i] = {reinterpret_cast<uintptr_t>(sga.sga_segs[i].sgaseg_buf),
                     sga.sga_segs[i].sgaseg_len, 0};
  }
  int num_sge = static_cast<int>(sga.sga_numsegs);
  if (WouldStage(length)) {
    demi_qtoken_t qt = env_.tokens->Add(qd_, DEMI_OPC_PUSH);
    Stage(data_sges_, num_sge, IBV_WR_SEND_WITH_IMM, imm, qt);
    --send_credits_;
    *qt_out = qt;
    return true;
  }
  data_wr_.num_sge = num_sge;
  data_wr_.imm_data = imm;
  data_wr_.send_flags = IBV_SEND_INLINE;  // Post may add SIGNALED.
  posted_pass_ = *env_.poll_passes;
  // The token after the post: the staged pushes it reports come first.
  if (int err = sends_.PostBare(data_wr_, StagedDone()); err != 0) {
    demi_qtoken_t qt = env_.tokens->Add(qd_, DEMI_OPC_PUSH);
    CompletePush(qt, err);
    Abort(err);
    *qt_out = qt;
    return true;
  }
  --send_credits_;
  *qt_out = env_.tokens->AddDone(qd_, DEMI_OPC_PUSH);
  return true;
}

bool Connection::TryPushPiece(demi_qtoken_t qt, const demi_sgarray_t& sga,
                              uint32_t length) {
  // As Push's own way straight to the wire (and PrepareEager's: a segment
  // and the header's SGE), for one segment in the pool, too long to inline.
  if (state_ != State::kOpen || sga.sga_numsegs != 1 || max_send_sge_ < 2 ||
      length <= max_inline_ || !FitsEager(length) || !push_backlog_.empty() ||
      !done_backlog_.empty() || !CanSendEager()) {
    return false;
  }
  const demi_sgaseg_t& seg = sga.sga_segs[0];
  Buffer* owner = env_.pool->Find(sga.sga_buf, seg.sgaseg_buf, length);
  if (owner == nullptr) return false;
  data_sges_[0] = {reinterpret_cast<uintptr_t>(seg.sgaseg_buf), length,
                   SgaPool::Lkey(owner, env_.device)};
  data_wr_.num_sge = 1;
  // No header: its credits go in the immediate data (wire.h). Nothing is
  // queued behind it, so the peer need not hear that this side starves.
  data_wr_.imm_data = htobe32(EagerImm(0, credits_.TakeReturn()));
  data_wr_.send_flags = 0;  // PostPiece adds SIGNALED.
  posted_pass_ = *env_.poll_passes;
  if (int err = sends_.PostPiece(data_wr_, qt, owner, StagedDone()); err != 0) {
    CompletePush(qt, err);
    Abort(err);
    return true;
  }
  --send_credits_;
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
    if (int err = PostSendWr(bind, SendSlot(SendSlot::kControl),
                             /*must_signal=*/false);
        err != 0) {
      return rdma::ErrnoError(err, "ibv_post_send");
    }
    mw->rkey = bind.bind_mw.rkey;
    op.rndv.segments[i].rkey = mw->rkey;
  }
  return absl::OkStatus();
}

absl::Status Connection::PostSend(const WireHeader& header, const void* extra,
                                  size_t extra_size, absl::Span<ibv_sge> body,
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
  } else if (!inline_data && head_size == sizeof(WireHeader) && header_ring_) {
    // The slot's own header space: registered once, nothing to allocate.
    head_bytes = header_ring_->data + sends_.next_index() * sizeof(WireHeader);
    head_lkey = SgaPool::Lkey(header_ring_.get(), env_.device);
  } else if (!inline_data || head_size > sizeof(local_head)) {
    absl::StatusOr<Buffer*> piece = env_.pool->Allocate(head_size);
    if (!piece.ok()) {
      if (slot.push != nullptr) FinishPush(*slot.push, ENOMEM);
      return piece.status();
    }
    slot.header.reset(*piece);
    head_bytes = slot.header->data;
    head_lkey = SgaPool::Lkey(slot.header.get(), env_.device);
  }
  // Data is its body alone, posted from where the push keeps it; the
  // other messages are their header alone.
  ibv_sge head_sge;
  ibv_sge* sges = body.data();
  int num_sge = static_cast<int>(body.size());
  if (!headless) {
    std::memcpy(head_bytes, &sent, sizeof(sent));
    if (extra_size > 0) {
      std::memcpy(head_bytes + sizeof(sent), extra, extra_size);
    }
    head_sge = {reinterpret_cast<uintptr_t>(head_bytes),
                static_cast<uint32_t>(head_size), head_lkey};
    sges = &head_sge;
    num_sge = 1;
  }
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
  if (inline_data && slot.push == nullptr && !slot.header &&
      WouldStage(static_cast<uint32_t>(total))) {
    // Copied when staged: the push's memory is free now, its token
    // completes when the stage is posted.
    demi_qtoken_t qt = done_now != nullptr ? done_now->qt : 0;
    Stage(sges, num_sge, send.opcode, send.imm_data, qt);
    if (done_now != nullptr) {
      done_now->qt = 0;
      EndPush(std::move(done_now), 0);
    }
    --send_credits_;
    return absl::OkStatus();
  }
  // A push completes with its send unless it was inline; CLOSE is waited for.
  bool must_signal = slot.push != nullptr;
  if (int err = PostSendWr(send, std::move(slot), must_signal); err != 0) {
    EndPush(std::move(done_now), err);
    return rdma::ErrnoError(err, "ibv_post_send");
  }
  --send_credits_;
  EndPush(std::move(done_now), 0);
  return absl::OkStatus();
}

int Connection::PostSendWr(ibv_send_wr& send, SendSlot&& slot,
                           bool must_signal) {
  posted_pass_ = *env_.poll_passes;
  int rc = sends_.Post(send, slot, must_signal, StagedDone());
  if (rc != 0 && slot.push != nullptr) FinishPush(*slot.push, rc);
  return rc;
}

bool Connection::TrySendControl(WireType type, uint64_t cookie) {
  // Dead: an Abort in this pass emptied done_backlog_, yet a rendezvous
  // delivered by it may have queued its RNDV_DONE again.
  if (state_ == State::kDead || bind_waits_ || send_credits_ < 1 ||
      sends_.room() == 0) {
    return false;
  }
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
  // A staged message whose full stage failed to post (Stage) comes back OK
  // from a dead connection: Abort emptied done_backlog_, which the caller
  // would pop from next.
  return state_ != State::kDead;
}

bool Connection::SendEager(std::unique_ptr<PushOp> op) {
  WireHeader header = {};
  header.type = static_cast<uint8_t>(WireType::kEager);
  header.credits = credits_.TakeReturn();
  header.length = op->length;
  absl::Span<ibv_sge> body = absl::MakeSpan(op->sges);  // The slot keeps it.
  SendSlot slot{SendSlot::kPush};
  slot.push = std::move(op);
  absl::Status status = PostSend(header, nullptr, 0, body, std::move(slot));
  if (!status.ok()) {
    Abort(rdma::ErrnoOf(status));
    return false;
  }
  return state_ != State::kDead;  // As in TrySendControl.
}

bool Connection::TrySendPush() {
  PushOp& op = *push_backlog_.front();
  if (!op.is_close && !op.is_rndv) {
    if (!CanSendEager()) return false;
    std::unique_ptr<PushOp> owned = std::move(push_backlog_.front());
    push_backlog_.pop_front();
    return SendEager(std::move(owned));
  }
  // Data keeps one credit in reserve so that credits and rendezvous
  // completions can always be sent: otherwise two peers that both ran out
  // could wait on each other forever. The rest is CLOSE or a rendezvous.
  uint32_t needed = op.is_close ? 1 : 2;
  if (send_credits_ < needed || op.windows.size() >= sends_.room()) {
    return false;
  }
  if (op.is_rndv && env_.binds_after_drain) {
    // Before the header takes the credits owed: a push that waits sends
    // none, and credits taken and not sent are lost to the peer for good.
    bind_waits_ = sends_.posted() > 0;
    if (bind_waits_) {
      // Unsignalled requests complete only with a signalled one after
      // them.
      if (!sends_.has_signaled()) PostDrainMark();
      return false;
    }
  }
  WireHeader header = {};
  header.credits = credits_.TakeReturn();
  SendSlot slot{SendSlot::kPush};
  const void* extra = nullptr;
  size_t extra_size = 0;
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
      PostSend(header, extra, extra_size, {}, std::move(slot));
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

}  // namespace demi
