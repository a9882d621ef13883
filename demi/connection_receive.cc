// The receive half of Connection: messages taken from the shared receive
// queue, rendezvous READs, and pops.
#include <endian.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "demi/connection.h"
#include "rdma/log.h"
#include "rdma/status_util.h"
#include "rdma/wc_status.h"

namespace demi {

Connection::Incoming* Connection::FindIncoming(uint64_t read_id) {
  for (Incoming& in : incoming_) {
    if (in.type == WireType::kRndv && in.read_id == read_id) return &in;
  }
  return nullptr;
}

void Connection::StartReads() {
  if (state_ == State::kDead || rndv_unread_ == 0 || bind_waits_) return;
  // The messages the waiting pops will take, and a few past them.
  size_t popped = std::min(pops_.size(), incoming_.size());
  size_t wanted = std::min(incoming_.size(), popped + kReadAheadMessages);
  size_t ahead_bytes = 0;
  for (size_t i = 0; i < wanted; ++i) {
    Incoming& in = incoming_[i];
    if (in.type != WireType::kRndv) continue;
    bool ahead = i >= popped;
    if (ahead) {
      ahead_bytes += in.length;
      if (ahead_bytes > kReadAheadBytes) return;
    }
    if (in.reading && in.AllReadsPosted()) continue;
    if (sends_.room() == 0) return;
    if (!in.reading) {
      if (ahead && !env_.pool->HasRoomToSpare(in.length)) return;
      absl::StatusOr<Buffer*> target = env_.pool->Allocate(in.length);
      if (!target.ok()) {
        // Read ahead later, or when its pop comes.
        if (ahead) return;
        if (!env_.pool->CanEverHold(in.length)) {
          // Waiting would be forever, and the message stays: every pop
          // that reaches it fails. Behind earlier messages, those go first
          // (DeliverPops's Service comes back here once it is the head).
          if (i > 0) return;
          while (!pops_.empty()) {
            env_.tokens->Fail(pops_.front(), ENOBUFS);
            pops_.pop_front();
          }
          return;
        }
        // The pool is full for now: the pop waits. The progress engine
        // serves the SRQ's waiters on its timers, and OnBuffersPosted's
        // Service tries again (memory comes back as the application frees
        // it, which no completion announces).
        if (!waiting_buffers_) {
          waiting_buffers_ = true;
          env_.receive->AddWaiting(qd_);
        }
        return;
      }
      in.target.reset(*target);
      in.reading = true;
    }
    if (!PostReads(in)) return;
  }
}

bool Connection::PostReads(Incoming& in) {
  while (!in.AllReadsPosted()) {
    if (sends_.room() == 0) return false;
    const RndvSegment& seg = in.rndv->segments[in.read_segment];
    uint32_t piece = std::min(seg.length - in.segment_offset, kReadPiece);
    ibv_sge sge = {
        reinterpret_cast<uintptr_t>(in.target->data + in.read_offset), piece,
        SgaPool::Lkey(in.target.get(), env_.device)};
    SendSlot slot{SendSlot::kRead};
    slot.read_id = in.read_id;
    ibv_send_wr send = {};
    send.sg_list = &sge;
    send.num_sge = 1;
    send.opcode = IBV_WR_RDMA_READ;
    send.wr.rdma.remote_addr = seg.addr + in.segment_offset;
    send.wr.rdma.rkey = seg.rkey;
    // The data is there only when the READ's completion says so.
    if (int err = PostSendWr(send, std::move(slot), true); err != 0) {
      Abort(err);
      return false;
    }
    ++in.reads_left;
    in.read_offset += piece;
    in.segment_offset += piece;
    if (in.segment_offset == seg.length) {
      ++in.read_segment;
      in.segment_offset = 0;
    }
  }
  --rndv_unread_;
  return true;
}

void Connection::PopReceived() {
  DeliverPops();  // Its Service starts the READs a rendezvous needs.
  if (state_ != State::kDead) return;
  while (!pops_.empty()) {
    env_.tokens->Fail(pops_.front(), error_);
    pops_.pop_front();
  }
}

void Connection::DeliverPops() {
  while (!pops_.empty() && !incoming_.empty()) {
    Incoming& in = incoming_.front();
    if (in.type == WireType::kClose) {
      // EOF, a zero-length sga, stays at the head: every later pop sees it.
      env_.tokens->CompletePop(pops_.front(), nullptr, nullptr, 0, {});
      pops_.pop_front();
      continue;
    }
    BufferRef buffer;
    std::byte* data;
    if (in.type == WireType::kEager) {
      buffer = std::move(in.buffer);
      data = in.data;
    } else {
      // Service posts the READs.
      if (!in.reading || !in.AllReadsPosted() || in.reads_left > 0) break;
      // A READ that failed (a bogus rkey, a flush) left the target with
      // whatever the pool piece held before: never hand that out.
      if (in.read_error != 0) break;
      buffer = std::move(in.target);
      data = buffer->data;
      // Only now, not once read: a RNDV_DONE that goes with the pop's
      // credit never spends a peer's last one (kBaseCredits).
      done_backlog_.push_back(in.cookie);
    }
    Lend(std::move(buffer), data, in.length);
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

void Connection::OnRecvMessage(const ibv_wc& wc, BufferRef buffer) {
  heard_ = true;
  // After an abort nothing more is taken in: what arrives now is data
  // nobody will pop (its credit is still counted as spent).
  if (wc.status != IBV_WC_SUCCESS || state_ == State::kDead) {
    if (wc.status == IBV_WC_SUCCESS) credits_.OnArrival(false);
    if (wc.status != IBV_WC_SUCCESS) FailOn(wc, "receive");
    return;
  }
  ParsedMessage parsed;
  auto bytes = absl::MakeConstSpan(buffer->data, wc.byte_len);
  // Data comes without a header, with immediate data (wire.h).
  absl::Status status =
      (wc.wc_flags & IBV_WC_WITH_IMM) != 0
          ? ParseEagerImmInto(be32toh(wc.imm_data), bytes, &parsed)
          : ParseMessageInto(bytes, kMaxMessageSize, &parsed);
  if (!status.ok()) {
    DEMI_LOG(WARNING) << "qd " << qd_ << ": " << status;
    Abort(EPROTO);
    return;
  }
  const char* violation = nullptr;
  bool is_data =
      parsed.type == WireType::kEager || parsed.type == WireType::kRndv;
  send_credits_ += parsed.credits;
  if (!credits_.OnArrival((parsed.flags & kFlagStarved) != 0)) {
    violation = "message without a credit";
  } else if (send_credits_ > peer_max_credits_) {
    // Each credit stands for a buffer the peer posted: never more than it
    // said it would.
    violation = "too many credits returned";
  } else if (peer_closed_ && (is_data || parsed.type == WireType::kClose)) {
    violation = "data after CLOSE";
  }
  if (violation != nullptr) {
    ProtocolError(violation);
    return;
  }
  if (is_data && state_ == State::kClosing) {
    // The application closed and will never pop this: reset, as TCP does
    // when data arrives for a closed socket.
    Abort(ECONNRESET);
    return;
  }
  bool consumed = !is_data;  // Whether its credit may go back now.
  switch (parsed.type) {
    case WireType::kEager: {
      // After the header, or at the start (immediate data).
      std::byte* data = buffer->data + (parsed.payload.data() - buffer->data);
      if (incoming_.empty() && !pops_.empty()) {
        // The usual case: a pop waits and nothing is ahead of this message.
        Lend(std::move(buffer), data, parsed.length);
        consumed = true;
        break;
      }
      Incoming in;
      in.type = WireType::kEager;
      in.buffer = std::move(buffer);
      in.data = data;
      in.length = parsed.length;
      incoming_.push_back(std::move(in));
      ++unpopped_data_;
      break;
    }
    case WireType::kRndv: {
      Incoming in;
      in.type = WireType::kRndv;
      in.length = parsed.length;
      in.cookie = parsed.cookie;
      in.read_id = ++last_read_id_;
      in.rndv = std::make_unique<RndvDescriptor>(parsed.rndv);
      ++rndv_unread_;
      ++unpopped_data_;
      incoming_.push_back(std::move(in));
      break;
    }
    case WireType::kRndvDone: {
      auto node = rndv_waiting_.extract(parsed.cookie);
      if (node.empty()) {
        ProtocolError("unknown rendezvous");
        return;
      }
      EndPush(std::move(node.mapped()), 0);
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
  // A message that did not keep `buffer` gives it back here: the SRQ is
  // refilled from the pool once per progress pass.
  buffer.reset();
  // Data messages give their credit back when popped, the others now; a
  // starved peer may have been granted more.
  if (consumed) credits_.OnConsumed();
  BackCredits();
  if (!incoming_.empty() && !pops_.empty()) {
    DeliverPops();  // Its Service ends.
  } else {
    Service();
  }
}

}  // namespace demi
