#include "rdma/status_util.h"

#include <cerrno>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace demi::rdma {
namespace {

constexpr absl::string_view kErrnoPayloadUrl = "demi/errno";

}  // namespace

absl::Status ErrnoError(int err, absl::string_view what) {
  if (err <= 0) err = EIO;
  absl::Status status = absl::ErrnoToStatus(err, what);
  status.SetPayload(kErrnoPayloadUrl, absl::Cord(absl::StrCat(err)));
  return status;
}

int ErrnoOf(const absl::Status& status) {
  if (status.ok()) return 0;
  absl::optional<absl::Cord> payload = status.GetPayload(kErrnoPayloadUrl);
  int err = 0;
  if (payload.has_value() && absl::SimpleAtoi(std::string(*payload), &err) &&
      err > 0) {
    return err;
  }
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return EINVAL;
    case absl::StatusCode::kResourceExhausted:
      return ENOMEM;
    case absl::StatusCode::kDeadlineExceeded:
      return ETIMEDOUT;
    case absl::StatusCode::kNotFound:
      return ENOENT;
    case absl::StatusCode::kUnimplemented:
      return ENOSYS;
    default:
      return EIO;
  }
}

}  // namespace demi::rdma
