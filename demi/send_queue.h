// The send queue of one RC QP as a ring of slots indexed by wr_id. A work
// request's wr_id is its posting sequence number, so its completion finds
// its slot by arithmetic (no search, no allocation per send), and every
// slot before it retires with it: RC completes in order, and unsignalled
// requests complete with the next signalled one.
//
// Small inline sends may also be staged: copied here, and posted behind
// one doorbell (one ibv_post_send, one system call on soft-RoCE) with the
// ones staged after them, or ahead of the next request posted at once.
#ifndef DEMI_DEMI_SEND_QUEUE_H_
#define DEMI_DEMI_SEND_QUEUE_H_

#include <demi/types.h>
#include <infiniband/verbs.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "demi/buffer_ref.h"
#include "demi/limits.h"
#include "demi/push_op.h"
#include "demi/sga_pool.h"
#include "demi/staged_chain.h"

namespace demi {

// What a posted send work request stands for.
struct SendSlot {
  enum Kind : uint8_t { kPush, kControl, kRead, kProbe };
  SendSlot() = default;
  explicit SendSlot(Kind k) : kind(k) {}

  Kind kind = kControl;
  bool signaled = false;
  // kPush: the push, until its completion (eager not inline, or CLOSE).
  std::unique_ptr<PushOp> push;
  BufferRef header;      // A pool piece holding a long header.
  uint64_t read_id = 0;  // kRead: which incoming message (Connection's).
  // kPush without a PushOp (an eager push of one pool piece, posted from
  // it): its token, completed with this request, and the piece it holds.
  demi_qtoken_t qt = 0;
  BufferRef piece;
};

// Not thread-safe.
class SendQueue {
 public:
  // ibv_post_send, or a stand-in in tests.
  using PostFn = int (*)(ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** bad);

  // At most `depth` requests posted, in a ring of `depth` rounded up to a
  // power of two slots (a slot's index is a mask of its wr_id, not a 64-bit
  // division per send); at most `signal_interval` - 1 unsignalled in a row.
  // `signaled_total` (borrowed, may be null) counts the signalled requests
  // posted and not yet completed of every queue sharing a completion
  // queue, so that the progress engine polls it only while one may come.
  SendQueue(ibv_qp* qp, uint32_t depth, uint32_t signal_interval,
            PostFn post = nullptr, uint32_t* signaled_total = nullptr);
  ~SendQueue();
  SendQueue(const SendQueue&) = delete;
  SendQueue& operator=(const SendQueue&) = delete;

  uint32_t posted() const { return static_cast<uint32_t>(head_ - tail_); }
  uint32_t room() const { return depth_ - posted(); }
  // Whether a signalled request is posted: its completion will come.
  bool has_signaled() const { return signaled_ > 0; }
  // The ring index the next Post takes (for per-slot memory).
  uint32_t next_index() const { return static_cast<uint32_t>(head_ & mask_); }
  // The ring's slots, which next_index() indexes.
  uint32_t ring_size() const { return static_cast<uint32_t>(mask_ + 1); }

  // Posts `wr` (its wr_id set here) into the next slot, which then holds
  // `slot`; signalled if `must_signal` or the unsignalled run is long. The
  // caller checks room() first. Returns 0, or ibv_post_send's errno with
  // `slot` left to the caller. The staged sends go first, in the same
  // post: `done(qt, err)` then reports each staged push, in order.
  template <typename Done>
  int Post(ibv_send_wr& wr, SendSlot& slot, bool must_signal, Done&& done) {
    slot.signaled = must_signal || unsignaled_run_ + 1 >= signal_interval_;
    int rc;
    if (SendSlot* posted = PostAtHead(wr, slot.signaled, done, &rc)) {
      *posted = std::move(slot);
    }
    return rc;
  }

  // Post for a request that holds nothing until its completion (inline
  // data): the per-message path builds, moves and destroys no SendSlot. A
  // free slot holds nothing already (retiring and unstaging reset it).
  template <typename Done>
  int PostBare(ibv_send_wr& wr, Done&& done) {
    int rc;
    if (SendSlot* posted = PostAtHead(
            wr, unsignaled_run_ + 1 >= signal_interval_, done, &rc)) {
      posted->kind = SendSlot::kControl;
    }
    return rc;
  }

  // Post for an eager push of one pool piece (Connection::TryPushPiece):
  // signalled, its slot written in place with the push's token `qt` and a
  // reference to `piece`, taken only once the post succeeded.
  template <typename Done>
  int PostPiece(ibv_send_wr& wr, demi_qtoken_t qt, Buffer* piece, Done&& done) {
    int rc;
    if (SendSlot* posted = PostAtHead(wr, /*signaled=*/true, done, &rc)) {
      posted->kind = SendSlot::kPush;
      posted->qt = qt;
      posted->piece = BufferRef::Share(piece);
    }
    return rc;
  }

  // Stages an inline `opcode` (IBV_WR_SEND, or IBV_WR_SEND_WITH_IMM with
  // `imm`, in network order) of the bytes `sges` point at (at most
  // kStagedInlineSize in all; no keys needed): copied now, posted by the
  // next Flush or Post. `qt` (0: none) is reported to their `done` then.
  // The caller checks room() first; false if kDoorbellBatch are staged
  // (Flush first).
  bool StageInline(const ibv_sge* sges, int num_sge, ibv_wr_opcode opcode,
                   uint32_t imm, demi_qtoken_t qt);
  uint32_t staged() const { return num_staged_; }
  // Posts the staged sends; returns 0 or ibv_post_send's errno. `done` as
  // for Post: a staged send that was not posted reports the errno.
  template <typename Done>
  int Flush(Done&& done) {
    return num_staged_ == 0 ? 0 : PostStaged(nullptr, done);
  }
  // Forgets the staged sends (the connection is gone): `done(qt, err)`.
  template <typename Done>
  void DropStaged(int err, Done&& done) {
    Unstage(0, err, done);
  }

