// What a test on an RDMA device learns from its environment, as set by
// testing/run_on_rdma.sh: the address of this host's RDMA netdev, the
// server's address, and which host this is.
#ifndef DEMI_TESTING_RDMA_ENV_H_
#define DEMI_TESTING_RDMA_ENV_H_

#include <netinet/in.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace demi::testing {

// This host's RDMA address (DEMI_TEST_ADDR) with `port`. Fails, never skips,
// when the variable is missing: a test on a device must not pass without one.
absl::StatusOr<sockaddr_in> TestAddr(uint16_t port = 0);

// The server's (host 0's) address (DEMI_TEST_SERVER_ADDR) with `port`.
absl::StatusOr<sockaddr_in> ServerAddr(uint16_t port);

// This host's index (DEMI_TEST_HOST; 0 when unset) and the number of hosts
// (DEMI_TEST_HOSTS; 1 when unset).
int TestHost();
int TestHosts();

// `d` scaled by DEMI_TEST_TIMEOUT_SCALE (default 1): deadlines only guard
// against hangs, and software-emulated devices are slow.
absl::Duration Scaled(absl::Duration d);

}  // namespace demi::testing

#endif  // DEMI_TESTING_RDMA_ENV_H_
