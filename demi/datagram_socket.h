// One SOCK_DGRAM socket: a UD QP on the socket's bound rdma_cm id (UDP port
// space), its own completion queues, receive buffers in slots indexed by
// wr_id, and a ring of send slots, each with a registered header. Datagrams
// up to kMaxDatagram are cut into fragments of the UD MTU and put back
// together on arrival (reassembly.h); routes come from DatagramRoutes.
//
// UDP semantics: a datagram may be lost (a full receive queue at the peer,
// a missing fragment); none is ever delivered in part, twice, or to another
// socket. What this socket drops on its own account is counted (stats()).
#ifndef DEMI_DEMI_DATAGRAM_SOCKET_H_
#define DEMI_DEMI_DATAGRAM_SOCKET_H_

#include <demi/types.h>
#include <infiniband/verbs.h>
#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "demi/buffer_ref.h"
#include "demi/datagram_routes.h"
#include "demi/datagram_wire.h"
#include "demi/fifo_ring.h"
#include "demi/limits.h"
#include "demi/push_op.h"
#include "demi/qtoken_table.h"
#include "demi/reassembly.h"
#include "demi/sga_pool.h"
#include "rdma/cm_event.h"
#include "rdma/verbs_ptr.h"

namespace demi {

// The global routing header in front of every UD receive.
inline constexpr uint32_t kGrhSize = 40;

// What a datagram socket counted (also DEMI_SO_DATAGRAM_STATS).
struct DatagramStats {
  uint64_t sent = 0;           // Datagrams whose pushes succeeded.
  uint64_t received = 0;       // Whole datagrams delivered or queued.
  uint64_t malformed = 0;      // Dropped: bad header or spoofed source.
  uint64_t queue_full = 0;     // Dropped: kMaxQueuedDatagrams unpopped.
  ReassemblyDrops reassembly;  // Dropped while reassembling.
};

// What a socket shares with the rest of the library (borrowed).
struct DatagramEnv {
  SgaPool* pool;
  QTokenTable* tokens;
  rdma_event_channel* cm_channel;
  ibv_pd* pd;
  int device;  // For SgaPool::Lkey.
  int qd;
  // The device's, for the socket's CQs (null: none, they never sleep).
  ibv_comp_channel* channel = nullptr;
  // The libOS's count of progress passes (null: no inline datagram is
  // staged): a datagram that follows another in the same pass waits for
  // the next post (see Stage).
  const uint32_t* poll_passes = nullptr;
};

// Not thread-safe; owned by RdmaLibOs.
class DatagramSocket {
 public:
  // Creates the QP on `id` (borrowed, bound to `local` on a device) and
  // listens on it, so that peers can resolve this socket.
  static absl::StatusOr<std::unique_ptr<DatagramSocket>> Create(
      DatagramEnv env, rdma_cm_id* id, const sockaddr_in& local);
  ~DatagramSocket();
  DatagramSocket(const DatagramSocket&) = delete;
  DatagramSocket& operator=(const DatagramSocket&) = delete;

  // Starts sending `sga` (`length` bytes, checked by the caller) to `dest`
  // and writes its token to `qt_out`; 0, or EMSGSIZE beyond kMaxDatagram,
  // EAGAIN without memory (nothing started then, no token). A plain errno:
  // this is every datagram's path, and inline for the datagrams that go
  // out inline.
  int PushTo(const demi_sgarray_t& sga, uint32_t length,
             const sockaddr_in& dest, demi_qtoken_t* qt_out) {
    if (error_ == 0 && TryPushInline(sga, length, dest, qt_out)) return 0;
    return PushNotInline(sga, length, dest, qt_out);
  }
  // Inline: with nothing queued and no error, the pop waits for
  // OnRecvCompletion.
  void Pop(demi_qtoken_t qt) {
    pops_.push_back(qt);
    if (!incoming_.empty() || recv_error_ != 0) DeliverPops();
  }