  // A completion for `wr_id` with `err`: calls `retire(slot, err)` for
  // every slot up to it, oldest first (`err` only for that one; the ones
  // before it succeeded). False if `wr_id` is not posted (stale).
  template <typename Retire>
  bool Complete(uint64_t wr_id, int err, Retire&& retire) {
    if (wr_id < tail_ || wr_id >= head_) return false;
    while (tail_ <= wr_id) {
      SendSlot& slot = slots_[tail_ & mask_];
      bool last = tail_ == wr_id;
      ++tail_;
      if (slot.signaled) {
        --signaled_;
        if (signaled_total_ != nullptr) --*signaled_total_;
      }
      // Most slots (inline and control messages) hold nothing: an error
      // only matters on the last, which is always retired.
      if (!last && slot.kind == SendSlot::kControl && !slot.header) {
        continue;
      }
      // Moved out first: `retire` may post into the slot it frees. What
      // the move left behind is null; the rest is reset by hand.
      SendSlot done = std::move(slot);
      slot.kind = SendSlot::kControl;
      slot.signaled = false;
      slot.read_id = 0;
      slot.qt = 0;
      retire(done, last ? err : 0);
    }
    return true;
  }

  // Calls `f(slot)` for every posted slot, oldest first.
  template <typename F>
  void ForEachPosted(F&& f) {
    for (uint64_t i = tail_; i < head_; ++i) f(slots_[i & mask_]);
  }

 private:
  struct Staged {
    ibv_send_wr wr;
    ibv_sge sge;
    demi_qtoken_t qt;
    alignas(8) std::byte bytes[kStagedInlineSize];
  };

  // `*bad` (may be null) names the request the post stopped at.
  int PostChain(ibv_send_wr* first, ibv_send_wr** bad) {
    *bad = nullptr;
    int rc = post_(qp_, first, bad);
    return rc < 0 ? EIO : rc;  // Not an errno: report one all the same.
  }
  // Posts the staged sends, then `last` (may be null) in one chain.
  template <typename Done>
  int PostStaged(ibv_send_wr* last, Done& done) {
    uint32_t n = num_staged_;
    staged_[n - 1].wr.next = last;
    ibv_send_wr* bad;
    int rc = PostChain(&staged_[0].wr, &bad);
    staged_[n - 1].wr.next = nullptr;
    uint32_t posted = StagedPosted(rc, bad, staged_.data(), n, last);
    for (uint32_t i = 0; i < posted; ++i) {
      if (staged_[i].qt != 0) done(staged_[i].qt, 0);
    }
    Unstage(posted, rc, done);
    return rc;
  }
  // Takes back the staged sends from the `from`-th on (never posted):
  // their slots are the newest.
  template <typename Done>
  void Unstage(uint32_t from, int err, Done& done) {
    for (uint32_t i = from; i < num_staged_; ++i) {
      SendSlot& slot = slots_[staged_[i].wr.wr_id & mask_];
      if (slot.signaled) {
        --signaled_;
        if (signaled_total_ != nullptr) --*signaled_total_;
      }
      slot = SendSlot();
    }
    if (from < num_staged_) head_ = staged_[from].wr.wr_id;
    uint32_t n = num_staged_;
    num_staged_ = 0;
    for (uint32_t i = from; i < n; ++i) {
      if (staged_[i].qt != 0) done(staged_[i].qt, err);
    }
  }
  // Posts `wr` as the next request (the staged sends first), signalled if
  // `signaled`. Returns the slot it took, which holds nothing but
  // `signaled`, for the caller to fill; null if the post failed, with
  // ibv_post_send's errno in `*rc` (0 otherwise).
  template <typename Done>
  SendSlot* PostAtHead(ibv_send_wr& wr, bool signaled, Done& done, int* rc) {
    wr.wr_id = head_;
    if (signaled) wr.send_flags |= IBV_SEND_SIGNALED;
    ibv_send_wr* bad;
    *rc = num_staged_ == 0 ? PostChain(&wr, &bad) : PostStaged(&wr, done);
    if (*rc != 0) return nullptr;
    SendSlot& slot = SlotAtHead();
    slot.signaled = signaled;
    CountCommit(signaled);
    ++head_;
    return &slot;
  }
  // The ring is made at the first send: a connection that never sends
  // (most of a server's idle ones) costs no ring x 48 bytes.
  SendSlot& SlotAtHead() {
    if (slots_.empty()) slots_.resize(mask_ + 1);
    return slots_[head_ & mask_];
  }
  void CountCommit(bool signaled) {
    if (signaled) {
      ++signaled_;
      if (signaled_total_ != nullptr) ++*signaled_total_;
      unsignaled_run_ = 0;
    } else {
      ++unsignaled_run_;
    }
  }

  ibv_qp* qp_;
  const uint32_t depth_;
  const uint64_t mask_;  // The ring's slots - 1.
  const uint32_t signal_interval_;
  PostFn post_;
  uint32_t* signaled_total_;
  std::vector<SendSlot> slots_;
  uint64_t head_ = 0;  // Next wr_id.
  uint64_t tail_ = 0;  // Oldest wr_id not retired.
  uint32_t signaled_ = 0;
  uint32_t unsignaled_run_ = 0;
  // Allocated at the first StageInline: a connection that never sends in
  // bursts does without.
  std::vector<Staged> staged_;
  uint32_t num_staged_ = 0;
};

}  // namespace demi

#endif  // DEMI_DEMI_SEND_QUEUE_H_
