// Completion queues for the send side of a device's QPs. Each QP reserves
// room for all its send work requests in one CQ, so no CQ can overflow;
// when every CQ is full a new one is created, so the number of connections
// is not bounded by one CQ's size.
#ifndef DEMI_DEMI_CQ_POOL_H_
#define DEMI_DEMI_CQ_POOL_H_

#include <infiniband/verbs.h>

#include <vector>

#include "absl/status/statusor.h"
#include "rdma/verbs_ptr.h"

namespace demi {

class CqPool {
 public:
  // CQs of `depth` entries on `context`, reporting to `channel` once armed
  // (both borrowed).
  CqPool(ibv_context* context, int depth, ibv_comp_channel* channel)
      : context_(context), depth_(depth), channel_(channel) {}

  // A CQ with room for `entries` more completions, now reserved.
  absl::StatusOr<ibv_cq*> Reserve(int entries);
  // Returns a reservation (the QP that used it is gone).
  void Release(ibv_cq* cq, int entries);

  size_t size() const { return cqs_.size(); }
  ibv_cq* cq(size_t i) const { return cqs_[i].cq.get(); }

 private:
  struct Entry {
    rdma::CqPtr cq;
    int reserved = 0;
  };

  ibv_context* context_;
  const int depth_;
  ibv_comp_channel* channel_;
  std::vector<Entry> cqs_;
};

}  // namespace demi

#endif  // DEMI_DEMI_CQ_POOL_H_