  // Handles completions; returns whether a CQ may hold more.
  bool Poll();
  // Arms both CQs (see IdleSleep::Arm); false if one was refused.
  bool ArmCqs() {
    bool send = ibv_req_notify_cq(send_cq_.get(), 0) == 0;
    return ibv_req_notify_cq(recv_cq_.get(), 0) == 0 && send;
  }
  // Every few milliseconds: reassembly timeouts, receive refills the pool
  // could not make before and those too few for Poll's batch. `now` is
  // rdma::MonotonicNow's, as the socket's own times are.
  void PollTimers(absl::Time now);
  // An rdma_cm event whose id carries this socket's context.
  void OnCmEvent(const rdma::CmEvent& event);
  // A peer resolves this socket (SIDR request on the bound id): tells it
  // this QP. `request` is the request's id, ours to destroy.
  void AnswerResolve(rdma::CmIdPtr request);

  // demi_close: pops fail with EBADF, and so do pushes whose destination
  // is still being resolved; the rest are sent. Drained() once they all
  // have, or at once if the QP failed: its pushes have all failed then, and
  // a datagram left half posted would never see its last completion. What
  // they hold stays held until the socket (its QP first) goes.
  void StartClose();
  bool Drained() const {
    return error_ != 0 ||
           (backlog_.empty() && in_flight_.empty() && send_tail_ == send_head_);
  }
  // Whether a destination's route is being resolved.
  bool Resolving() const { return routes_.resolving(); }

  const sockaddr_in& local() const { return local_; }
  DatagramStats stats() const;

  // The default destination of demi_push (demi_connect on the socket).
  bool has_peer = false;
  sockaddr_in peer = {};

 private:
  // A push from demi_pushto until its last fragment's send completes.
  struct PushOp {
    demi_qtoken_t qt = 0;
    sockaddr_in dest = {};
    uint64_t route_key = 0;
    uint32_t length = 0;
    uint32_t id = 0;
    uint32_t fragment_size = 0;
    uint32_t fragment_count = 0;
    uint32_t next_fragment = 0;  // Fragments posted so far.
    // The datagram's bytes in registered memory, and the pieces held
    // (PrepareBytes).
    PushSges sges;
    PushHolds holds;
    Route route;
    bool routed = false;  // Holds `route` (DatagramRoutes::Hold).
    int error = 0;
  };
  struct SendSlot {
    bool last = false;  // The last fragment of in_flight_'s front.
    // An inline push's (TryPushInline) or a mark's (PostMark): it holds its
    // route until the send is retired, as a PushOp does for the others.
    bool holds_route = false;
    uint64_t route_key = 0;  // Its destination's (every send's).
  };
  // An inline datagram staged for the next post: its bytes copied here,
  // its send slot and route taken, its push done once posted.
  struct StagedSend {
    ibv_send_wr wr;
    // Its header (in headers_), then `bytes`; `bytes` alone if compact.
    ibv_sge sges[2];
    demi_qtoken_t qt;
    alignas(8) std::byte bytes[kStagedInlineSize];
  };
  struct Incoming {
    BufferRef buffer;
    std::byte* data;
    uint32_t length;
    sockaddr_in from;
  };

