// The flags every --server / --client tool shares, and what they set up.
#ifndef DEMI_TOOLS_TOOL_FLAGS_H_
#define DEMI_TOOLS_TOOL_FLAGS_H_

#include <netinet/in.h>

#include <string>

#include "absl/flags/declare.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/message_server.h"

ABSL_DECLARE_FLAG(bool, server);
ABSL_DECLARE_FLAG(std::string, client);
ABSL_DECLARE_FLAG(std::string, bind);
ABSL_DECLARE_FLAG(int, connections);
ABSL_DECLARE_FLAG(bool, json);
ABSL_DECLARE_FLAG(double, timeout);
ABSL_DECLARE_FLAG(int, exit_after);

namespace demi::tools {

// --timeout as a duration.
absl::Duration FlagTimeout();

// A listener on --bind and `port`, announced on stderr as "name: what on
// ADDR"; and the serving options from --exit_after.
absl::StatusOr<int> ListenFromFlags(int port, const char* name,
                                    const char* what);
ServeOptions ServeOptionsFromFlags();

// The server the client connects to: --client and `port`.
absl::StatusOr<sockaddr_in> ServerFromFlags(int port);

// Parses the command line; --help lists these shared flags too.
void ParseToolCommandLine(int argc, char** argv, const char* usage);

// main() after the flags are parsed: exactly one of --server and --client
// must be given. Runs demi_init, then that side; prints an error as
// "name: message". Returns the exit status.
int RunServerOrClient(const char* name,
                      absl::FunctionRef<absl::Status()> run_server,
                      absl::FunctionRef<absl::Status()> run_client);

}  // namespace demi::tools

#endif  // DEMI_TOOLS_TOOL_FLAGS_H_
