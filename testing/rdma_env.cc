#include "testing/rdma_env.h"

#include <arpa/inet.h>

#include <cerrno>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "rdma/status_util.h"

namespace demi::testing {
namespace {

absl::StatusOr<sockaddr_in> AddrFromEnv(const char* name, uint16_t port) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') {
    return rdma::ErrnoError(
        ENODEV, absl::StrCat(name,
                             " is not set: run this test on an RDMA device "
                             "(testing/run_on_rdma.sh or bazel test)"));
  }
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, text, &addr.sin_addr) != 1) {
    return rdma::ErrnoError(EINVAL, absl::StrCat(name, " is not IPv4: ", text));
  }
  return addr;
}

int IntFromEnv(const char* name, int fallback) {
  const char* text = std::getenv(name);
  int value = 0;
  if (text == nullptr || !absl::SimpleAtoi(text, &value)) return fallback;
  return value;
}

}  // namespace

absl::StatusOr<sockaddr_in> TestAddr(uint16_t port) {
  return AddrFromEnv("DEMI_TEST_ADDR", port);
}

absl::StatusOr<sockaddr_in> ServerAddr(uint16_t port) {
  return AddrFromEnv("DEMI_TEST_SERVER_ADDR", port);
}

int TestHost() { return IntFromEnv("DEMI_TEST_HOST", 0); }

int TestHosts() { return IntFromEnv("DEMI_TEST_HOSTS", 1); }

absl::Duration Scaled(absl::Duration d) {
  return d * IntFromEnv("DEMI_TEST_TIMEOUT_SCALE", 1);
}

}  // namespace demi::testing
