// The server side of the tools and examples: accepts connections on a
// listener and hands each message to a handler, one at a time per
// connection, until told to stop.
#ifndef DEMI_TOOLS_MESSAGE_SERVER_H_
#define DEMI_TOOLS_MESSAGE_SERVER_H_

#include <demi/libos.h>
#include <netinet/in.h>

#include <atomic>
#include <functional>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace demi::tools {

struct ServeOptions {
  // Return after this many connections ended (0: never).
  int exit_after = 0;
  // Where ended connections are counted for exit_after when several loops
  // share it (the threads serving one port); null: this loop alone.
  std::atomic<int>* ended = nullptr;
  // Return once this is set (by a signal handler or another thread: an
  // atomic, which both may store to); may be null.
  const std::atomic<bool>* stop = nullptr;
  // Asked before each pop of a connection; false holds the pop back until
  // one of the connection's pushes completes. A client that never takes
  // its replies then stops being read, so what it can make the server hold
  // is bounded. Empty: always read.
  std::function<bool(int qd)> can_read;
  // Hears of every push that completed on a connection (DEMI_OPC_PUSH).
  std::function<void(int qd)> on_push_done;
  // Hears of every connection accepted, before its first pop.
  std::function<void(int qd)> on_accept;
};

// A listening queue on `addr` with SO_REUSEPORT: every thread of this
// process that listens this way on the same address and port gets a share of
// its connections (the library hands them out round-robin). A socket without
// the option, or another process, on the port: EADDRINUSE.
absl::StatusOr<int> ListenShared(const sockaddr_in& addr, int backlog);

// Runs the accept loop on `listener`. `on_message` gets each message's
// sga, which it must free (a push of it may come first); it returns false
// to drop the connection. `on_end` hears of every connection that ends:
// err 0 when the client closed, else why it failed. Errors of the listener
// end the loop; a client's never does.
absl::Status ServeMessages(
    int listener, const ServeOptions& options,
    absl::FunctionRef<bool(int qd, demi_sgarray_t& sga)> on_message,
    absl::FunctionRef<void(int qd, int err)> on_end);

}  // namespace demi::tools

#endif  // DEMI_TOOLS_MESSAGE_SERVER_H_
