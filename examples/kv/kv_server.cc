// The key-value server: an in-memory table served over the Demikernel API
// to any number of clients, one event loop, one request per message.
//
//   kv_server [--bind ADDR] [--port P]
#include <demi/libos.h>

#include <csignal>
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

namespace kv {
namespace {

volatile std::sig_atomic_t stop_requested = 0;

// The table and the requests on it; replies go out on the request's queue.
class Store {
 public:
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
        table_[request.key] =
            std::string(request.value.data(), request.value.size());
        return Reply(qd, Code::kOk, request.id, {});
      case Op::kDelete:
        return Reply(
            qd, table_.erase(request.key) > 0 ? Code::kOk : Code::kNotFound,
            request.id, {});
    }
    return false;
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
    return err == 0;
  }

  absl::flat_hash_map<std::string, std::string> table_;
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
  Store store;
  demi::tools::ServeOptions options;
  options.stop = &stop_requested;
  absl::Status status = demi::tools::ServeMessages(
      listener, options,
      [&](int qd, demi_sgarray_t& sga) { return store.OnMessage(qd, sga); },
      [](int, int) {});
  demi_close(listener);
  std::fprintf(stderr, "kv_server: %zu keys, %llu requests, stopping\n",
               store.size(), static_cast<unsigned long long>(store.requests()));
  return status;
}

}  // namespace
}  // namespace kv

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "in-memory key-value server over RDMA.\n"
      "  kv_server [--bind ADDR] [--port P]");
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
