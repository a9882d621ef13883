#include "tools/tool_flags.h"

#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "rdma/status_util.h"
#include "tools/demi_tool.h"

ABSL_FLAG(bool, server, false, "run the server side");
ABSL_FLAG(std::string, client, "", "run the client side against this server");
ABSL_FLAG(std::string, bind, "0.0.0.0", "server: address to listen on");
ABSL_FLAG(int, connections, 1, "client: connections to the server");
ABSL_FLAG(bool, json, false, "client: print JSON instead of the table");
ABSL_FLAG(double, timeout, 10, "seconds to wait for any progress");
ABSL_FLAG(int, exit_after, 0,
          "server: exit after this many connections ended (0: never)");

namespace demi::tools {

void ParseToolCommandLine(int argc, char** argv, const char* usage) {
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "tools/");
  };
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(usage);
  absl::ParseCommandLine(argc, argv);
}

absl::Duration FlagTimeout() {
  return absl::Seconds(absl::GetFlag(FLAGS_timeout));
}

absl::StatusOr<int> ListenFromFlags(int port, const char* name,
                                    const char* what) {
  DEMI_ASSIGN_OR_RETURN(sockaddr_in addr,
                        ParseAddr(absl::GetFlag(FLAGS_bind), port));
  DEMI_ASSIGN_OR_RETURN(int listener, Listen(addr, 128));
  std::fprintf(stderr, "%s: %s on %s\n", name, what, AddrString(addr).c_str());
  return listener;
}

ServeOptions ServeOptionsFromFlags() {
  ServeOptions options;
  options.exit_after = absl::GetFlag(FLAGS_exit_after);
  return options;
}

absl::StatusOr<sockaddr_in> ServerFromFlags(int port) {
  return ParseAddr(absl::GetFlag(FLAGS_client), port);
}

int RunServerOrClient(const char* name,
                      absl::FunctionRef<absl::Status()> run_server,
                      absl::FunctionRef<absl::Status()> run_client) {
  bool server = absl::GetFlag(FLAGS_server);
  if (server == !absl::GetFlag(FLAGS_client).empty()) {
    std::fprintf(stderr,
                 "%s: give exactly one of --server and --client ADDR "
                 "(--help for more)\n",
                 name);
    return 2;
  }
  absl::Status status = Init();
  if (status.ok()) status = server ? run_server() : run_client();
  if (!status.ok()) {
    std::fprintf(stderr, "%s: %s\n", name,
                 std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace demi::tools
