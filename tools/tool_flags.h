// The flags every --server / --client tool shares, and what they set up.
#ifndef DEMI_TOOLS_TOOL_FLAGS_H_
#define DEMI_TOOLS_TOOL_FLAGS_H_

#include <demi/libos.h>
#include <netinet/in.h>

#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/message_server.h"
#include "tools/thread_group.h"

ABSL_DECLARE_FLAG(bool, server);
ABSL_DECLARE_FLAG(std::string, client);
ABSL_DECLARE_FLAG(std::string, bind);
ABSL_DECLARE_FLAG(int, connections);
ABSL_DECLARE_FLAG(bool, json);
ABSL_DECLARE_FLAG(double, timeout);
ABSL_DECLARE_FLAG(int, exit_after);
ABSL_DECLARE_FLAG(bool, udp);
ABSL_DECLARE_FLAG(bool, sleep);

namespace demi::tools {

// --timeout as a duration.
absl::Duration FlagTimeout();

// A listener on --bind and `port`, announced on stderr as "name: what on
// ADDR"; and the serving options from --exit_after.
absl::StatusOr<int> ListenFromFlags(int port, const char* name,
                                    const char* what);
// The same for thread `index` of `group`, called on each of its threads:
// with more than one, a listener shared with SO_REUSEPORT (not with --udp:
// INVALID_ARGUMENT), announced by thread 0 once all of them listen, so
// that a client that saw the announcement reaches every thread.
absl::StatusOr<int> ListenFromFlags(int port, const char* name,
                                    const char* what, ThreadGroup& group,
                                    int index);
ServeOptions ServeOptionsFromFlags();

// The server the client connects to: --client and `port`.
absl::StatusOr<sockaddr_in> ServerFromFlags(int port);

// A connection to `server`, or with --udp a datagram socket aimed at it
// (from --bind, or this host's address on the way to the server).
absl::StatusOr<int> ConnectFromFlags(const sockaddr_in& server);
// Closes what ConnectFromFlags made.
void CloseFromFlags(int qd);
// Serves the queue of ListenFromFlags: connections, or with --udp
// datagrams (`on_end` is then never called).
absl::Status ServeFromFlags(
    int listener,
    absl::FunctionRef<bool(int qd, demi_sgarray_t& sga)> on_message,
    absl::FunctionRef<void(int qd, int err)> on_end);
// The same with `options` (ServeOptionsFromFlags() and more).
absl::Status ServeFromFlags(
    int listener, const ServeOptions& options,
    absl::FunctionRef<bool(int qd, demi_sgarray_t& sga)> on_message,
    absl::FunctionRef<void(int qd, int err)> on_end);
// Sends `sga` back where it came from: on its connection, or with --udp to
// its sender.
int ReplyFromFlags(int qd, demi_sgarray_t& sga);
// INVALID_ARGUMENT if a size cannot be measured (--udp: 2 bytes up to a
// UDP datagram's 65,507).
absl::Status CheckSizesForFlags(const std::vector<size_t>& sizes);

// main() after the flags are parsed: exactly one of --server and --client
// must be given. Checks the flags of this file and then `check_flags` (the
// tool's own) before demi_init, so that a bad value fails at once, with a
// device or without. Runs demi_init (spinning forever unless --sleep or
// DEMI_SPIN_US), then that side; prints an error as "name: message".
// Returns the exit status.
int RunServerOrClient(const char* name,
                      absl::FunctionRef<absl::Status()> check_flags,
                      absl::FunctionRef<absl::Status()> run_server,
                      absl::FunctionRef<absl::Status()> run_client);

}  // namespace demi::tools

#endif  // DEMI_TOOLS_TOOL_FLAGS_H_
