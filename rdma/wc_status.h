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

// The errno a connection fails with when one of its own work requests
// completes with `status` (0 for IBV_WC_SUCCESS): as WcStatusToErrno, but
// the local-error class (EINVAL) becomes ECONNRESET. The library builds
// those requests itself, so such an error is the device giving up on the
// connection (rxe completes with IBV_WC_LOC_QP_OP_ERR what it cannot
// transmit, for one while the local link is down), not a bad argument of
// the application's.
int WcStatusToConnectionErrno(ibv_wc_status status);

}  // namespace demi::rdma

#endif  // DEMI_RDMA_WC_STATUS_H_
