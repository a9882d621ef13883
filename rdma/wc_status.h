// Maps a failed work completion to the errno its operation fails with.
#ifndef DEMI_RDMA_WC_STATUS_H_
#define DEMI_RDMA_WC_STATUS_H_

#include <infiniband/verbs.h>

namespace demi::rdma {

// Returns 0 for IBV_WC_SUCCESS, otherwise a positive errno: ETIMEDOUT when
// the transport gave up retrying (the peer is gone or unreachable),
// ECONNRESET when the peer or the local side tore the connection down
// (flushes, remote errors), EINVAL/EPROTO/EFAULT/ENOMEM for local misuse,
// and EIO for anything else.
int WcStatusToErrno(ibv_wc_status status);

}  // namespace demi::rdma

#endif  // DEMI_RDMA_WC_STATUS_H_
