// The data path of one RC connection: pushes and pops of whole messages
// over the wire protocol of wire.h, with credit-based flow control and
// RDMA READ rendezvous for large messages. The setup path (rdma_cm) lives
// in RdmaLibOs (rdma_libos_setup.cc, rdma_libos_cm_events.cc); a
// Connection starts once its QP exists.
#ifndef DEMI_DEMI_CONNECTION_H_
#define DEMI_DEMI_CONNECTION_H_

#include <demi/types.h>
#include <endian.h>
#include <infiniband/verbs.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "demi/buffer_ref.h"
#include "demi/credits.h"
#include "demi/fifo_ring.h"
#include "demi/limits.h"
#include "demi/push_builder.h"
#include "demi/push_op.h"
#include "demi/qtoken_table.h"
#include "demi/send_queue.h"
#include "demi/sga_pool.h"
#include "demi/shared_receive.h"
#include "demi/wire.h"
#include "rdma/verbs_ptr.h"

namespace demi {

// The largest eager message's payload.
inline constexpr uint32_t kMaxEagerPayload =
    kEagerBufferSize - sizeof(WireHeader);
static_assert(kEagerBufferSize >= RndvMessageSize(kMaxRndvSegments),
              "a rendezvous announcement fits a receive buffer");
static_assert(kSmallBufferSize >= RndvMessageSize(kMaxRndvSegments),
              "a rendezvous announcement fits a small receive buffer");
static_assert(kSendDepth >= 2 * kMaxRndvSegments,
              "a rendezvous can always post its reads");

// What a connection shares with the rest of the library (borrowed).
struct ConnectionEnv {
  SgaPool* pool;
  QTokenTable* tokens;
  // The device's SRQ and credit pool.
  SharedReceive* receive;
  // Queue descriptors of connections whose peer cannot send until credits
  // come back; the progress engine's next pass sends them if no message
  // carried them meanwhile.
  std::vector<int>* credit_due;
  // Queue descriptors of connections that would return their last credit
  // to a peer stranded without any (ReturnLastCredit): the progress
  // engine's timers call them every kStrandedCreditInterval.
  std::vector<int>* stranded;
  // Queue descriptors of connections that aborted; the progress engine
  // disconnects them, so the peer learns at once.
  absl::flat_hash_set<int>* aborted;
  ibv_pd* pd;
  int device;  // Index of the device, for SgaPool::Lkey.
  // Signalled send requests in flight on the device (see SendQueue).
  uint32_t* signaled_sends;
  // Queue descriptors of connections with sends staged for the doorbell
  // (see SendQueue): the progress engine's next pass posts them.
  std::vector<int>* doorbell_due;
  // The progress engine's pass count: a push that follows another in the
  // same pass is staged.
  const uint32_t* poll_passes;
  PushOpCache* push_ops;  // Shared by the libOS's connections.
  // A rendezvous binds its memory windows only once every earlier send
  // request of the QP has completed. rxe (Linux 6.1) replays the requests
  // after the oldest unacknowledged one when it retries, binds included,
  // and a type-2 window cannot be bound twice: the send queue then stops
  // for good, with no error (under 3% loss, 3 to 9 stalls a minute on 4
  // connections; none with binds on an empty queue: testing/rxe_stall_repro).
  bool binds_after_drain = false;
};

// Not thread-safe; owned by RdmaLibOs.
class Connection {
 public:
  enum class State {
    kSetup,    // QP created, waiting for ESTABLISHED.
    kOpen,     // Data flows.
    kClosing,  // Closed by the application: flushing pushes, then CLOSE.
    kDead,     // Aborted or closed; waiting for flushes to drain.
  };

  // `qd` is the connection's queue descriptor; `qp` (borrowed) its QP.
  Connection(int qd, ConnectionEnv env, ibv_qp* qp, uint32_t max_inline,
             uint32_t max_send_sge);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Takes the connection's base credits from the shared receive queue,
  // backed by posted buffers; call once, before connecting or accepting.
  // ENOBUFS if the SRQ is full, ENOMEM if the pool is.
  absl::Status Start();
  // This side's private data for rdma_connect / rdma_accept.
  std::string LocalConnectData() const;
  // The connection is established; `peer` is the peer's private data.
  void Open(const ConnectData& peer);

