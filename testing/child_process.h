// Tests that run libOS processes side by side: verbs resources do not
// survive fork, so the test process forks clients and servers that each
// call demi_init, and judges their exit codes.
#ifndef DEMI_TESTING_CHILD_PROCESS_H_
#define DEMI_TESTING_CHILD_PROCESS_H_

#include <demi/types.h>
#include <sys/types.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "absl/time/time.h"

// Child-side checks: print and exit non-zero, since gtest lives in the
// parent.
#define CHILD_CHECK(cond)                                                   \
  do {                                                                      \
    if (!(cond)) {                                                          \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                  \
      std::_Exit(1);                                                        \
    }                                                                       \
  } while (0)

namespace demi::testing {

// Forks a child that runs `body` and exits with its result (through exit,
// so the libOS's closes finish first).
pid_t Spawn(const std::function<int()>& body);

// Waits up to `timeout` for `pid`; kills it if it is still running then.
// Returns its exit status, or -1 if it had to be killed or crashed.
int Reap(pid_t pid, absl::Duration timeout);

// demi_wait for `qt` within `timeout` (scaled); exits the child if the
// wait itself fails. The caller checks the opcode.
demi_qresult_t ChildWait(demi_qtoken_t qt, absl::Duration timeout);

// Pushes `bytes` as one message from a fresh demi_sgaalloc buffer (freed
// right after the push); returns its token.
demi_qtoken_t ChildPush(int qd, const std::string& bytes);

// Pops one message within `timeout` (scaled) and returns its bytes (empty
// at EOF); frees the sga.
std::string ChildPop(int qd, absl::Duration timeout = absl::Seconds(60));

// A queue listening on `port` of this host with `backlog`.
int ChildListen(uint16_t port, int backlog);

// A connected queue to `port` of this host, retrying while the server
// does not listen yet (up to a minute, scaled).
int ConnectWithRetry(uint16_t port);

}  // namespace demi::testing

#endif  // DEMI_TESTING_CHILD_PROCESS_H_
