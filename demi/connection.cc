#include "demi/connection.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "rdma/log.h"
#include "rdma/status_util.h"
#include "rdma/verbs_call.h"
#include "rdma/wc_status.h"

namespace demi {
namespace {

// A zero-length sga: what a pop returns at EOF.
demi_sgarray_t EofSga() {
  demi_sgarray_t sga;
  std::memset(&sga, 0, sizeof(sga));
  sga.sga_numsegs = 1;
  return sga;
}

}  // namespace

Connection::Connection(int qd, ConnectionEnv env, ibv_qp* qp,
                       uint32_t max_inline, uint32_t max_send_sge)
    : qd_(qd),
      env_(env),
      qp_(qp),
      max_inline_(max_inline),
      max_send_sge_(max_send_sge),
      credits_(&env.receive->credits()) {}

Connection::~Connection() {
  // Whatever was still posted can no longer complete: the QP is gone first
  // (RdmaLibOs destroys it before us only after draining, or on shutdown).
  for (auto& wr : sends_in_flight_) {
    if (wr->header != nullptr) env_.pool->Unref(wr->header);
    if (wr->push != nullptr) FinishPush(*wr->push, EBADF);
  }
  for (auto& op : push_backlog_) FinishPush(*op, EBADF);
  for (auto& entry : rndv_waiting_) FinishPush(*entry.second, EBADF);
  for (Incoming& in : incoming_) {
    if (in.buffer != nullptr) env_.pool->Unref(in.buffer);
    if (in.target != nullptr) env_.pool->Unref(in.target);
  }
  for (demi_qtoken_t qt : pops_) env_.tokens->Fail(qt, EBADF);
}

absl::Status Connection::Start() {
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

absl::Status Connection::Push(demi_qtoken_t qt, const demi_sgarray_t& sga,
                              uint32_t length) {
  if (state_ == State::kDead) {
    env_.tokens->Fail(qt, error_ != 0 ? error_ : ECONNRESET);
    return absl::OkStatus();
  }
  if (TryPushInline(qt, sga, length)) return absl::OkStatus();
  auto op = std::make_unique<PushOp>();
  op->qt = qt;
  op->length = length;
  absl::Status status =
      op->length <= std::min(kMaxEagerPayload,
                             peer_eager_size_ - uint32_t{sizeof(WireHeader)})
          ? PrepareEager(*op, sga)
          : PrepareRndv(*op, sga);
  if (!status.ok()) {
    op->qt = 0;  // The call fails; no token to complete.
    FinishPush(*op, 0);
    return status;
  }
  push_backlog_.push_back(std::move(op));
  Service();
  return absl::OkStatus();
}

bool Connection::TryPushInline(demi_qtoken_t qt, const demi_sgarray_t& sga,
                               uint32_t length) {
  // Data keeps one credit in reserve, as in TrySendPush.
  if (state_ != State::kOpen || !push_backlog_.empty() ||
      sizeof(WireHeader) + length > max_inline_ ||
      sga.sga_numsegs + 1 > max_send_sge_ || send_credits_ < 2 ||
      posted_sends_ >= kSendDepth) {
    return false;
  }
  WireHeader header = {};
  header.type = static_cast<uint8_t>(WireType::kEager);
  header.length = length;
  header.credits = credits_.TakeReturn();
  // Inline data is copied when posted: no keys, no references.
  ibv_sge sges[DEMI_SGARRAY_MAXSIZE + 1];
  sges[0] = {reinterpret_cast<uintptr_t>(&header), sizeof(header), 0};
  for (uint32_t i = 0; i < sga.sga_numsegs; ++i) {
    sges[i + 1] = {reinterpret_cast<uintptr_t>(sga.sga_segs[i].sgaseg_buf),
                   sga.sga_segs[i].sgaseg_len, 0};
  }
  ibv_send_wr send = {};
  send.sg_list = sges;
  send.num_sge = static_cast<int>(sga.sga_numsegs + 1);
  send.opcode = IBV_WR_SEND;
  send.send_flags = IBV_SEND_INLINE;
  absl::Status status =
      PostSendWr(send, NewSendWr(SendWr::kControl), /*must_signal=*/false);
  if (!status.ok()) {
    CompletePush(qt, rdma::ErrnoOf(status));
    Abort(rdma::ErrnoOf(status));
    return true;
  }
  --send_credits_;
  CompletePush(qt, 0);
  return true;
}

absl::Status Connection::PrepareEager(PushOp& op, const demi_sgarray_t& sga) {
  uint32_t n = sga.sga_numsegs;
  std::vector<Buffer*> owners(n);
  uint32_t foreign_bytes = 0;
  for (uint32_t i = 0; i < n; ++i) {
    owners[i] =
        env_.pool->Find(sga.sga_segs[i].sgaseg_buf, sga.sga_segs[i].sgaseg_len);
    if (owners[i] == nullptr) foreign_bytes += sga.sga_segs[i].sgaseg_len;
  }
  // One SGE per segment after the header, unless the device gathers fewer:
  // then everything is copied into one piece.
  bool copy_all = n + 1 > max_send_sge_;
  if (copy_all) foreign_bytes = op.length;
  Buffer* staging = nullptr;
  if (foreign_bytes > 0) {
    DEMI_ASSIGN_OR_RETURN(staging, env_.pool->Allocate(foreign_bytes));
    op.holds.push_back(staging);
  }
  uint32_t staged = 0;
  uint32_t staging_lkey =
      staging != nullptr ? SgaPool::Lkey(staging, env_.device) : 0;
  for (uint32_t i = 0; i < n; ++i) {
    const void* addr = sga.sga_segs[i].sgaseg_buf;
    uint32_t len = sga.sga_segs[i].sgaseg_len;
    if (owners[i] != nullptr && !copy_all) {
      env_.pool->Ref(owners[i]);
      op.holds.push_back(owners[i]);
      op.sges.push_back({reinterpret_cast<uintptr_t>(addr), len,
                         SgaPool::Lkey(owners[i], env_.device)});
      continue;
    }
    // Copied now, so the application may reuse its memory at once.
    std::memcpy(staging->data + staged, addr, len);
    if (copy_all && i > 0) {
      op.sges.back().length += len;
    } else {
      op.sges.push_back({reinterpret_cast<uintptr_t>(staging->data + staged),
                         len, staging_lkey});
    }
    staged += len;
  }
  return absl::OkStatus();
}

absl::Status Connection::PrepareRndv(PushOp& op, const demi_sgarray_t& sga) {
  op.is_rndv = true;
  op.rndv.num_segments = sga.sga_numsegs;
  for (uint32_t i = 0; i < sga.sga_numsegs; ++i) {
    std::byte* addr = static_cast<std::byte*>(sga.sga_segs[i].sgaseg_buf);
    uint32_t len = sga.sga_segs[i].sgaseg_len;
    Buffer* owner = env_.pool->Find(addr, len);
    if (owner == nullptr && len <= kMaxForeignCopy) {
      DEMI_ASSIGN_OR_RETURN(owner, env_.pool->Allocate(len));
      std::memcpy(owner->data, addr, len);
      addr = owner->data;
    } else if (owner != nullptr) {
      env_.pool->Ref(owner);
    }
    if (owner != nullptr) op.holds.push_back(owner);
    // The peer may read exactly this range, through this QP only, and only
    // until the push ends. Pool pieces are registered for binding already;
    // foreign memory is registered for this push (no remote access of its
    // own either).
    ibv_mr* mr =
        owner != nullptr ? owner->slab->mrs[env_.device].get() : nullptr;
    if (mr == nullptr) {
      DEMI_ASSIGN_OR_RETURN(rdma::MrPtr foreign,
                            rdma::RegisterMr(env_.pd, absl::MakeSpan(addr, len),
                                             IBV_ACCESS_MW_BIND));
      mr = foreign.get();
      op.read_mrs.push_back(std::move(foreign));
    }
    DEMI_ASSIGN_OR_RETURN(rdma::MwPtr window,
                          rdma::AllocMw(env_.pd, IBV_MW_TYPE_2));
    ibv_mw_bind_info bind = {};
    bind.mr = mr;
    bind.addr = reinterpret_cast<uintptr_t>(addr);
    bind.length = len;
    bind.mw_access_flags = IBV_ACCESS_REMOTE_READ | IBV_ACCESS_ZERO_BASED;
    op.binds.push_back(bind);
    op.windows.push_back(std::move(window));
    op.rndv.segments[i] = {0, 0, len};
  }
  return absl::OkStatus();
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
    DEMI_RETURN_IF_ERROR(PostSendWr(bind, NewSendWr(SendWr::kControl),
                                    /*must_signal=*/false));
    mw->rkey = bind.bind_mw.rkey;
    op.rndv.segments[i].rkey = mw->rkey;
  }
  return absl::OkStatus();
}

absl::Status Connection::PostSend(const WireHeader& header, const void* extra,
                                  size_t extra_size,
                                  const std::vector<ibv_sge>& body,
                                  std::unique_ptr<SendWr> wr) {
  WireHeader sent = header;
  // Data keeps a credit in reserve: with at most two left, what is queued
  // behind this message waits for the peer to return some.
  if (!push_backlog_.empty() && send_credits_ <= 2) {
    sent.flags |= kFlagStarved;
  }
  size_t head_size = sizeof(WireHeader) + extra_size;
  size_t total = head_size;
  for (const ibv_sge& sge : body) total += sge.length;
  // Inline data is copied at posting time: the header can live here, and
  // a push's memory is free again as soon as the post returns.
  bool inline_data = total <= max_inline_;
  alignas(8) std::byte local_head[sizeof(WireHeader) + sizeof(RndvDescriptor)];
  std::byte* head_bytes = local_head;
  uint32_t head_lkey = 0;
  if (!inline_data || head_size > sizeof(local_head)) {
    absl::StatusOr<Buffer*> piece = env_.pool->Allocate(head_size);
    if (!piece.ok()) {
      if (wr->push != nullptr) FinishPush(*wr->push, ENOMEM);
      return piece.status();
    }
    wr->header = *piece;
    head_bytes = wr->header->data;
    head_lkey = SgaPool::Lkey(wr->header, env_.device);
  }
  std::memcpy(head_bytes, &sent, sizeof(sent));
  if (extra_size > 0) {
    std::memcpy(head_bytes + sizeof(sent), extra, extra_size);
  }
  ibv_sge sges[DEMI_SGARRAY_MAXSIZE + 1];
  sges[0] = {reinterpret_cast<uintptr_t>(head_bytes),
             static_cast<uint32_t>(head_size), head_lkey};
  for (size_t i = 0; i < body.size(); ++i) sges[i + 1] = body[i];
  ibv_send_wr send = {};
  send.sg_list = sges;
  send.num_sge = static_cast<int>(body.size() + 1);
  send.opcode = IBV_WR_SEND;
  if (inline_data) send.send_flags |= IBV_SEND_INLINE;
  std::unique_ptr<PushOp> done_now;
  if (inline_data && wr->push != nullptr && !wr->push->is_close) {
    done_now = std::move(wr->push);
  }
  // A push completes with its send unless it was inline; CLOSE is waited for.
  bool must_signal = wr->push != nullptr;
  absl::Status status = PostSendWr(send, std::move(wr), must_signal);
  if (!status.ok()) {
    if (done_now != nullptr) FinishPush(*done_now, rdma::ErrnoOf(status));
    return status;
  }
  --send_credits_;
  if (done_now != nullptr) FinishPush(*done_now, 0);
  return absl::OkStatus();
}

absl::Status Connection::PostSendWr(ibv_send_wr& send,
                                    std::unique_ptr<SendWr> wr,
                                    bool must_signal) {
  wr->signaled = must_signal || unsignaled_run_ + 1 >= kSignalInterval;
  send.wr_id = reinterpret_cast<uintptr_t>(wr.get());
  if (wr->signaled) send.send_flags |= IBV_SEND_SIGNALED;
  ibv_send_wr* bad = nullptr;
  absl::Status status =
      rdma::CheckRc(ibv_post_send(qp_, &send, &bad), "ibv_post_send");
  if (!status.ok()) {
    if (wr->header != nullptr) env_.pool->Unref(wr->header);
    if (wr->push != nullptr) FinishPush(*wr->push, rdma::ErrnoOf(status));
    return status;
  }
  ++posted_sends_;
  if (wr->signaled) {
    ++signaled_sends_;
    unsignaled_run_ = 0;
  } else {
    ++unsignaled_run_;
  }
  sends_in_flight_.push_back(std::move(wr));
  return absl::OkStatus();
}

bool Connection::TrySendControl(WireType type, uint64_t cookie) {
  if (send_credits_ < 1 || posted_sends_ >= kSendDepth) return false;
  WireHeader header = {};
  header.type = static_cast<uint8_t>(type);
  header.credits = credits_.TakeReturn();
  header.cookie = cookie;
  std::unique_ptr<SendWr> wr = NewSendWr(SendWr::kControl);
  absl::Status status = PostSend(header, nullptr, 0, {}, std::move(wr));
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
  if (send_credits_ < needed ||
      posted_sends_ + op.windows.size() >= kSendDepth) {
    return false;
  }
  WireHeader header = {};
  header.credits = credits_.TakeReturn();
  std::unique_ptr<SendWr> wr = NewSendWr(SendWr::kPush);
  const void* extra = nullptr;
  size_t extra_size = 0;
  static const std::vector<ibv_sge> kNoBody;
  const std::vector<ibv_sge>* body = &kNoBody;
  if (op.is_close) {
    header.type = static_cast<uint8_t>(WireType::kClose);
  } else if (op.is_rndv) {
    if (absl::Status status = BindWindows(op); !status.ok()) {
      RecycleSendWr(std::move(wr));
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
    body = &op.sges;
  }
  std::unique_ptr<PushOp> owned = std::move(push_backlog_.front());
  push_backlog_.pop_front();
  // `op` may be gone once PostSend returns (finished inline, or failed).
  bool is_rndv = op.is_rndv;
  if (is_rndv) {
    // The peer may answer before this send's own completion shows up.
    rndv_waiting_.emplace(header.cookie, std::move(owned));
  } else {
    wr->push = std::move(owned);
  }
  absl::Status status =
      PostSend(header, extra, extra_size, *body, std::move(wr));
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
  StartReads();
}

Connection::Incoming* Connection::FindIncoming(uint64_t cookie) {
  for (Incoming& in : incoming_) {
    if (in.type == WireType::kRndv && in.cookie == cookie) return &in;
  }
  return nullptr;
}

void Connection::StartReads() {
  if (state_ == State::kDead || rndv_unread_ == 0) return;
  size_t wanted = std::min(pops_.size(), incoming_.size());
  for (size_t i = 0; i < wanted; ++i) {
    Incoming& in = incoming_[i];
    if (in.type != WireType::kRndv || in.reading) continue;
    if (posted_sends_ + in.rndv->num_segments > kSendDepth) return;
    absl::StatusOr<Buffer*> target = env_.pool->Allocate(in.length);
    if (!target.ok()) {
      // No memory to receive into: this pop fails, the message waits.
      env_.tokens->Fail(pops_.front(), EAGAIN);
      pops_.pop_front();
      return;
    }
    in.target = *target;
    in.reading = true;
    --rndv_unread_;
    uint32_t offset = 0;
    for (uint32_t s = 0; s < in.rndv->num_segments; ++s) {
      const RndvSegment& seg = in.rndv->segments[s];
      ibv_sge sge = {reinterpret_cast<uintptr_t>(in.target->data + offset),
                     seg.length, SgaPool::Lkey(in.target, env_.device)};
      std::unique_ptr<SendWr> wr = NewSendWr(SendWr::kRead);
      wr->read_cookie = in.cookie;
      ibv_send_wr send = {};
      send.sg_list = &sge;
      send.num_sge = 1;
      send.opcode = IBV_WR_RDMA_READ;
      send.wr.rdma.remote_addr = seg.addr;
      send.wr.rdma.rkey = seg.rkey;
      // The data is there only when the READ's completion says so.
      absl::Status status = PostSendWr(send, std::move(wr), true);
      if (!status.ok()) {
        Abort(rdma::ErrnoOf(status));
        return;
      }
      ++in.reads_left;
      offset += seg.length;
    }
  }
}

void Connection::Pop(demi_qtoken_t qt) {
  pops_.push_back(qt);
  DeliverPops();
  if (state_ == State::kDead) {
    while (!pops_.empty()) {
      env_.tokens->Fail(pops_.front(), error_);
      pops_.pop_front();
    }
    return;
  }
  StartReads();
}

void Connection::DeliverPops() {
  while (!pops_.empty() && !incoming_.empty()) {
    Incoming& in = incoming_.front();
    demi_qresult_t result;
    std::memset(&result, 0, sizeof(result));
    result.qr_opcode = DEMI_OPC_POP;
    demi_sgarray_t& sga = result.qr_value.sga;
    if (in.type == WireType::kClose) {
      sga = EofSga();  // EOF stays at the head: every later pop sees it.
      env_.tokens->Complete(pops_.front(), result);
      pops_.pop_front();
      continue;
    }
    Buffer* buffer;
    std::byte* data;
    if (in.type == WireType::kEager) {
      buffer = in.buffer;
      data = buffer->data + sizeof(WireHeader);
    } else {
      if (!in.reading || in.reads_left > 0) break;  // Service starts reads.
      // A READ that failed (a bogus rkey, a flush) left the target with
      // whatever the pool piece held before: never hand that out.
      if (in.read_error != 0) break;
      buffer = in.target;
      data = buffer->data;
      done_backlog_.push_back(in.cookie);
    }
    sga.sga_buf = buffer;
    sga.sga_numsegs = 1;
    sga.sga_segs[0].sgaseg_buf = data;
    sga.sga_segs[0].sgaseg_len = in.length;
    sga.sga_addr = peer_addr;
    env_.app_buffers->insert(buffer);
    env_.tokens->Complete(pops_.front(), result);
    pops_.pop_front();
    incoming_.pop_front();
    --unpopped_data_;
    ConsumeCredit();  // The peer may send again.
  }
  Service();
}

void Connection::ProtocolError(const char* what) {
  DEMI_LOG(WARNING) << "qd " << qd_ << ": protocol error: " << what;
  Abort(EPROTO);
}

void Connection::OnRecvCompletion(const ibv_wc& wc, Buffer* buffer) {
  heard_ = true;
  // After an abort nothing more is taken in: what arrives now is data
  // nobody will pop (its credit is still counted as spent).
  if (wc.status != IBV_WC_SUCCESS || state_ == State::kDead) {
    if (wc.status == IBV_WC_SUCCESS) credits_.OnArrival(false);
    env_.pool->Unref(buffer);
    if (wc.status != IBV_WC_SUCCESS) Abort(rdma::WcStatusToErrno(wc.status));
    return;
  }
  absl::StatusOr<ParsedMessage> parsed = ParseMessage(
      absl::MakeConstSpan(buffer->data, wc.byte_len), kMaxMessageSize);
  if (!parsed.ok()) {
    DEMI_LOG(WARNING) << "qd " << qd_ << ": " << parsed.status();
    env_.pool->Unref(buffer);
    Abort(EPROTO);
    return;
  }
  const char* violation = nullptr;
  bool is_data =
      parsed->type == WireType::kEager || parsed->type == WireType::kRndv;
  send_credits_ += parsed->credits;
  if (!credits_.OnArrival((parsed->flags & kFlagStarved) != 0)) {
    violation = "message without a credit";
  } else if (send_credits_ > peer_max_credits_) {
    // Each credit stands for a buffer the peer posted: never more than it
    // said it would.
    violation = "too many credits returned";
  } else if (peer_closed_ && (is_data || parsed->type == WireType::kClose)) {
    violation = "data after CLOSE";
  }
  if (violation != nullptr) {
    env_.pool->Unref(buffer);
    ProtocolError(violation);
    return;
  }
  if (is_data && state_ == State::kClosing) {
    // The application closed and will never pop this: reset, as TCP does
    // when data arrives for a closed socket.
    env_.pool->Unref(buffer);
    Abort(ECONNRESET);
    return;
  }
  bool keep_buffer = false;  // Whether the message holds on to its buffer.
  switch (parsed->type) {
    case WireType::kEager: {
      Incoming in;
      in.type = WireType::kEager;
      in.buffer = buffer;
      in.length = parsed->length;
      incoming_.push_back(std::move(in));
      ++unpopped_data_;
      keep_buffer = true;
      break;
    }
    case WireType::kRndv: {
      Incoming in;
      in.type = WireType::kRndv;
      in.length = parsed->length;
      in.cookie = parsed->cookie;
      in.rndv = std::make_unique<RndvDescriptor>(parsed->rndv);
      ++rndv_unread_;
      ++unpopped_data_;
      incoming_.push_back(std::move(in));
      break;
    }
    case WireType::kRndvDone: {
      auto node = rndv_waiting_.extract(parsed->cookie);
      if (node.empty()) {
        env_.pool->Unref(buffer);
        ProtocolError("unknown rendezvous");
        return;
      }
      FinishPush(*node.mapped(), 0);
      break;
    }
    case WireType::kCredit:
      break;
    case WireType::kClose: {
      peer_closed_ = true;
      Incoming in;
      in.type = WireType::kClose;
      incoming_.push_back(std::move(in));
      break;
    }
  }
  // The SRQ is refilled from the pool once per progress pass.
  if (!keep_buffer) env_.pool->Unref(buffer);
  // Data messages give their credit back when popped, the others now; a
  // starved peer may have been granted more.
  if (!is_data) credits_.OnConsumed();
  BackCredits();
  DeliverPops();
}

void Connection::OnSendCompletion(const ibv_wc& wc) {
  heard_ = true;
  int err = rdma::WcStatusToErrno(wc.status);
  auto match =
      std::find_if(sends_in_flight_.begin(), sends_in_flight_.end(),
                   [&](const std::unique_ptr<SendWr>& wr) {
                     return reinterpret_cast<uintptr_t>(wr.get()) == wc.wr_id;
                   });
  if (match == sends_in_flight_.end()) return;
  // Everything posted before it is complete too: those requests were
  // unsignalled and succeeded (a failure always completes on its own).
  size_t count = match - sends_in_flight_.begin() + 1;
  for (size_t i = 0; i < count; ++i) {
    std::unique_ptr<SendWr> wr = std::move(sends_in_flight_.front());
    sends_in_flight_.pop_front();
    RetireSend(*wr, i + 1 == count ? err : 0);
    RecycleSendWr(std::move(wr));
  }
  if (err != 0) {
    Abort(err);
    return;
  }
  DeliverPops();
}

void Connection::RetireSend(SendWr& wr, int err) {
  --posted_sends_;
  if (wr.signaled) --signaled_sends_;
  if (wr.header != nullptr) env_.pool->Unref(wr.header);
  switch (wr.kind) {
    case SendWr::kPush:
      // A rendezvous announcement carries no push: it waits for RNDV_DONE.
      if (wr.push == nullptr) break;
      if (wr.push->is_close && err == 0) close_sent_ = true;
      FinishPush(*wr.push, err);
      break;
    case SendWr::kControl:
      break;
    case SendWr::kProbe:
      probing_ = false;
      break;
    case SendWr::kRead:
      if (Incoming* in = FindIncoming(wr.read_cookie)) {
        --in->reads_left;
        if (err != 0) in->read_error = err;
      }
      break;
  }
}

void Connection::CompletePush(demi_qtoken_t qt, int err) {
  if (err != 0) {
    env_.tokens->Fail(qt, err);
    return;
  }
  demi_qresult_t result;
  std::memset(&result, 0, sizeof(result));
  result.qr_opcode = DEMI_OPC_PUSH;
  env_.tokens->Complete(qt, result);
}

std::unique_ptr<Connection::SendWr> Connection::NewSendWr(SendWr::Kind kind) {
  std::unique_ptr<SendWr> wr;
  if (spare_wrs_.empty()) {
    wr = std::make_unique<SendWr>();
  } else {
    wr = std::move(spare_wrs_.back());
    spare_wrs_.pop_back();
  }
  wr->kind = kind;
  return wr;
}

void Connection::RecycleSendWr(std::unique_ptr<SendWr> wr) {
  if (spare_wrs_.size() >= kSendDepth) return;
  wr->push.reset();
  wr->header = nullptr;
  wr->read_cookie = 0;
  wr->signaled = false;
  spare_wrs_.push_back(std::move(wr));
}

void Connection::FinishPush(PushOp& op, int err) {
  if (op.qt != 0) {
    CompletePush(op.qt, err);
    op.qt = 0;
  }
  // Revoke the peer's access before the memory can be reused: a window
  // deallocated is invalid at once, whatever the peer still tries.
  op.windows.clear();
  op.read_mrs.clear();
  for (Buffer* buffer : op.holds) env_.pool->Unref(buffer);
  op.holds.clear();
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
  if (++idle_ticks_ < ticks || probing_ || posted_sends_ >= kSendDepth) {
    return;
  }
  idle_ticks_ = 0;
  ibv_send_wr probe = {};
  probe.opcode = IBV_WR_RDMA_WRITE;  // Zero bytes: no address, no rkey.
  absl::Status status =
      PostSendWr(probe, NewSendWr(SendWr::kProbe), /*must_signal=*/true);
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
  for (auto& wr : sends_in_flight_) {
    if (wr->push != nullptr && wr->push->qt != 0) {
      env_.tokens->Fail(wr->push->qt, error_);
      wr->push->qt = 0;
    }
  }
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
