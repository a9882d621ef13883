// The send queue of one RC QP as a ring of slots indexed by wr_id. A work
// request's wr_id is its posting sequence number, so its completion finds
// its slot by arithmetic (no search, no allocation per send), and every
// slot before it retires with it: RC completes in order, and unsignalled
// requests complete with the next signalled one.
#ifndef DEMI_DEMI_SEND_QUEUE_H_
#define DEMI_DEMI_SEND_QUEUE_H_

#include <infiniband/verbs.h>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "demi/push_op.h"
#include "demi/sga_pool.h"

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
  Buffer* header = nullptr;  // A pool piece holding a long header.
  uint64_t read_cookie = 0;  // kRead: which incoming message.
};

// Not thread-safe.
class SendQueue {
 public:
  // ibv_post_send, or a stand-in in tests.
  using PostFn = int (*)(ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** bad);

  // `depth` slots; at most `signal_interval` - 1 unsignalled in a row.
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
  uint32_t next_index() const { return static_cast<uint32_t>(head_ % depth_); }

  // Posts `wr` (its wr_id set here) into the next slot, which then holds
  // `slot`; signalled if `must_signal` or the unsignalled run is long. The
  // caller checks room() first. Returns 0, or ibv_post_send's errno with
  // `slot` left to the caller.
  int Post(ibv_send_wr& wr, SendSlot& slot, bool must_signal);

  // A completion for `wr_id` with `err`: calls `retire(slot, err)` for
  // every slot up to it, oldest first (`err` only for that one; the ones
  // before it succeeded). False if `wr_id` is not posted (stale).
  template <typename Retire>
  bool Complete(uint64_t wr_id, int err, Retire&& retire) {
    if (wr_id < tail_ || wr_id >= head_) return false;
    while (tail_ <= wr_id) {
      SendSlot& slot = slots_[tail_ % depth_];
      bool last = tail_ == wr_id;
      ++tail_;
      if (slot.signaled) {
        --signaled_;
        if (signaled_total_ != nullptr) --*signaled_total_;
      }
      // Most slots (inline and control messages) hold nothing: an error
      // only matters on the last, which is always retired.
      if (!last && slot.kind == SendSlot::kControl && slot.header == nullptr) {
        continue;
      }
      // Moved out first: `retire` may post into the slot it frees.
      SendSlot done = std::move(slot);
      slot = SendSlot();
      retire(done, last ? err : 0);
    }
    return true;
  }

  // Calls `f(slot)` for every posted slot, oldest first.
  template <typename F>
  void ForEachPosted(F&& f) {
    for (uint64_t i = tail_; i < head_; ++i) f(slots_[i % depth_]);
  }

 private:
  ibv_qp* qp_;
  const uint32_t depth_;
  const uint32_t signal_interval_;
  PostFn post_;
  uint32_t* signaled_total_;
  std::vector<SendSlot> slots_;
  uint64_t head_ = 0;  // Next wr_id.
  uint64_t tail_ = 0;  // Oldest wr_id not retired.
  uint32_t signaled_ = 0;
  uint32_t unsignaled_run_ = 0;
};

}  // namespace demi

#endif  // DEMI_DEMI_SEND_QUEUE_H_
