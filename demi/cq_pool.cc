#include "demi/cq_pool.h"

#include <cerrno>
#include <utility>

#include "rdma/status_util.h"

namespace demi {

absl::StatusOr<ibv_cq*> CqPool::Reserve(int entries) {
  if (entries > depth_) return rdma::ErrnoError(EINVAL, "more than a CQ holds");
  for (Entry& entry : cqs_) {
    if (entry.reserved + entries <= entry.cq->cqe) {
      entry.reserved += entries;
      return entry.cq.get();
    }
  }
  Entry entry;
  DEMI_ASSIGN_OR_RETURN(entry.cq, rdma::CreateCq(context_, depth_, channel_));
  entry.reserved = entries;
  cqs_.push_back(std::move(entry));
  return cqs_.back().cq.get();
}

void CqPool::Release(ibv_cq* cq, int entries) {
  for (Entry& entry : cqs_) {
    if (entry.cq.get() == cq) {
      entry.reserved -= entries;
      return;
    }
  }
}

}  // namespace demi
