// Helpers for tests of the Demikernel C API on an RDMA device.
#ifndef DEMI_TESTING_DEMI_HELPERS_H_
#define DEMI_TESTING_DEMI_HELPERS_H_

#include <demi/libos.h>
#include <netinet/in.h>
#include <time.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace demi::testing {

// Runs demi_init once, before the first test of the binary (register it
// with ::testing::AddGlobalTestEnvironment). `pool_limit_mb` > 0 sets
// DEMI_POOL_LIMIT_MB first, so that a test can run the pool dry.
class DemiInitEnvironment : public ::testing::Environment {
 public:
  explicit DemiInitEnvironment(int pool_limit_mb = 0)
      : pool_limit_mb_(pool_limit_mb) {}
  void SetUp() override;

 private:
  int pool_limit_mb_;
};

// An IPv4 address as the API takes it.
const sockaddr* Sa(const sockaddr_in& addr);

// A timeout of `ms` milliseconds, for the wait calls.
timespec Ms(int ms);

// A port no other test of this process has used (a per-process base, so
// tests running side by side on one host do not collide).
uint16_t NextPort();

// This host's test address (DEMI_TEST_ADDR) with `port`; aborts the test
// program if it is missing.
sockaddr_in AddrOrDie(uint16_t port);

// A connection made through the API in one process: `listener` accepted
// `server`, the peer of `client`.
struct DemiPair {
  int listener = -1;
  int client = -1;
  int server = -1;
};

// Listens on a fresh port of the test address and connects to it. Returns
// false (with a gtest failure) if any step fails.
bool MakePair(DemiPair* pair);
// Connects `client` to `addr`, where `listener` listens, and accepts it:
// returns the accepted queue, or -1 with a gtest failure.
int ConnectAndAccept(int client, int listener, const sockaddr_in& addr);
// Closes all three queues of `pair`, expecting each close to succeed.
void ClosePair(const DemiPair& pair);

// A connection a test's calls never name: after them it must still carry
// a message (the calls changed no other queue).
class WitnessPair {
 public:
  WitnessPair() { EXPECT_TRUE(MakePair(&pair_)); }
  ~WitnessPair() { ClosePair(pair_); }
  WitnessPair(const WitnessPair&) = delete;
  WitnessPair& operator=(const WitnessPair&) = delete;
  // A message each way.
  void ExpectUntouched();

 private:
  DemiPair pair_;
};

// Waits for `qt` with a deadline that only guards against hangs; a gtest
// failure and a zeroed result if it expires.
demi_qresult_t WaitOrFail(demi_qtoken_t qt,
                          absl::Duration timeout = absl::Seconds(60));

// On a second host: a connection to host 0's `port`, retried while nobody
// listens there yet (the server starts in another VM), for up to two
// scaled minutes. Returns the qd, or -1 after a gtest failure.
int ConnectToServerOrFail(uint16_t port);

// Pushes `bytes` as one message from a fresh demi_sgaalloc buffer, which is
// freed right after the push (free-protection keeps it alive); returns the
// push's token.
demi_qtoken_t PushString(int qd, const std::string& bytes);

// Pops one message and returns its bytes (empty at EOF); frees the sga.
std::string PopString(int qd);

// The bytes of a popped sga.
std::string SgaBytes(const demi_sgarray_t& sga);

// Whether `actual` equals `expected`; on failure says where they first
// differ instead of printing megabytes.
::testing::AssertionResult SameBytes(const std::string& actual,
                                     const std::string& expected);

// A deterministic byte pattern of `size` bytes seeded with `seed`.
std::string Pattern(size_t size, uint32_t seed);

}  // namespace demi::testing

#endif  // DEMI_TESTING_DEMI_HELPERS_H_
