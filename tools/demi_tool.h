// Set-up and bounded waits over the Demikernel API for the command-line
// tools, with errors that say what to check.
#ifndef DEMI_TOOLS_DEMI_TOOL_H_
#define DEMI_TOOLS_DEMI_TOOL_H_

#include <demi/libos.h>
#include <netinet/in.h>
#include <time.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace demi::tools {

// "192.0.2.1" and a port; INVALID_ARGUMENT if not an IPv4 address.
absl::StatusOr<sockaddr_in> ParseAddr(const std::string& host, int port);
std::string AddrString(const sockaddr_in& addr);

// demi_init, with a hint when no RDMA device is there.
absl::Status Init();

// A listening queue on `addr` (0.0.0.0: every RDMA device).
absl::StatusOr<int> Listen(const sockaddr_in& addr, int backlog);

// A connected queue, or an error naming the server and the likely cause
// (refused: nothing listens; unreachable or timed out: wrong address).
absl::StatusOr<int> Connect(const sockaddr_in& addr, absl::Duration timeout);

// Waits for `qt` at most `timeout`; a failed operation is an error too.
absl::StatusOr<demi_qresult_t> Wait(demi_qtoken_t qt, absl::Duration timeout,
                                    const char* what);

// The next result of any operation, waiting at most `timeout` (converted
// once by the caller, not per call); false if none came in time.
absl::StatusOr<bool> WaitNext(demi_qresult_t* result, timespec timeout);
absl::StatusOr<bool> WaitNext(demi_qresult_t* result, absl::Duration timeout);
// How long the servers wait at a time before they look at their exit
// conditions again.
inline constexpr timespec kTick = {0, 200 * 1000 * 1000};

// The fewest and the most seconds --timeout and the like take: below a
// microsecond a duration rounds to no time at all (a wait that expires at
// once and blames the peer); above 11 days the value is a typo, and an
// infinite one a wait that never ends.
inline constexpr double kMinSeconds = 1e-6;
inline constexpr double kMaxSeconds = 1e6;
// INVALID_ARGUMENT, naming `flag`, unless `seconds` is from kMinSeconds to
// kMaxSeconds (NaN and infinities are not).
absl::Status CheckSeconds(const char* flag, double seconds);

// "64", "4K", "1M" (binary units) -> bytes; INVALID_ARGUMENT otherwise.
absl::StatusOr<size_t> ParseSize(const std::string& text);
// Each of a --size list.
absl::StatusOr<std::vector<size_t>> ParseSizes(
    const std::vector<std::string>& texts);

// A message of `size` bytes in library memory, filled with a pattern.
absl::StatusOr<demi_sgarray_t> AllocMessage(size_t size);
size_t SgaLength(const demi_sgarray_t& sga);

// Microseconds on the monotonic clock.
double NowMicros();

}  // namespace demi::tools

#endif  // DEMI_TOOLS_DEMI_TOOL_H_
