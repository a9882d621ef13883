#include "rdma/status_util.h"

#include <cerrno>

#include "gtest/gtest.h"

namespace demi::rdma {
namespace {

TEST(StatusUtilTest, ErrnoErrorKeepsTheExactErrno) {
  for (int err : {EINVAL, EBADF, EAGAIN, ENOTCONN, ECONNRESET, ETIMEDOUT,
                  EADDRINUSE, EOPNOTSUPP, EINPROGRESS, EISCONN, ENOTSUP}) {
    absl::Status status = ErrnoError(err, "call");
    EXPECT_FALSE(status.ok());
    EXPECT_EQ(ErrnoOf(status), err) << err;
  }
}

TEST(StatusUtilTest, NonPositiveErrnoBecomesEio) {
  EXPECT_EQ(ErrnoOf(ErrnoError(0, "x")), EIO);
  EXPECT_EQ(ErrnoOf(ErrnoError(-3, "x")), EIO);
}

TEST(StatusUtilTest, OkIsZero) { EXPECT_EQ(ErrnoOf(absl::OkStatus()), 0); }

TEST(StatusUtilTest, CanonicalCodesWithoutPayloadMapToErrno) {
  EXPECT_EQ(ErrnoOf(absl::InvalidArgumentError("x")), EINVAL);
  EXPECT_EQ(ErrnoOf(absl::ResourceExhaustedError("x")), ENOMEM);
  EXPECT_EQ(ErrnoOf(absl::DeadlineExceededError("x")), ETIMEDOUT);
  EXPECT_EQ(ErrnoOf(absl::NotFoundError("x")), ENOENT);
  EXPECT_EQ(ErrnoOf(absl::UnimplementedError("x")), ENOSYS);
  EXPECT_EQ(ErrnoOf(absl::InternalError("x")), EIO);
}

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return ErrnoError(EINVAL, "odd");
  return x / 2;
}

absl::Status Quarter(int x, int* out) {
  DEMI_ASSIGN_OR_RETURN(int half, Half(x));
  DEMI_ASSIGN_OR_RETURN(*out, Half(half));
  return absl::OkStatus();
}

TEST(StatusUtilTest, MacrosPropagateErrors) {
  int out = 0;
  EXPECT_TRUE(Quarter(8, &out).ok());
  EXPECT_EQ(out, 2);
  EXPECT_EQ(ErrnoOf(Quarter(6, &out)), EINVAL);
  auto fails = []() -> absl::Status {
    DEMI_RETURN_IF_ERROR(ErrnoError(EBADF, "x"));
    return absl::OkStatus();
  };
  EXPECT_EQ(ErrnoOf(fails()), EBADF);
}

}  // namespace
}  // namespace demi::rdma
