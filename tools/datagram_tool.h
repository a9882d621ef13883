// The tools over datagrams (--udp): a "connection" is a datagram socket
// whose default destination is the server. One-byte datagrams are the
// tools' own control messages (hello: is the server there; bye: this
// client is done), so measured datagrams have at least two bytes.
#ifndef DEMI_TOOLS_DATAGRAM_TOOL_H_
#define DEMI_TOOLS_DATAGRAM_TOOL_H_

#include <demi/libos.h>
#include <netinet/in.h>

#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/message_server.h"

namespace demi::tools {

inline constexpr size_t kMinDatagramSize = 2;

// A datagram socket bound to `local` (a device's address; port 0: any).
absl::StatusOr<int> BindDatagram(const sockaddr_in& local);

// This host's address on the way to `server` (what the kernel would send
// from), for a client that was given no --bind.
absl::StatusOr<sockaddr_in> LocalAddrFor(const sockaddr_in& server);

// A datagram socket on `local` (port 0) connected to `server`, once the
// server answered a hello (retried until `timeout`: it may not be up yet).
absl::StatusOr<int> ConnectDatagram(const sockaddr_in& local,
                                    const sockaddr_in& server,
                                    absl::Duration timeout);

// Tells the server this client is done, then closes.
void CloseDatagram(int qd);

// The server loop on the datagram socket `qd`: answers hellos, counts
// byes as ended clients (ServeOptions::exit_after), hands every other
// datagram to `on_message` (which frees it; it may answer to
// sga.sga_addr).
absl::Status ServeDatagrams(
    int qd, const ServeOptions& options,
    absl::FunctionRef<bool(int qd, demi_sgarray_t& sga)> on_message);

}  // namespace demi::tools

#endif  // DEMI_TOOLS_DATAGRAM_TOOL_H_
