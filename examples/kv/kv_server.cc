// The key-value server: an in-memory table served over the Demikernel API
// to any number of clients, one event loop, one request per message.
//
//   kv_server [--bind ADDR] [--port P] [--max_bytes N] [--max_keys N]
//             [--max_unfinished_replies N]
#include <demi/libos.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "protocol.h"
#include "rdma/status_util.h"
#include "tools/demi_tool.h"
#include "tools/message_server.h"

ABSL_FLAG(std::string, bind, "0.0.0.0", "address to listen on");
ABSL_FLAG(int, port, 7000, "port to listen on");
ABSL_FLAG(uint64_t, max_bytes, uint64_t{1} << 30,
          "most bytes of keys and values the table holds; a PUT beyond gets "
          "OUT_OF_SPACE");
ABSL_FLAG(uint64_t, max_keys, 1000000,
          "most keys the table holds; a PUT of a new key beyond gets "
          "OUT_OF_SPACE");
ABSL_FLAG(int, max_unfinished_replies, 16,
          "replies a connection may have unfinished (not yet taken by the "
          "client) before the server stops reading its requests");

namespace kv {
namespace {

volatile std::sig_atomic_t stop_requested = 0;

// The table and the requests on it; replies go out on the request's queue.
// Bounded: by the table's limits, and per connection by the replies it has
// not taken yet (the server stops reading a connection at the limit).
class Store {
 public:
  Store(uint64_t max_bytes, uint64_t max_keys, int max_unfinished)
      : max_bytes_(max_bytes),
        max_keys_(max_keys),
        max_unfinished_(max_unfinished) {}

  bool CanRead(int qd) const {
    auto it = unfinished_.find(qd);
    return it == unfinished_.end() || it->second < max_unfinished_;
  }
  void OnReplyDone(int qd) {
    auto it = unfinished_.find(qd);
    if (it != unfinished_.end() && --it->second == 0) unfinished_.erase(it);
  }
  void OnEnd(int qd) { unfinished_.erase(qd); }

  // Handles one request message; false if its connection must go.
  bool OnMessage(int qd, demi_sgarray_t& sga) {
    ++requests_;
    bool ok;
    if (sga.sga_numsegs != 1) {
      ok = Reply(qd, Code::kBadRequest, 0, {});
    } else {
      absl::StatusOr<Request> request = ParseRequest(absl::string_view(
          static_cast<const char*>(sga.sga_segs[0].sgaseg_buf),
          sga.sga_segs[0].sgaseg_len));
      ok = request.ok() ? Execute(qd, *request)
                        : Reply(qd, Code::kBadRequest, 0, {});
    }
    demi_sgafree(&sga);
    return ok;
  }

  size_t size() const { return table_.size(); }
  uint64_t bytes() const { return bytes_; }
  uint64_t requests() const { return requests_; }

 private:
  bool Execute(int qd, const Request& request) {
    switch (request.op) {
      case Op::kGet: {
        auto it = table_.find(request.key);
        if (it == table_.end())
          return Reply(qd, Code::kNotFound, request.id, {});
        return Reply(qd, Code::kOk, request.id, it->second);
      }
      case Op::kPut:
        return Reply(qd, Put(request.key, request.value), request.id, {});
      case Op::kDelete: {
        auto it = table_.find(request.key);
        if (it == table_.end()) {
          return Reply(qd, Code::kNotFound, request.id, {});
        }
        bytes_ -= it->first.size() + it->second.size();
        table_.erase(it);
        return Reply(qd, Code::kOk, request.id, {});
      }
    }
    return false;
  }

  Code Put(absl::string_view key, absl::string_view value) {
    auto it = table_.find(key);
    uint64_t old_bytes =
        it == table_.end() ? 0 : it->first.size() + it->second.size();
    uint64_t new_bytes = key.size() + value.size();
    bool new_key = it == table_.end();
    if (bytes_ - old_bytes + new_bytes > max_bytes_ ||
        (new_key && table_.size() >= max_keys_)) {
      return Code::kOutOfSpace;
    }
    bytes_ = bytes_ - old_bytes + new_bytes;
    if (new_key) {
      table_.emplace(std::string(key), std::string(value));
    } else {
      it->second.assign(value.data(), value.size());
    }
    return Code::kOk;
  }

  // False when the reply cannot go out (out of library memory, or the
  // connection failed): the client is dropped rather than left waiting.
  bool Reply(int qd, Code code, uint64_t id, absl::string_view value) {
    demi_sgarray_t sga = demi_sgaalloc(ResponseSize(value));
    if (sga.sga_numsegs == 0) return false;
    WriteResponse(code, id, value,
                  static_cast<char*>(sga.sga_segs[0].sgaseg_buf));
    demi_qtoken_t qt = 0;
    int err = demi_push(&qt, qd, &sga);
    demi_sgafree(&sga);
    if (err == 0) ++unfinished_[qd];
    return err == 0;
  }

  const uint64_t max_bytes_;
  const uint64_t max_keys_;
  const int max_unfinished_;
  absl::flat_hash_map<std::string, std::string> table_;
  uint64_t bytes_ = 0;                        // Keys and values in table_.
  absl::flat_hash_map<int, int> unfinished_;  // Replies pushed, not done.
  uint64_t requests_ = 0;
};

absl::Status Main() {
  DEMI_RETURN_IF_ERROR(demi::tools::Init());
  DEMI_ASSIGN_OR_RETURN(sockaddr_in addr,
                        demi::tools::ParseAddr(absl::GetFlag(FLAGS_bind),
                                               absl::GetFlag(FLAGS_port)));
  DEMI_ASSIGN_OR_RETURN(int listener, demi::tools::Listen(addr, 128));
  std::fprintf(stderr, "kv_server: listening on %s\n",
               demi::tools::AddrString(addr).c_str());
  Store store(absl::GetFlag(FLAGS_max_bytes), absl::GetFlag(FLAGS_max_keys),
              std::max(1, absl::GetFlag(FLAGS_max_unfinished_replies)));
  demi::tools::ServeOptions options;
  options.stop = &stop_requested;
  options.can_read = [&](int qd) { return store.CanRead(qd); };
  options.on_push_done = [&](int qd) { store.OnReplyDone(qd); };
  absl::Status status = demi::tools::ServeMessages(
      listener, options,
      [&](int qd, demi_sgarray_t& sga) { return store.OnMessage(qd, sga); },
      [&](int qd, int) { store.OnEnd(qd); });
  demi_close(listener);
  std::fprintf(stderr,
               "kv_server: %zu keys (%llu bytes), %llu requests, stopping\n",
               store.size(), static_cast<unsigned long long>(store.bytes()),
               static_cast<unsigned long long>(store.requests()));
  return status;
}

}  // namespace
}  // namespace kv

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "in-memory key-value server over RDMA.\n"
      "  kv_server [--bind ADDR] [--port P] [--max_bytes N] [--max_keys N]\n"
      "            [--max_unfinished_replies N]");
  absl::ParseCommandLine(argc, argv);
  std::signal(SIGTERM, [](int) { kv::stop_requested = 1; });
  std::signal(SIGINT, [](int) { kv::stop_requested = 1; });
  absl::Status status = kv::Main();
  if (!status.ok()) {
    std::fprintf(stderr, "kv_server: %s\n",
                 std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
