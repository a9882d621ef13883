// Completion queues for the send side of a device's QPs. Each QP reserves
// room for all its send work requests in one CQ, so no CQ can overflow;
// when every CQ is full a new one is created, so the number of connections
// is not bounded by one CQ's size. A CQ other than the first that nobody
// has reserved for a while is destroyed: on soft-RoCE each holds 4 MiB of
// resident queue memory, and a burst of connections would otherwise keep
// its CQs to the end of the process.
#ifndef DEMI_DEMI_CQ_POOL_H_
#define DEMI_DEMI_CQ_POOL_H_

#include <infiniband/verbs.h>

#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rdma/verbs_ptr.h"

namespace demi {

class CqPool {
 public:
  // CQs of `depth` entries on `context`, reporting to `channel` once armed
  // (both borrowed). An unreserved CQ goes after `idle_time`.
  CqPool(ibv_context* context, int depth, ibv_comp_channel* channel,
         absl::Duration idle_time)
      : context_(context),
        depth_(depth),
        channel_(channel),
        idle_time_(idle_time) {}

  // A CQ with room for `entries` more completions, now reserved. The first
  // CQs are filled first, so that the last ones empty when load goes down.
  absl::StatusOr<ibv_cq*> Reserve(int entries);
  // Returns a reservation (the QP that used it is gone).
  void Release(ibv_cq* cq, int entries);
  // Destroys every CQ but the first that has had no reservation since
  // `now` - idle time (`now`: rdma::MonotonicNow, which Release reads). Not
  // while a CQ is being polled (they are indexed); what is left in one belongs
  // to QPs already destroyed. Every event of its channel must have been acked
  // (IdleSleep acks each as it comes).
  void ReleaseIdle(absl::Time now);
  // When ReleaseIdle will next have something to do (InfiniteFuture: never).
  absl::Time NextRelease() const;

  size_t size() const { return cqs_.size(); }
  // CQs made so far (it only grows: a CQ made since an earlier look shows).
  uint64_t created() const { return created_; }
  ibv_cq* cq(size_t i) const { return cqs_[i].cq.get(); }

 private:
  struct Entry {
    rdma::CqPtr cq;
    int reserved = 0;
    absl::Time empty_since = absl::InfiniteFuture();  // While reserved is 0.
  };

  ibv_context* context_;
  const int depth_;
  ibv_comp_channel* channel_;
  const absl::Duration idle_time_;
  std::vector<Entry> cqs_;
  uint64_t created_ = 0;
};

}  // namespace demi

#endif  // DEMI_DEMI_CQ_POOL_H_
