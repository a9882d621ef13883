// gtest helpers for absl::Status and absl::StatusOr.
#ifndef DEMI_TESTING_STATUS_MATCHERS_H_
#define DEMI_TESTING_STATUS_MATCHERS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

#define DEMI_TESTING_CONCAT_INNER_(a, b) a##b
#define DEMI_TESTING_CONCAT_(a, b) DEMI_TESTING_CONCAT_INNER_(a, b)

#define ASSERT_OK(expr)                                   \
  do {                                                    \
    const ::absl::Status demi_assert_ok_ = (expr);        \
    ASSERT_TRUE(demi_assert_ok_.ok()) << demi_assert_ok_; \
  } while (0)

#define EXPECT_OK(expr)                                   \
  do {                                                    \
    const ::absl::Status demi_expect_ok_ = (expr);        \
    EXPECT_TRUE(demi_expect_ok_.ok()) << demi_expect_ok_; \
  } while (0)

// Asserts that `rexpr` (a StatusOr) is OK and moves its value into `lhs`.
#define ASSERT_OK_AND_ASSIGN(lhs, rexpr)                                     \
  ASSERT_OK_AND_ASSIGN_IMPL_(DEMI_TESTING_CONCAT_(demi_statusor_, __LINE__), \
                             lhs, rexpr)

#define ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                               \
  ASSERT_TRUE(statusor.ok()) << statusor.status();       \
  lhs = std::move(statusor).value()

#endif  // DEMI_TESTING_STATUS_MATCHERS_H_
