#include "tools/tool_flags.h"

#include <arpa/inet.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "rdma/status_util.h"
#include "tools/datagram_tool.h"
#include "tools/demi_tool.h"

ABSL_FLAG(bool, server, false, "run the server side");
ABSL_FLAG(std::string, client, "", "run the client side against this server");
ABSL_FLAG(std::string, bind, "0.0.0.0", "server: address to listen on");
ABSL_FLAG(int, connections, 1, "client: connections to the server");
ABSL_FLAG(bool, json, false,
          "print JSON instead of text: the client its results and path, the "
          "server its path per connection (docs/probe-json.md)");
ABSL_FLAG(double, timeout, 10,
          "seconds to wait for any progress (1e-6 to 1e6)");
ABSL_FLAG(int, exit_after, 0,
          "server: exit after this many connections ended (0: never; not "
          "negative)");
ABSL_FLAG(bool, udp, false,
          "datagrams (SOCK_DGRAM over UD queue pairs) instead of "
          "connections; the server needs --bind ADDR");
ABSL_FLAG(bool, sleep, false,
          "wait as the library does by default (spin for DEMI_SPIN_US, then "
          "sleep) instead of spinning forever, as a measurement should");

namespace demi::tools {

absl::Duration FlagTimeout() {
  return absl::Seconds(absl::GetFlag(FLAGS_timeout));
}

absl::StatusOr<int> ListenFromFlags(int port, const char* name,
                                    const char* what) {
  DEMI_ASSIGN_OR_RETURN(sockaddr_in addr,
                        ParseAddr(absl::GetFlag(FLAGS_bind), port));
  int listener = -1;
  if (absl::GetFlag(FLAGS_udp)) {
    DEMI_ASSIGN_OR_RETURN(listener, BindDatagram(addr));
  } else {
    DEMI_ASSIGN_OR_RETURN(listener, Listen(addr, 128));
  }
  std::fprintf(stderr, "%s: %s on %s\n", name, what, AddrString(addr).c_str());
  return listener;
}

absl::StatusOr<int> ListenFromFlags(int port, const char* name,
                                    const char* what, ThreadGroup& group,
                                    int index) {
  if (group.size() == 1) return ListenFromFlags(port, name, what);
  if (absl::GetFlag(FLAGS_udp)) {
    return absl::InvalidArgumentError(
        "--udp: datagram sockets cannot share a port between threads");
  }
  DEMI_ASSIGN_OR_RETURN(sockaddr_in addr,
                        ParseAddr(absl::GetFlag(FLAGS_bind), port));
  DEMI_ASSIGN_OR_RETURN(int listener, ListenShared(addr, 128));
  if (!group.Sync()) {
    demi_close(listener);
    return ThreadGroup::Cancelled();
  }
  if (index == 0) {
    std::fprintf(stderr, "%s: %s on %s (%d threads)\n", name, what,
                 AddrString(addr).c_str(), group.size());
  }
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

absl::StatusOr<int> ConnectFromFlags(const sockaddr_in& server) {
  if (!absl::GetFlag(FLAGS_udp)) return Connect(server, FlagTimeout());
  DEMI_ASSIGN_OR_RETURN(sockaddr_in local,
                        ParseAddr(absl::GetFlag(FLAGS_bind), 1));
  local.sin_port = 0;
  if (local.sin_addr.s_addr == htonl(INADDR_ANY)) {
    DEMI_ASSIGN_OR_RETURN(local, LocalAddrFor(server));
  }
  return ConnectDatagram(local, server, FlagTimeout());
}

void CloseFromFlags(int qd) {
  if (absl::GetFlag(FLAGS_udp)) {
    CloseDatagram(qd);
  } else {
    demi_close(qd);
  }
}

absl::Status ServeFromFlags(
    int listener,
    absl::FunctionRef<bool(int qd, demi_sgarray_t& sga)> on_message,
    absl::FunctionRef<void(int qd, int err)> on_end) {
  return ServeFromFlags(listener, ServeOptionsFromFlags(), on_message, on_end);
}

absl::Status ServeFromFlags(
    int listener, const ServeOptions& options,
    absl::FunctionRef<bool(int qd, demi_sgarray_t& sga)> on_message,
    absl::FunctionRef<void(int qd, int err)> on_end) {
  if (absl::GetFlag(FLAGS_udp)) {
    return ServeDatagrams(listener, options, on_message);
  }
  return ServeMessages(listener, options, on_message, on_end);
}

int ReplyFromFlags(int qd, demi_sgarray_t& sga) {
  demi_qtoken_t qt = 0;
  if (!absl::GetFlag(FLAGS_udp)) return demi_push(&qt, qd, &sga);
  sockaddr_in to = sga.sga_addr;
  return demi_pushto(&qt, qd, &sga, reinterpret_cast<const sockaddr*>(&to),
                     sizeof(to));
}

absl::Status CheckSizesForFlags(const std::vector<size_t>& sizes) {
  if (!absl::GetFlag(FLAGS_udp)) return absl::OkStatus();
  for (size_t size : sizes) {
    if (size < kMinDatagramSize || size > 65507) {
      return absl::InvalidArgumentError(
          absl::StrCat("--udp: sizes must be 2 to 65507 bytes, not ", size));
    }
  }
  return absl::OkStatus();
}

int RunServerOrClient(const char* name,
                      absl::FunctionRef<absl::Status()> check_flags,
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
  // A wait that sleeps adds its wake-up to the latency it measures. An
  // explicit DEMI_SPIN_US wins.
  if (!absl::GetFlag(FLAGS_sleep) && std::getenv("DEMI_SPIN_US") == nullptr) {
    setenv("DEMI_SPIN_US", "-1", 1);
  }
  absl::Status status = CheckSeconds("--timeout", absl::GetFlag(FLAGS_timeout));
  // A negative count would end the server before its first connection.
  if (status.ok() && absl::GetFlag(FLAGS_exit_after) < 0) {
    status = absl::InvalidArgumentError("--exit_after must be at least 0");
  }
  if (status.ok()) status = check_flags();
  if (status.ok()) status = Init();
  if (status.ok()) status = server ? run_server() : run_client();
  if (!status.ok()) {
    std::fprintf(stderr, "%s: %s\n", name,
                 std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace demi::tools
