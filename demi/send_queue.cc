#include "demi/send_queue.h"

namespace demi {
namespace {

int PostToDevice(ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** bad) {
  return ibv_post_send(qp, wr, bad);
}

}  // namespace

SendQueue::SendQueue(ibv_qp* qp, uint32_t depth, uint32_t signal_interval,
                     PostFn post, uint32_t* signaled_total)
    : qp_(qp),
      depth_(depth),
      signal_interval_(signal_interval),
      post_(post != nullptr ? post : PostToDevice),
      signaled_total_(signaled_total),
      slots_(depth) {}

SendQueue::~SendQueue() {
  if (signaled_total_ != nullptr) *signaled_total_ -= signaled_;
}

int SendQueue::Post(ibv_send_wr& wr, SendSlot& slot, bool must_signal) {
  slot.signaled = must_signal || unsignaled_run_ + 1 >= signal_interval_;
  wr.wr_id = head_;
  if (slot.signaled) wr.send_flags |= IBV_SEND_SIGNALED;
  ibv_send_wr* bad = nullptr;
  if (int rc = post_(qp_, &wr, &bad); rc != 0) return rc;
  if (slot.signaled) {
    ++signaled_;
    if (signaled_total_ != nullptr) ++*signaled_total_;
    unsignaled_run_ = 0;
  } else {
    ++unsignaled_run_;
  }
  slots_[head_ % depth_] = std::move(slot);
  ++head_;
  return 0;
}

}  // namespace demi
