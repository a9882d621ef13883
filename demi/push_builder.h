// Preparing a push's memory on an RC connection: which bytes go without a
// copy (pool pieces, referenced for the push), which are copied (small
// foreign memory, another thread's pool pieces, or more segments than the
// device gathers), which are registered for this one push (large foreign
// memory), and, for a rendezvous, the memory windows the peer will read
// through.
#ifndef DEMI_DEMI_PUSH_BUILDER_H_
#define DEMI_DEMI_PUSH_BUILDER_H_

#include <demi/types.h>
#include <infiniband/verbs.h>

#include <cstdint>

#include "absl/status/status.h"
#include "demi/push_op.h"
#include "demi/sga_pool.h"

namespace demi {

// Where a push's memory comes from (borrowed).
struct PushMemory {
  SgaPool* pool;
  ibv_pd* pd;
  int device;  // For SgaPool::Lkey and the pieces' MRs.
  uint32_t max_send_sge;
};

// The `length` bytes of `sga` as a push posts them in place (an eager
// push's, a datagram's): appends to `sges` what follows the header, and to
// `holds` the pieces the push keeps alive. ENOMEM if a copy finds no pool
// memory.
absl::Status PrepareBytes(const PushMemory& memory, const demi_sgarray_t& sga,
                          uint32_t length, PushSges& sges, PushHolds& holds);
// An eager push: fills op.sges and op.holds.
inline absl::Status PrepareEager(const PushMemory& memory, PushOp& op,
                                 const demi_sgarray_t& sga) {
  return PrepareBytes(memory, sga, op.length, op.sges, op.holds);
}
// A rendezvous push: one memory window per segment (bound later, when the
// announcement goes out), registrations for large foreign segments, copies
// of small ones and of another thread's pool pieces (of any size: their
// references are not this pool's to hold).
absl::Status PrepareRndv(const PushMemory& memory, PushOp& op,
                         const demi_sgarray_t& sga);
// Gives back what `op` holds: windows first (the peer's access ends at
// once), then registrations and pool pieces.
void ReleasePush(PushOp& op);

}  // namespace demi

#endif  // DEMI_DEMI_PUSH_BUILDER_H_