  DatagramSocket(DatagramEnv env, rdma_cm_id* id, const sockaddr_in& local);
  absl::Status Init(ibv_context* context);
  // Posts what the send ring allows, in order, skipping pushes whose route
  // is still being resolved.
  void Service();
  // The header of the next send slot, filled in.
  DatagramHeader* NextHeader(uint32_t id, uint32_t length, uint32_t count,
                             uint32_t index, uint32_t offset);
  // A datagram of one fragment that fits inline, to a known destination,
  // with nothing ahead of it: posted at once, its token made done (its
  // bytes are copied when posted), or staged (WouldStage). Writes the token
  // to `qt_out`; false, with none made, if it must take the PushOp path.
  bool TryPushInline(const demi_sgarray_t& sga, uint32_t length,
                     const sockaddr_in& dest, demi_qtoken_t* qt_out);
  // Whether an inline datagram of `length` bytes is staged rather than
  // posted: one went out in this progress pass already (or is staged), so
  // the pass's end posts them together, one doorbell (on soft-RoCE, one
  // system call) for up to kDoorbellBatch.
  bool WouldStage(uint32_t length) const {
    return env_.poll_passes != nullptr && length <= kStagedInlineSize &&
           num_staged_ < kDoorbellBatch &&
           (num_staged_ > 0 || posted_pass_ == *env_.poll_passes);
  }
  // Stages the datagram of `sga` (WouldStage) under `header` (null: a
  // compact datagram, datagram_wire.h) to `route` in the next send slot,
  // which `slot` describes; `qt` is done when it is posted.
  void Stage(const DatagramHeader* header, const demi_sgarray_t& sga,
             uint32_t length, const Route& route, const SendSlot& slot,
             demi_qtoken_t qt);
  // Posts the staged datagrams, then `wr` (null: none), in one chain, and
  // completes the staged pushes: 0, or the errno of a post that stopped
  // short (the staged datagrams it did not post fail with it).
  int PostChain(ibv_send_wr* wr);
  // Posts the staged datagrams (a pass's start, a close); fails the socket
  // if the post fails.
  void FlushStaged();
  // The staged datagrams from the `from`-th on were never posted: their
  // pushes fail with `err`, their slots and routes go back.
  void DropStaged(uint32_t from, int err);
  // PushTo's way for the rest: a PushOp.
  int PushNotInline(const demi_sgarray_t& sga, uint32_t length,
                    const sockaddr_in& dest, demi_qtoken_t* qt_out);
  // Posts one send of `bytes` (inline if they fit) into the next slot,
  // which `slot` describes; signalled if `must_signal`, if it is a push's
  // last fragment, or every kDatagramSignalInterval; with this socket's
  // port in immediate data if `compact` (datagram_wire.h). False if the QP
  // failed (everything failed then).
  // Inline, defined in datagram_socket.cc, whose functions alone call it.
  inline bool PostSend(ibv_sge* sges, int num_sge, uint32_t bytes,
                       const Route& route, SendSlot slot,
                       bool must_signal = false, bool compact = false);
  // Unsignalled sends are retired by the completion of a later signalled
  // one. If none follows the newest, a signalled send of no bytes (a
  // mark, which receivers drop) goes behind them on the newest's route:
  // at close, and from the timers once the oldest send has waited
  // kDatagramMarkAfter with nothing signalled behind it.
  void PostMark();
  // Posts the next fragment of `op` on its route.
  void PostFragment(PushOp& op);
  // The QP failed with `err`: every push fails (their memory stays held
  // until the socket goes, as the device may still read it).
  void FailAll(int err);
  // A poll of one of the socket's CQs failed: nothing posted will ever be
  // seen to complete, so pushes and pops (pending and later ones) fail
  // with `err`; datagrams already queued are still delivered first.
  void FailCompletions(int err);
  void OnSendCompletion(const ibv_wc& wc);
  void OnRecvCompletion(const ibv_wc& wc);
  // OnCompactDatagram, Admit and Deliver are inline, defined in
  // datagram_receive.cc, whose functions alone call them.
  // A compact datagram (datagram_wire.h) in `buffer`, GRH first.
  inline void OnCompactDatagram(const ibv_wc& wc, BufferRef buffer);
  // Whether `from`'s claimed port may be the QP `src_qp` (DatagramRoutes::
  // Seen); if not, the datagram counts as malformed.
  inline bool Admit(const sockaddr_in& from, uint32_t src_qp);
  // Admit's no: counts the datagram as malformed and, if a source waits to
  // be resolved again, posts a mark behind the sends to it.
  void Refuse();
  // A destination was resolved, or failed to be: its pushes go or fail.
  void OnRouteOutcome(const DatagramRoutes::Outcome& outcome);
  // Hands the datagram in `buffer` (ours now) to a pop or the queue.
  inline void Deliver(BufferRef buffer, std::byte* data, uint32_t length,
                      const sockaddr_in& from);
  // Deliver's way when no pop waits for it, or others are queued ahead.
  void Enqueue(BufferRef buffer, std::byte* data, uint32_t length,
               const sockaddr_in& from);
  void DeliverPops();
  // Fails every waiting pop with `err`.
  void FailPops(int err);
  // Completes the first pop with the datagram at `data` in `buffer`, which
  // the application holds from now on.
  void Lend(BufferRef buffer, std::byte* data, uint32_t length,
            const sockaddr_in& from) {
    env_.tokens->CompletePop(pops_.front(), env_.pool->Lend(buffer.release()),
                             data, length, from);
    pops_.pop_front();
  }
  // Posts receives into the empty slots, in one chain.
  void Refill();
  void FinishPush(PushOp& op);
  // A finished op (FinishPush) kept for the next push.
  void Recycle(std::unique_ptr<PushOp> op);