  // Starts pushing `sga` and writes its token to `qt_out`; returns 0, or
  // an errno (EINVAL, ENOMEM...) if nothing started (no token then).
  // `length` is the sum of the segments' lengths (checked by the caller).
  // Inline: most pushes go out inline, with no further call of ours.
  int Push(const demi_sgarray_t& sga, uint32_t length, demi_qtoken_t* qt_out) {
    if (length <= max_inline_ && TryPushInline(sga, length, qt_out)) return 0;
    return PushNotInline(sga, length, qt_out);
  }
  // Starts popping for token `qt`. Inline: with nothing received, the pop
  // waits for OnRecvCompletion (nothing to deliver, no READ to start).
  void Pop(demi_qtoken_t qt) {
    pops_.push_back(qt);
    if (!incoming_.empty() || state_ == State::kDead) PopReceived();
  }

  // Handles a send-side work completion of this connection's QP.
  void OnSendCompletion(const ibv_wc& wc);
  // Handles a receive completion of this connection's QP into `buffer`
  // (taken from the SRQ). Inline: most are data for a pop that waits.
  void OnRecvCompletion(const ibv_wc& wc, BufferRef buffer) {
    if (!TryLendArrival(wc, buffer)) OnRecvMessage(wc, std::move(buffer));
  }
  // The peer disconnected (rdma_cm DISCONNECTED).
  void OnDisconnected();

  // Starts an orderly close: pending pops fail with EBADF; every earlier
  // push still goes out (rendezvous included), then CLOSE. Returns false if
  // that cannot be (not open, the peer closed already, or messages arrived
  // that the application will never pop): then call Abort, which resets the
  // connection as TCP does when unread data is discarded.
  bool StartClose();
  // The application closed the queue: its pending pops fail with EBADF
  // (whatever happens to the connection after).
  void FailPopsOnClose();
  // Whether the orderly close has finished: the peer has every push and
  // CLOSE (or the connection died on the way).
  bool FlushDone() const;
  // The SRQ got buffers: credits that waited for them go back.
  void OnBuffersPosted();
  // The progress engine's next pass after ConnectionEnv::credit_due: sends
  // the credits the peer waits for, unless a message carried them.
  void FlushDueCredits();
  // The progress engine's timers after ConnectionEnv::stranded: sends the
  // last credit to a peer that still has none while a push waits for its
  // rendezvous completion.
  void ReturnLastCredit();
  // The progress engine's next pass after ConnectionEnv::doorbell_due:
  // posts the staged sends.
  void RingDoorbell();
  // Called by the progress engine every `tick` of the keepalive interval
  // (`ticks` of them make one interval). A connection that waits on its
  // peer (pops, rendezvous, credits, a close) and has heard nothing for a
  // whole interval sends a probe: a zero-length RDMA WRITE, which needs no
  // credit and touches no memory. A vanished peer never acknowledges it,
  // so the transport's retries run out and the connection fails with
  // ETIMEDOUT. A probe still out after `stall_ticks` ticks with no send
  // completing meanwhile fails the connection too (ETIMEDOUT): the send
  // queue has stopped without an error (rxe, Linux 6.1, under packet
  // loss), and everything behind the probe would wait for ever.
  void KeepaliveTick(uint32_t ticks, uint32_t stall_ticks);
  // Posts a signalled zero-length RDMA WRITE: its completion says that
  // every request before it has completed.
  void PostDrainMark();
  // Fails every pending operation with `err` and moves the QP to the error
  // state (flushing what is posted). Idempotent; the first error sticks.
  void Abort(int err);
  // Abort for a failed work completion `wc` of a `what` ("send",
  // "receive") request, saying why in the log if it is the first failure.
  void FailOn(const ibv_wc& wc, const char* what);

  // Whether work requests are still posted (the QP must outlive them).
  // Unsignalled sends after the last signalled one may never complete
  // once the QP is in error: they are released with the connection, after
  // the QP is destroyed.
  bool HasOutstandingWork() const { return sends_.has_signaled(); }
  State state() const { return state_; }
  // Why it died (kDead), if it has.
  int error() const { return error_; }
  int qd() const { return qd_; }
  int device() const { return env_.device; }
  // A CQ of its device failed while it was alive: what it had posted may
  // never be seen to complete, so its close does not wait for that.
  void LoseCompletions() { completions_lost_ = true; }
  bool completions_lost() const { return completions_lost_; }

  // The peer's address and this side's (for getpeername and accept).
  sockaddr_in peer_addr = {};

