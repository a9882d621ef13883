// The server side of the tools and examples: accepts connections on a
// listener and hands each message to a handler, one at a time per
// connection, until told to stop.
#ifndef DEMI_TOOLS_MESSAGE_SERVER_H_
#define DEMI_TOOLS_MESSAGE_SERVER_H_

#include <demi/libos.h>

#include <csignal>
#include <functional>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace demi::tools {

struct ServeOptions {
  // Return after this many connections ended (0: never).
  int exit_after = 0;
  // Return once this is set (by a signal handler, say); may be null.
  const volatile std::sig_atomic_t* stop = nullptr;
  // Asked before each pop of a connection; false holds the pop back until
  // one of the connection's pushes completes. A client that never takes
  // its replies then stops being read, so what it can make the server hold
  // is bounded. Empty: always read.
  std::function<bool(int qd)> can_read;
  // Hears of every push that completed on a connection (DEMI_OPC_PUSH).
  std::function<void(int qd)> on_push_done;
};

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
