#include "demi/shared_receive.h"

#include <algorithm>
#include <utility>

#include "demi/limits.h"
#include "rdma/log.h"
#include "rdma/status_util.h"
#include "rdma/verbs_call.h"

namespace demi {

absl::StatusOr<std::unique_ptr<SharedReceive>> SharedReceive::Create(
    ibv_context* context, ibv_comp_channel* channel, ibv_pd* pd, SgaPool* pool,
    int device, uint32_t buffer_size, uint32_t max_connections) {
  ibv_device_attr attr = {};
  DEMI_RETURN_IF_ERROR(
      rdma::CheckRc(ibv_query_device(context, &attr), "ibv_query_device"));
  // Every posted buffer may complete before anything is polled.
  uint32_t capacity = kSrqCapacity;
  if (attr.max_srq_wr > 0) {
    capacity = std::min(capacity, static_cast<uint32_t>(attr.max_srq_wr));
  }
  capacity = std::min(capacity, static_cast<uint32_t>(attr.max_cqe));
  if (capacity < 2 * kBaseCredits) {
    return rdma::ErrnoError(ENOTSUP, "the device's SRQ is too small");
  }
  std::unique_ptr<SharedReceive> receive(
      new SharedReceive(pool, device, buffer_size));
  DEMI_ASSIGN_OR_RETURN(receive->cq_,
                        rdma::CreateCq(context, capacity, channel));
  DEMI_ASSIGN_OR_RETURN(receive->srq_, rdma::CreateSrq(pd, capacity, 1));
  receive->credits_.capacity = capacity;
  receive->credits_.growth_limit = std::min(kGrowthCredits, capacity / 2);
  receive->credits_.spare = kSpareReceives;
  // The growth budget and the spares stay free of base allotments.
  uint32_t base_room =
      capacity -
      std::min(capacity, receive->credits_.growth_limit + kSpareReceives);
  receive->credits_.max_connections =
      std::max(1u, std::min(max_connections, base_room / kBaseCredits));
  return receive;
}

SharedReceive::~SharedReceive() {
  // First: with the SRQ gone nothing is posted, so the buffers in slots_
  // may go back to the pool with them.
  srq_.reset();
}

bool SharedReceive::Refill() {
  uint32_t wanted = credits_.deficit();
  while (wanted > 0) {
    // A chain of up to kRefillChain on the stack: nothing to allocate or
    // to zero, and one post per chain.
    ibv_sge sges[kRefillChain];
    ibv_recv_wr wrs[kRefillChain];
    uint32_t n = 0;
    bool dry = false;
    for (; n < wanted && n < kRefillChain; ++n) {
      Buffer* buffer = pool_->TakeFree(size_class_);
      if (buffer == nullptr) {
        absl::StatusOr<Buffer*> grown = pool_->Allocate(buffer_size_);
        if (!grown.ok()) {
          dry = true;
          break;
        }
        buffer = *grown;
      }
      uint32_t slot;
      if (free_slots_.empty()) {
        slot = static_cast<uint32_t>(slots_.size());
        slots_.emplace_back(buffer);
      } else {
        slot = free_slots_.back();
        free_slots_.pop_back();
        slots_[slot].reset(buffer);
      }
      sges[n].addr = reinterpret_cast<uintptr_t>(buffer->data);
      sges[n].length = buffer_size_;
      sges[n].lkey = SgaPool::Lkey(buffer, device_);
      wrs[n].wr_id = slot;
      wrs[n].next = &wrs[n + 1];
      wrs[n].sg_list = &sges[n];
      wrs[n].num_sge = 1;
    }
    if (n == 0) return false;  // The pool is dry.
    wrs[n - 1].next = nullptr;
    ibv_recv_wr* bad = nullptr;
    int rc = ibv_post_srq_recv(srq_.get(), wrs, &bad);
    // Everything before `bad` is posted; from it on, nothing is.
    uint32_t posted = rc == 0 ? n : static_cast<uint32_t>(bad - wrs);
    for (uint32_t i = posted; i < n; ++i) {
      uint32_t slot = static_cast<uint32_t>(wrs[i].wr_id);
      slots_[slot].reset();
      free_slots_.push_back(slot);
    }
    credits_.posted += posted;
    if (rc != 0) {
      DEMI_LOG(ERROR) << "ibv_post_srq_recv: " << rc;
      return false;
    }
    if (dry) return false;
    wanted -= n;
  }
  return true;
}

void SharedReceive::TakeWaiting(std::vector<int>& out) {
  out.clear();
  out.swap(waiting_);
}

}  // namespace demi
