// Turns rdma-core's four return conventions into absl::Status. Each helper
// reads errno first thing, before any other call can change it.
#ifndef DEMI_RDMA_VERBS_CALL_H_
#define DEMI_RDMA_VERBS_CALL_H_

#include <cerrno>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rdma/status_util.h"

namespace demi::rdma {

// Constructors (ibv_alloc_pd, ibv_reg_mr, ...): NULL and errno on failure.
template <typename T>
absl::StatusOr<T*> CheckPtr(T* ptr, absl::string_view what) {
  if (ptr != nullptr) return ptr;
  int err = errno;
  return ErrnoError(err != 0 ? err : EIO, what);
}

// Most verbs (ibv_post_send, ibv_dealloc_pd, ...): 0 or a positive errno.
inline absl::Status CheckRc(int rc, absl::string_view what) {
  if (rc == 0) return absl::OkStatus();
  return ErrnoError(rc > 0 ? rc : EIO, what);
}

// librdmacm (rdma_connect, rdma_bind_addr, ...): 0, or -1 and errno.
inline absl::Status CheckCm(int rc, absl::string_view what) {
  if (rc == 0) return absl::OkStatus();
  int err = errno;
  return ErrnoError(err != 0 ? err : EIO, what);
}

// ibv_poll_cq: a count, or a negative value on failure (never "no work").
inline absl::StatusOr<int> CheckPoll(int n, absl::string_view what) {
  if (n >= 0) return n;
  return ErrnoError(EIO, what);
}

}  // namespace demi::rdma

#endif  // DEMI_RDMA_VERBS_CALL_H_
