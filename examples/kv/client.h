// A key-value client over one Demikernel connection. The blocking calls
// (Get, Put, Delete) wait for their own tokens; a program that drives
// many requests at once uses Start and FinishReply instead.
#ifndef KV_CLIENT_H_
#define KV_CLIENT_H_

#include <demi/libos.h>
#include <netinet/in.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "protocol.h"

namespace kv {

class Client {
 public:
  // Connects to the server; demi_init must have run.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(
      const sockaddr_in& server, absl::Duration timeout = absl::Seconds(10));
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // NOT_FOUND when the key has no value.
  absl::StatusOr<std::string> Get(absl::string_view key);
  // RESOURCE_EXHAUSTED when the server's table has no room for it.
  absl::Status Put(absl::string_view key, absl::string_view value);
  // NOT_FOUND when there was nothing to delete.
  absl::Status Delete(absl::string_view key);

  // Pushes a request and starts the pop of its reply; returns the request
  // id. The reply completes as a DEMI_OPC_POP on qd(); its push as a
  // DEMI_OPC_PUSH, to be consumed by the caller's waits.
  absl::StatusOr<uint64_t> Start(Op op, absl::string_view key,
                                 absl::string_view value);
  // Checks a popped reply and releases its sga.
  absl::StatusOr<Response> ParseReply(const demi_sgarray_t& sga,
                                      std::string* value);

  int qd() const { return qd_; }
  // The tokens of the last Start: a program waiting on many connections
  // tells a result of this request from a stale one by them.
  demi_qtoken_t push_qt() const { return push_qt_; }
  demi_qtoken_t pop_qt() const { return pop_qt_; }
  void set_timeout(absl::Duration timeout) { timeout_ = timeout; }

 private:
  Client(int qd, absl::Duration timeout) : qd_(qd), timeout_(timeout) {}
  // Start, then wait for this request's push and reply.
  absl::StatusOr<Response> Call(Op op, absl::string_view key,
                                absl::string_view value, std::string* out);

  int qd_;
  absl::Duration timeout_;
  uint64_t next_id_ = 1;
  demi_qtoken_t push_qt_ = 0;
  demi_qtoken_t pop_qt_ = 0;
};

}  // namespace kv

#endif  // KV_CLIENT_H_
