// The RDMA devices and their protection domains: opened once per process
// and shared by every thread's libOS, so that memory registered by one
// thread's pool is valid on every thread's QPs.
#ifndef DEMI_DEMI_SHARED_DEVICES_H_
#define DEMI_DEMI_SHARED_DEVICES_H_

#include <infiniband/verbs.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace demi {

struct SharedDevice {
  ibv_context* context = nullptr;  // Borrowed from librdmacm.
  int index = 0;                   // In device order (SgaPool's MRs).
  ibv_pd* pd = nullptr;
  uint32_t max_send_sge = 1;
  // Soft-RoCE (rxe): a memory window is bound only on an empty send queue
  // (see ConnectionEnv::binds_after_drain).
  bool binds_after_drain = false;
  int max_cqe = 0;
  // The RDMA READs a QP may have outstanding, as asked of the peer and
  // answered for it: kReadDepth, or less if the device allows less.
  uint8_t read_depth = 1;
};

// Opens every device on the first call (ENODEV if there is none) and
// returns the same list from then on, to every thread. Never closed: a
// thread's libOS may be torn down at any time, down to the process's exit,
// and its QPs and MRs need their PD until then.
absl::StatusOr<const std::vector<SharedDevice>*> SharedDevices();

}  // namespace demi

#endif  // DEMI_DEMI_SHARED_DEVICES_H_
