// A push on an RC connection from demi_push until the peer has it: what
// it holds (pool pieces, registrations, memory windows) and what to post.
#ifndef DEMI_DEMI_PUSH_OP_H_
#define DEMI_DEMI_PUSH_OP_H_

#include <demi/types.h>
#include <infiniband/verbs.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "demi/buffer_ref.h"
#include "demi/limits.h"
#include "demi/sga_pool.h"
#include "demi/wire.h"
#include "rdma/verbs_ptr.h"

namespace demi {

// What a push keeps alive until it ends (the application's pool pieces, a
// copy), and the bytes it posts after its header. Inline: a push of a few
// segments allocates nothing beyond its op. A datagram's push has them
// too (DatagramSocket).
using PushHolds = absl::InlinedVector<BufferRef, 4>;
using PushSges = absl::InlinedVector<ibv_sge, 4>;

struct PushOp {
  // Only the rendezvous descriptor's header is set here: the segments
  // (256 bytes) are written only by a rendezvous.
  PushOp() {
    rndv.num_segments = 0;
    rndv.reserved = 0;  // Sent as is.
  }

  demi_qtoken_t qt = 0;
  uint32_t length = 0;
  // Released when the push ends.
  PushHolds holds;
  // Eager: what to post after the header.
  PushSges sges;
  // Rendezvous: foreign memory registered for the push, the windows that
  // expose each segment to this connection's QP alone (bound just before
  // the announcement goes out; deallocated, so revoked, when the push
  // ends), and what to bind them to.
  std::vector<rdma::MrPtr> read_mrs;
  std::vector<rdma::MwPtr> windows;
  std::vector<ibv_mw_bind_info> binds;
  RndvDescriptor rndv;
  bool is_rndv = false;
  bool is_close = false;
};

// Finished PushOps kept for the next pushes, up to kSparePushOps: a push's
// malloc and free would cost more than the rest of its bookkeeping.
class PushOpCache {
 public:
  std::unique_ptr<PushOp> Take() {
    if (spare_.empty()) return std::make_unique<PushOp>();
    std::unique_ptr<PushOp> op = std::move(spare_.back());
    spare_.pop_back();
    return op;
  }
  // `op` must be finished (ReleasePush): it holds no memory of anyone's.
  // Its vectors keep what they have allocated.
  void Give(std::unique_ptr<PushOp> op) {
    if (op == nullptr || spare_.size() >= kSparePushOps) return;
    op->qt = 0;
    op->length = 0;
    op->sges.clear();
    op->binds.clear();
    op->rndv.num_segments = 0;
    op->is_rndv = false;
    op->is_close = false;
    spare_.push_back(std::move(op));
  }

 private:
  std::vector<std::unique_ptr<PushOp>> spare_;
};

}  // namespace demi

#endif  // DEMI_DEMI_PUSH_OP_H_
