#include "demi/cq_pool.h"

#include <algorithm>
#include <cerrno>
#include <utility>

#include "rdma/clock.h"
#include "rdma/status_util.h"

namespace demi {

absl::StatusOr<ibv_cq*> CqPool::Reserve(int entries) {
  if (entries > depth_) return rdma::ErrnoError(EINVAL, "more than a CQ holds");
  for (Entry& entry : cqs_) {
    if (entry.reserved + entries <= entry.cq->cqe) {
      entry.reserved += entries;
      entry.empty_since = absl::InfiniteFuture();
      return entry.cq.get();
    }
  }
  Entry entry;
  DEMI_ASSIGN_OR_RETURN(entry.cq, rdma::CreateCq(context_, depth_, channel_));
  entry.reserved = entries;
  ++created_;
  cqs_.push_back(std::move(entry));
  return cqs_.back().cq.get();
}

void CqPool::Release(ibv_cq* cq, int entries) {
  for (Entry& entry : cqs_) {
    if (entry.cq.get() == cq) {
      entry.reserved -= entries;
      if (entry.reserved == 0) entry.empty_since = rdma::MonotonicNow();
      return;
    }
  }
}

void CqPool::ReleaseIdle(absl::Time now) {
  if (cqs_.size() < 2) return;
  // The first stays: a thread with any connection needs one.
  cqs_.erase(std::remove_if(cqs_.begin() + 1, cqs_.end(),
                            [&](const Entry& entry) {
                              return entry.reserved == 0 &&
                                     now - entry.empty_since >= idle_time_;
                            }),
             cqs_.end());
}

absl::Time CqPool::NextRelease() const {
  absl::Time next = absl::InfiniteFuture();
  for (size_t i = 1; i < cqs_.size(); ++i) {
    if (cqs_[i].reserved == 0) {
      next = std::min(next, cqs_[i].empty_since + idle_time_);
    }
  }
  return next;
}

}  // namespace demi