 private:
  // A message received and not yet popped.
  struct Incoming {
    WireType type;              // kEager, kRndv or kClose.
    BufferRef buffer;           // kEager: the receive piece,
    std::byte* data = nullptr;  // and the message's bytes in it.
    uint32_t length = 0;
    uint64_t cookie = 0;  // kRndv: the peer's name for it (RNDV_DONE's).
    // kRndv: ours, which its READs' send slots carry: the peer's cookie
    // need not be unique (a READ charged to another message would leave
    // that one waiting forever).
    uint64_t read_id = 0;
    // kRndv: where to read from (out of line: Incoming stays small), the
    // destination piece, where the next READ starts (segment, offset in
    // it, offset in the message) and READs still in flight.
    std::unique_ptr<RndvDescriptor> rndv;
    BufferRef target;
    uint32_t read_segment = 0;
    uint32_t segment_offset = 0;
    uint32_t read_offset = 0;
    uint32_t reads_left = 0;
    bool reading = false;
    int read_error = 0;
    // Every READ of a rendezvous has been posted.
    bool AllReadsPosted() const { return read_segment == rndv->num_segments; }
  };

  // A small push with nothing queued before it goes out inline, without a
  // PushOp: at once (its token done as it is made), or staged for the next
  // doorbell if another send went out in this progress pass. Writes the
  // token to `qt_out`. Returns false if it cannot (nothing happened then).
  bool TryPushInline(const demi_sgarray_t& sga, uint32_t length,
                     demi_qtoken_t* qt_out);
  // An eager push of one pool piece with nothing queued before it goes
  // out at once from that piece, without a PushOp: its send slot holds the
  // token and the piece until the completion. Returns false if it cannot
  // (nothing happened then).
  bool TryPushPiece(demi_qtoken_t qt, const demi_sgarray_t& sga,
                    uint32_t length);
  PushMemory PushMemoryOf() const {
    return {env_.pool, env_.pd, env_.device, max_send_sge_};
  }
  // Posts the memory-window binds of `op` and puts their rkeys in its
  // descriptor.
  absl::Status BindWindows(PushOp& op);
  // Posts what credits and queue room allow: control messages, then pushes.
  // Inline: most arrivals and completions leave it nothing to do.
  void Service() {
    if (!push_backlog_.empty() || !done_backlog_.empty() || rndv_unread_ > 0 ||
        credit_stalled_ || credits_.ReturnNow()) {
      ServiceQueued();
    }
  }
  void ServiceQueued();
  // Push's way for what TryPushInline did not take.
  int PushNotInline(const demi_sgarray_t& sga, uint32_t length,
                    demi_qtoken_t* qt_out);
  // Pop's way when something was received (or the connection is dead).
  void PopReceived();
  // The usual arrival, as OnRecvMessage would take it with no parse: a
  // well-formed headerless data message (wire.h) on an open connection,
  // its credits good, for the first waiting pop with nothing queued before
  // it. Lends `buffer` to that pop; false if the message is not that
  // (nothing happened then).
  bool TryLendArrival(const ibv_wc& wc, BufferRef& buffer) {
    // imm_data holds a value only with the flag.
    if (wc.status != IBV_WC_SUCCESS || (wc.wc_flags & IBV_WC_WITH_IMM) == 0) {
      return false;
    }
    uint32_t imm = be32toh(wc.imm_data);
    uint32_t credits = imm & 0xffff;
    if (imm >> 16 != EagerImm(0, 0) >> 16 || wc.byte_len == 0 ||
        state_ != State::kOpen || peer_closed_ || !incoming_.empty() ||
        pops_.empty() || credits_.peer_credits() == 0 ||
        send_credits_ + credits > peer_max_credits_) {
      return false;
    }
    heard_ = true;
    send_credits_ += credits;
    credits_.OnArrival(false);
    std::byte* data = buffer->data;
    Lend(std::move(buffer), data, wc.byte_len);
    credits_.OnConsumed();
    BackCredits();
    Service();
    return true;
  }
  // Every other arrival: parsed and checked (wire.h), then delivered,
  // queued or acted on.
  void OnRecvMessage(const ibv_wc& wc, BufferRef buffer);
  // Sends a control message of `type` (with `cookie`) if credits, queue
  // room and binds allow. False if it could not go now, or if the
  // connection is dead after it (a post failed, maybe that of a full stage
  // it went behind: Abort then emptied the backlogs the caller takes from).
  bool TrySendControl(WireType type, uint64_t cookie);
  bool TrySendPush();
  // Whether credits and queue room allow an eager push now. Data keeps
  // one credit in reserve (see TrySendPush).
  bool CanSendEager() const { return send_credits_ >= 2 && sends_.room() > 0; }
  // Posts an eager push; false if the connection aborted (its post failed,
  // or that of a full stage it went behind).
  bool SendEager(std::unique_ptr<PushOp> op);
  // Posts a SEND of `header` (plus `extra` bytes after it, such as a
  // rendezvous descriptor), standing for `slot`; spends one credit. Data
  // (kEager) goes without the header, as `body` alone (wire.h); the other
  // types have no body.
  absl::Status PostSend(const WireHeader& header, const void* extra,
                        size_t extra_size, absl::Span<ibv_sge> body,
                        SendSlot slot);
  void StartReads();
  // Posts the READs of `in`, in pieces of at most kReadPiece, while the
  // send queue has room. False if it ran out of room or the post failed
  // (the connection is then aborted).
  bool PostReads(Incoming& in);
  void DeliverPops();
  // Completes the first pop with `length` bytes at `data` in `buffer`,
  // which the application holds from now on.
  void Lend(BufferRef buffer, std::byte* data, uint32_t length) {
    env_.tokens->CompletePop(pops_.front(), env_.pool->Lend(buffer.release()),
                             data, length, peer_addr);
    pops_.pop_front();
  }
  // Whether an eager message of `length` bytes fits the peer's buffers.
  bool FitsEager(uint32_t length) const {
    return length <= std::min(kMaxEagerPayload,
                              peer_eager_size_ - uint32_t{sizeof(WireHeader)});
  }
  // Ends what a send work request held; `err` is its completion's errno.
  void RetireSend(SendSlot& slot, int err);
  // Posts `send` into the send queue, standing for `slot` until its
  // completion. Returns 0, or ibv_post_send's errno after finishing the
  // push `slot` holds (if any). An errno, not a Status: this is the
  // per-message path, and a failure here always aborts the connection.
  int PostSendWr(ibv_send_wr& send, SendSlot&& slot, bool must_signal);
  Incoming* FindIncoming(uint64_t read_id);
  // A received message has been consumed: its credit goes back to the peer
  // once a posted buffer stands behind it.
  void ConsumeCredit();
  // Moves credits to those owed as far as buffers back them; waits on the
  // SRQ for the rest. Inline: every arrival runs it, and most need neither.
  void BackCredits() {
    if (credits_.Back() && !waiting_buffers_) WaitForBuffers();
    // Most arrivals find the peer with credits to spare: one compare.
    if (credits_.peer_credits() <= 1) PeerShortOfCredits();
  }
  // The peer holds one credit or none: a CREDIT message may be due now, or
  // on the timers (ReturnLastCredit).
  void PeerShortOfCredits();
  // Puts this connection in ConnectionEnv::stranded (ReturnLastCredit).
  void ListStranded();
  // Whether a CREDIT message should go on the next pass, if nothing carried
  // the credits by then: the peer cannot send data, or nothing at all. To a
  // stranded peer even one credit goes, but only while this side keeps one
  // of its own after it: the peer, holding one then, never answers in
  // kind, so single credits are not traded back and forth. A side with no
  // credit to spare sends its last on the timers (ReturnLastCredit).
  bool CreditReturnDue() const {
    // Most arrivals find the peer with credits to spare: one compare.
    if (credits_.peer_credits() > 1) return false;
    return credits_.ReturnSoon() ||
           (credits_.PeerStranded() && send_credits_ >= 2);
  }
  void WaitForBuffers();
  // The peer needs credits back soon: the next pass sends them (a reply
  // may carry them first).
  void CreditDue();
  void ProtocolError(const char* what);
  // Completes the push's token (if any) and releases what it holds.
  void FinishPush(PushOp& op, int err);
  // FinishPush, then the PushOp goes back to the cache (null: nothing).
  void EndPush(std::unique_ptr<PushOp> op, int err);
  // Completes the push `qt`. Inline: every push ends here.
  void CompletePush(demi_qtoken_t qt, int err) {
    if (err != 0) {
      env_.tokens->Fail(qt, err);
    } else {
      env_.tokens->Succeed(qt, DEMI_OPC_PUSH);
    }
  }
  // Whether an inline send of `total` bytes is staged: if it is small and
  // follows another send in this progress pass (a burst then goes out in
  // one post).
  bool WouldStage(uint32_t total) const {
    return total <= kStagedInlineSize &&
           (sends_.staged() > 0 || posted_pass_ == *env_.poll_passes);
  }
  // Stages an inline `opcode` (with `imm`, see SendQueue::StageInline) of
  // `sges` for push `qt` (0: none). If the stage is full and fails to
  // post, the connection is gone and `qt` fails.
  void Stage(const ibv_sge* sges, int num_sge, ibv_wr_opcode opcode,
             uint32_t imm, demi_qtoken_t qt);
  // Posts the staged sends (aborts if that fails).
  void PostStaged();
  // SendQueue's report on a staged push that was posted or dropped.
  auto StagedDone() {
    return [this](demi_qtoken_t qt, int err) { CompletePush(qt, err); };
  }

