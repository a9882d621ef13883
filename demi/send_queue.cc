#include "demi/send_queue.h"

#include <cassert>
#include <cstring>

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
      mask_(SendRingSize(depth) - 1),
      signal_interval_(signal_interval),
      post_(post != nullptr ? post : PostToDevice),
      signaled_total_(signaled_total) {
  assert(depth > 0);
}

SendQueue::~SendQueue() {
  if (signaled_total_ != nullptr) *signaled_total_ -= signaled_;
}

bool SendQueue::StageInline(const ibv_sge* sges, int num_sge,
                            ibv_wr_opcode opcode, uint32_t imm,
                            demi_qtoken_t qt) {
  if (num_staged_ == kDoorbellBatch) return false;
  if (staged_.empty()) staged_.resize(kDoorbellBatch);
  Staged& staged = staged_[num_staged_];
  uint32_t length = 0;
  for (int i = 0; i < num_sge; ++i) {
    std::memcpy(staged.bytes + length,
                reinterpret_cast<const void*>(sges[i].addr), sges[i].length);
    length += sges[i].length;
  }
  staged.sge = {reinterpret_cast<uintptr_t>(staged.bytes), length, 0};
  staged.qt = qt;
  staged.wr = {};
  staged.wr.wr_id = head_;
  staged.wr.sg_list = &staged.sge;
  staged.wr.num_sge = 1;
  staged.wr.opcode = opcode;
  staged.wr.imm_data = imm;
  staged.wr.send_flags = IBV_SEND_INLINE;
  bool signaled = unsignaled_run_ + 1 >= signal_interval_;
  if (signaled) staged.wr.send_flags |= IBV_SEND_SIGNALED;
  if (num_staged_ > 0) staged_[num_staged_ - 1].wr.next = &staged.wr;
  ++num_staged_;
  // The head slot holds nothing (see PostBare).
  SendSlot& slot = SlotAtHead();
  slot.kind = SendSlot::kControl;
  slot.signaled = signaled;
  CountCommit(signaled);
  ++head_;
  return true;
}

}  // namespace demi
