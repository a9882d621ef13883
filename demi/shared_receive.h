// The receive side of one device: a shared receive queue (SRQ) that every
// connection's QP takes its messages from, the completion queue those
// messages complete on, and the credit pool (credits.h) that decides how
// many buffers the SRQ holds.
//
// A posted buffer sits in a slot; the slot's index is the receive's wr_id,
// so a completion finds its buffer without a lookup.
#ifndef DEMI_DEMI_SHARED_RECEIVE_H_
#define DEMI_DEMI_SHARED_RECEIVE_H_

#include <infiniband/verbs.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "demi/buffer_ref.h"
#include "demi/credits.h"
#include "demi/sga_pool.h"
#include "rdma/verbs_ptr.h"

namespace demi {

class SharedReceive {
 public:
  // An SRQ and its CQ on `context` in `pd`, taking `buffer_size` pieces
  // from `pool` (borrowed; registered with device index `device`), for at
  // most `max_connections` connections (fewer if their base credits and
  // the growth budget would not fit the device's SRQ). The CQ reports to
  // `channel` (borrowed) once armed.
  static absl::StatusOr<std::unique_ptr<SharedReceive>> Create(
      ibv_context* context, ibv_comp_channel* channel, ibv_pd* pd,
      SgaPool* pool, int device, uint32_t buffer_size,
      uint32_t max_connections);
  ~SharedReceive();
  SharedReceive(const SharedReceive&) = delete;
  SharedReceive& operator=(const SharedReceive&) = delete;

  ibv_srq* srq() const { return srq_.get(); }
  ibv_cq* cq() const { return cq_.get(); }
  CreditPool& credits() { return credits_; }
  // The largest message (header included) its connections' peers send
  // eagerly: the size of its buffers.
  uint32_t buffer_size() const { return buffer_size_; }

  // Posts buffers, in chains, until the SRQ backs every allotment.
  // False if the pool ran dry first (try again later); a failed post is
  // logged and also returns false.
  bool Refill();
  // Whether Refill has work to do: an allotment lacks buffers, or a batch
  // of spares has been used.
  bool NeedsRefill() const {
    return credits_.posted < credits_.allotted ||
           credits_.deficit() >= kRefillBatch;
  }
  // The buffer of a receive completion's `wr_id`; no longer posted.
  BufferRef Take(uint64_t wr_id) {
    if (wr_id >= slots_.size() || !slots_[wr_id]) return BufferRef();
    free_slots_.push_back(static_cast<uint32_t>(wr_id));
    --credits_.posted;
    return std::move(slots_[wr_id]);
  }

  // Connections (by queue descriptor) waiting for buffers to back their
  // credits; the progress engine serves them after a refill.
  void AddWaiting(int qd) { waiting_.push_back(qd); }
  bool HasWaiting() const { return !waiting_.empty(); }
  // Moves them into `out` (emptied first), which lends its capacity to
  // the next waiters: no allocation per refill.
  void TakeWaiting(std::vector<int>& out);

 private:
  SharedReceive(SgaPool* pool, int device, uint32_t buffer_size)
      : pool_(pool),
        device_(device),
        buffer_size_(buffer_size),
        size_class_(SizeClassOf(buffer_size)) {}

  SgaPool* pool_;
  const int device_;
  const uint32_t buffer_size_;
  const int size_class_;
  CreditPool credits_;
  // The SRQ goes before its CQ (members are destroyed in reverse order).
  rdma::CqPtr cq_;
  rdma::SrqPtr srq_;
  std::vector<BufferRef> slots_;      // By wr_id; null when free.
  std::vector<uint32_t> free_slots_;  // Indices of null slots.
  std::vector<int> waiting_;
};

}  // namespace demi

#endif  // DEMI_DEMI_SHARED_RECEIVE_H_
