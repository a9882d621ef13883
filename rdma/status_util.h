// Errors inside the library are absl::Status values that carry the exact
// errno they stand for, so the C API can return it unchanged.
#ifndef DEMI_RDMA_STATUS_UTIL_H_
#define DEMI_RDMA_STATUS_UTIL_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace demi::rdma {

// Returns a non-OK status for the positive errno `err` (EIO when `err` is not
// positive), with `what` as its message and `err` kept as a payload.
absl::Status ErrnoError(int err, absl::string_view what);

// Returns the errno that `status` stands for: 0 for OK; the payload of an
// ErrnoError; otherwise a fixed mapping of the canonical code
// (kInvalidArgument: EINVAL, kResourceExhausted: ENOMEM, kDeadlineExceeded:
// ETIMEDOUT, kNotFound: ENOENT, kUnimplemented: ENOSYS, anything else: EIO).
int ErrnoOf(const absl::Status& status);

// The C API's form of a result: writes `result`'s value to `out` and returns
// 0, or returns its errno and leaves `out` alone.
template <typename T>
int ErrnoOrOutput(const absl::StatusOr<T>& result, T* out) {
  if (!result.ok()) return ErrnoOf(result.status());
  *out = *result;
  return 0;
}

}  // namespace demi::rdma

#define DEMI_STATUS_CONCAT_INNER_(a, b) a##b
#define DEMI_STATUS_CONCAT_(a, b) DEMI_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function with `expr`'s status if it is not OK.
#define DEMI_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::absl::Status demi_status_ = (expr);        \
    if (!demi_status_.ok()) return demi_status_; \
  } while (0)

// Evaluates `rexpr` (a StatusOr); on error returns its status, otherwise
// moves its value into `lhs` (which may be a declaration).
#define DEMI_ASSIGN_OR_RETURN(lhs, rexpr)                                    \
  DEMI_ASSIGN_OR_RETURN_IMPL_(DEMI_STATUS_CONCAT_(demi_statusor_, __LINE__), \
                              lhs, rexpr)

#define DEMI_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                \
  if (!statusor.ok()) return statusor.status();           \
  lhs = std::move(statusor).value()

#endif  // DEMI_RDMA_STATUS_UTIL_H_
