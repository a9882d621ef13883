// A push on an RC connection from demi_push until the peer has it: what
// it holds (pool pieces, registrations, memory windows) and what to post.
#ifndef DEMI_DEMI_PUSH_OP_H_
#define DEMI_DEMI_PUSH_OP_H_

#include <demi/types.h>
#include <infiniband/verbs.h>

#include <cstdint>
#include <vector>

#include "demi/sga_pool.h"
#include "demi/wire.h"
#include "rdma/verbs_ptr.h"

namespace demi {

struct PushOp {
  demi_qtoken_t qt = 0;
  uint32_t length = 0;
  // Pool pieces the push keeps alive (the application's, a copy).
  // Released when the push ends.
  std::vector<Buffer*> holds;
  // Eager: what to post after the header.
  std::vector<ibv_sge> sges;
  // Rendezvous: foreign memory registered for the push, the windows that
  // expose each segment to this connection's QP alone (bound just before
  // the announcement goes out; deallocated, so revoked, when the push
  // ends), and what to bind them to.
  std::vector<rdma::MrPtr> read_mrs;
  std::vector<rdma::MwPtr> windows;
  std::vector<ibv_mw_bind_info> binds;
  RndvDescriptor rndv = {};
  bool is_rndv = false;
  bool is_close = false;
};

}  // namespace demi

#endif  // DEMI_DEMI_PUSH_OP_H_
