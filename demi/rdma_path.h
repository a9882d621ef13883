// What DEMI_SO_RDMA_PATH reports: the device, port, MTUs and source GID of
// the queue pair behind a queue, read from the verbs objects themselves
// (not from configuration), so that a measurement names the path it took.
// Setup-path code: a few system calls per query, never per message.
#ifndef DEMI_DEMI_RDMA_PATH_H_
#define DEMI_DEMI_RDMA_PATH_H_

#include <demi/types.h>
#include <rdma/rdma_cma.h>

#include "absl/status/statusor.h"

namespace demi {

// The path of the RC queue pair on `id` (borrowed; connected, its QP made
// by rdma_cm): the port's attributes, and the path MTU and source GID
// index the QP was brought to RTR with (ibv_query_qp). The errno of the
// failed verb otherwise.
absl::StatusOr<demi_rdma_path_t> QueryConnectionPath(rdma_cm_id* id);

// The path of the UD queue pair on `id` (borrowed; bound to a device): the
// port's attributes and the GID of the bound address. A UD QP has no
// address vector of its own, so gid_index is -1 and path_mtu the active
// MTU.
absl::StatusOr<demi_rdma_path_t> QueryDatagramPath(rdma_cm_id* id);

}  // namespace demi

#endif  // DEMI_DEMI_RDMA_PATH_H_
