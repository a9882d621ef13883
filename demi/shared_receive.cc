#include "demi/shared_receive.h"

#include <utility>

#include "rdma/log.h"
#include "rdma/status_util.h"
#include "rdma/verbs_call.h"

namespace demi {

absl::StatusOr<std::unique_ptr<SharedReceive>> SharedReceive::Create(
    ibv_context* context, ibv_pd* pd, SgaPool* pool, int device,
    uint32_t buffer_size) {
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
                        rdma::CreateCq(context, capacity, nullptr));
  DEMI_ASSIGN_OR_RETURN(receive->srq_, rdma::CreateSrq(pd, capacity, 1));
  receive->credits_.capacity = capacity;
  receive->credits_.growth_limit = std::min(kGrowthCredits, capacity / 2);
  receive->credits_.spare = kSpareReceives;
  return receive;
}

SharedReceive::~SharedReceive() {
  srq_.reset();  // Nothing is posted any more: the buffers are ours again.
  for (Buffer* buffer : slots_) {
    if (buffer != nullptr) pool_->Unref(buffer);
  }
}

bool SharedReceive::Refill() {
  uint32_t wanted = credits_.deficit();
  if (wanted == 0) return true;
  std::vector<ibv_sge>& sges = scratch_sges_;
  std::vector<ibv_recv_wr>& wrs = scratch_wrs_;
  sges.clear();
  wrs.clear();
  sges.reserve(wanted);  // No reallocation below: wrs point into sges.
  bool dry = false;
  for (uint32_t i = 0; i < wanted; ++i) {
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
      slots_.push_back(buffer);
    } else {
      slot = free_slots_.back();
      free_slots_.pop_back();
      slots_[slot] = buffer;
    }
    sges.push_back({reinterpret_cast<uintptr_t>(buffer->data), buffer_size_,
                    SgaPool::Lkey(buffer, device_)});
    ibv_recv_wr wr = {};
    wr.wr_id = slot;
    wr.num_sge = 1;
    wrs.push_back(wr);
  }
  if (wrs.empty()) return !dry;
  for (size_t i = 0; i < wrs.size(); ++i) {
    wrs[i].sg_list = &sges[i];
    wrs[i].next = i + 1 < wrs.size() ? &wrs[i + 1] : nullptr;
  }
  ibv_recv_wr* bad = nullptr;
  int rc = ibv_post_srq_recv(srq_.get(), wrs.data(), &bad);
  // Everything before `bad` is posted; from it on, nothing is.
  size_t posted = rc == 0 ? wrs.size() : static_cast<size_t>(bad - wrs.data());
  for (size_t i = posted; i < wrs.size(); ++i) {
    uint32_t slot = static_cast<uint32_t>(wrs[i].wr_id);
    pool_->Unref(slots_[slot]);
    slots_[slot] = nullptr;
    free_slots_.push_back(slot);
  }
  credits_.posted += static_cast<uint32_t>(posted);
  if (rc != 0) {
    DEMI_LOG(ERROR) << "ibv_post_srq_recv: " << rc;
    return false;
  }
  return !dry;
}

void SharedReceive::TakeWaiting(std::vector<int>& out) {
  out.clear();
  out.swap(waiting_);
}

}  // namespace demi