  const int qd_;
  ConnectionEnv env_;
  ibv_qp* qp_;  // Borrowed: RdmaLibOs owns it and keeps it alive for us.
  const uint32_t max_inline_;
  const uint32_t max_send_sge_;
  State state_ = State::kSetup;
  int error_ = 0;
  bool peer_closed_ = false;
  bool completions_lost_ = false;
  bool close_sent_ = false;

  uint32_t peer_eager_size_ = 0;
  uint32_t peer_max_credits_ = 0;
  uint32_t send_credits_ = 0;
  // Receive side: what the peer may send. A message that arrives without a
  // credit breaks the protocol (EPROTO).
  ConnectionCredits credits_;
  bool credit_due_ = false;       // In ConnectionEnv::credit_due.
  bool stranded_listed_ = false;  // In ConnectionEnv::stranded.
  // FlushDueCredits could not send its CREDIT: Service tries again.
  bool credit_stalled_ = false;
  bool doorbell_due_ = false;  // In ConnectionEnv::doorbell_due.
  // The progress pass of the last post (see ConnectionEnv::poll_passes).
  uint32_t posted_pass_ = 0;
  // Waiting on the SRQ for buffers, or on the pool for a rendezvous target.
  bool waiting_buffers_ = false;
  // The rendezvous at the head of the backlog waits for the send queue to
  // empty before it binds (ConnectionEnv::binds_after_drain). Nothing else
  // is posted meanwhile: a queue that takes READs and RNDV_DONEs for the
  // peer's stream might never empty. It does within a round trip, since
  // posted requests complete without the peer's application.
  bool bind_waits_ = false;
  uint64_t next_cookie_ = 1;
  uint64_t last_read_id_ = 0;  // The newest Incoming::read_id.
  // The work request of a push that goes at once (TryPushInline,
  // TryPushPiece), built once: they set only its segments, their number,
  // the immediate data and the flags.
  ibv_send_wr data_wr_ = {};
  ibv_sge data_sges_[DEMI_SGARRAY_MAXSIZE] = {};
  uint32_t rndv_unread_ = 0;    // Rendezvous messages with READs to post.
  uint32_t unpopped_data_ = 0;  // EAGER and RNDV messages in incoming_.
  // Keepalive: whether a completion arrived since the last tick, idle ticks
  // since, and whether a probe is out.
  bool heard_ = false;
  uint32_t idle_ticks_ = 0;
  bool probing_ = false;
  // Ticks since the probe out was posted or a send last completed.
  uint32_t probe_ticks_ = 0;

  // Posted send work requests, in slots indexed by wr_id.
  SendQueue sends_;
  // One WireHeader per send slot (a pool piece): a header-only message
  // that is not inline sends its header from here, with no allocation.
  // Only on devices that inline less than a header: elsewhere such
  // messages are inline, and 2 KiB a connection would be registered for
  // nothing (20 MiB at 10,000 connections).
  BufferRef header_ring_;
  std::deque<std::unique_ptr<PushOp>> push_backlog_;
  std::deque<uint64_t> done_backlog_;  // RNDV_DONE cookies to send.
  absl::flat_hash_map<uint64_t, std::unique_ptr<PushOp>> rndv_waiting_;
  std::deque<Incoming> incoming_;
  FifoRing<demi_qtoken_t> pops_;
};

}  // namespace demi

#endif  // DEMI_DEMI_CONNECTION_H_