  DatagramEnv env_;
  rdma_cm_id* id_;  // Borrowed: RdmaLibOs owns the bound id.
  sockaddr_in local_;
  uint32_t ud_mtu_ = 0;
  // Its SIDR replies say it takes compact datagrams (datagram_wire.h).
  bool takes_compact_ = false;
  std::string sidr_reply_;  // EncodeSidrReply's, for AnswerResolve.
  uint32_t max_inline_ = 0;
  uint32_t max_send_sge_ = 1;
  // Datagram n goes out with id PermuteId(id_key_, n): never repeated
  // within 2^32 datagrams, and not guessable by a process that does not
  // see this socket's traffic (so it cannot aim a fragment at the next one).
  uint32_t next_id_ = 0;
  uint64_t id_key_[2] = {};
  int error_ = 0;            // The QP failed: every push fails with it.
  int recv_error_ = 0;       // The receive CQ failed: every pop fails.
  bool refill_dry_ = false;  // The pool ran dry refilling: retry on timers.
  bool closing_ = false;
  // When this Poll batch's fragments arrived, for reassembly's timeout:
  // read at the batch's first fragment of a multi-fragment datagram
  // (InfinitePast until then), so that a datagram of one fragment reads no
  // clock. Not the timers' time: after the application stayed out of the
  // library past the timeout, that would expire a new entry at once.
  absl::Time batch_now_ = absl::InfinitePast();

  // Declared so that the QP goes first, then the CQs, then the headers.
  std::vector<DatagramHeader> headers_;  // One per send slot.
  rdma::MrPtr headers_mr_;
  rdma::CqPtr send_cq_;
  rdma::CqPtr recv_cq_;
  rdma::CmQpPtr qp_;

  std::vector<SendSlot> send_slots_;
  ibv_send_wr send_wr_ = {};  // PostSend's, with no next.
  uint64_t send_head_ = 0;    // Next send slot to post.
  uint64_t send_tail_ = 0;    // Oldest send slot not retired.
  // One past the newest signalled send slot: while it is above send_tail_
  // a send completion is to come.
  uint64_t signaled_end_ = 0;
  uint32_t unsignaled_run_ = 0;
  std::vector<StagedSend> staged_;  // kDoorbellBatch, at the first Stage.
  uint32_t num_staged_ = 0;
  // The progress pass of the latest post (see DatagramEnv::poll_passes).
  uint32_t posted_pass_ = 0;
  // A send that never completes holds every later one: PollTimers watches
  // the oldest slot, and fails the socket once a signalled send has been
  // out behind it, the slot unmoved, for kDatagramSendTimeout (from the
  // first look that saw that send out); with none out, it posts a mark
  // after kDatagramMarkAfter. UINT64_MAX: nothing watched.
  uint64_t watched_tail_ = UINT64_MAX;
  absl::Time watched_since_;
  bool watched_signaled_ = false;  // A signalled send was out at the look.
  // By pointer: a PushOp is ~500 bytes, and a deque of them would allocate
  // a node and move one per datagram.
  std::deque<std::unique_ptr<PushOp>> backlog_;     // Not fully posted.
  std::deque<std::unique_ptr<PushOp>> in_flight_;   // In posting order.
  std::vector<std::unique_ptr<PushOp>> spare_ops_;  // Finished, reused.

  std::vector<BufferRef> recv_slots_;  // Null: to be refilled.
  std::vector<uint32_t> empty_slots_;
  std::deque<Incoming> incoming_;
  FifoRing<demi_qtoken_t> pops_;

  DatagramRoutes routes_;
  std::vector<DatagramRoutes::Outcome> route_failures_;  // PollTimers' own.
  Reassembly reassembly_;
  DatagramStats stats_;
};

}  // namespace demi

#endif  // DEMI_DEMI_DATAGRAM_SOCKET_H_
