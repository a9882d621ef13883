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
#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "protocol.h"
#include "rdma/status_util.h"
#include "tools/demi_tool.h"

ABSL_FLAG(std::string, bind, "0.0.0.0", "address to listen on");
ABSL_FLAG(int, port, 7000, "port to listen on");

namespace kv {
namespace {

volatile std::sig_atomic_t stop_requested = 0;

absl::Status Fail(int err, absl::string_view what) {
  return absl::UnknownError(absl::StrCat(what, ": ", std::strerror(err)));
}

class Server {
 public:
  explicit Server(int listener) : listener_(listener) {}

  absl::Status Run() {
    demi_qtoken_t qt = 0;
    if (int err = demi_accept(&qt, listener_); err != 0) {
      return Fail(err, "demi_accept");
    }
    while (!stop_requested) {
      demi_qresult_t qr;
      DEMI_ASSIGN_OR_RETURN(
          bool got, demi::tools::WaitNext(&qr, absl::Milliseconds(200)));
      if (!got) continue;
      switch (qr.qr_opcode) {
        case DEMI_OPC_ACCEPT:
          Opened(qr.qr_value.ares.qd);
          if (int err = demi_accept(&qt, listener_); err != 0) {
            return Fail(err, "demi_accept");
          }
          break;
        case DEMI_OPC_POP:
          OnMessage(qr.qr_qd, qr.qr_value.sga);
          break;
        case DEMI_OPC_FAILED:
          if (qr.qr_qd == listener_) return Fail(qr.qr_ret, "accept");
          // A client went away, perhaps mid-request: only its queue ends.
          End(qr.qr_qd);
          break;
        default:
          break;  // A reply went out.
      }
    }
    std::fprintf(stderr, "kv_server: %zu keys, %llu requests, stopping\n",
                 table_.size(), static_cast<unsigned long long>(requests_));
    return absl::OkStatus();
  }

 private:
  void Opened(int qd) {
    open_.insert(qd);
    Pop(qd);
  }

  void Pop(int qd) {
    demi_qtoken_t qt = 0;
    if (demi_pop(&qt, qd) != 0) End(qd);
  }

  void End(int qd) {
    if (open_.erase(qd) > 0) demi_close(qd);
  }

  void OnMessage(int qd, demi_sgarray_t& sga) {
    if (sga.sga_numsegs != 1 || sga.sga_segs[0].sgaseg_len == 0) {
      End(qd);  // EOF: the client closed.
      return;
    }
    absl::string_view message(
        static_cast<const char*>(sga.sga_segs[0].sgaseg_buf),
        sga.sga_segs[0].sgaseg_len);
    ++requests_;
    absl::StatusOr<Request> request = ParseRequest(message);
    if (!request.ok()) {
      Reply(qd, Code::kBadRequest, 0, {});
    } else {
      Execute(qd, *request);
    }
    demi_sgafree(&sga);
    if (open_.contains(qd)) Pop(qd);
  }

  void Execute(int qd, const Request& request) {
    switch (request.op) {
      case Op::kGet: {
        auto it = table_.find(request.key);
        if (it == table_.end()) {
          Reply(qd, Code::kNotFound, request.id, {});
        } else {
          Reply(qd, Code::kOk, request.id, it->second);
        }
        break;
      }
      case Op::kPut:
        table_[request.key] =
            std::string(request.value.data(), request.value.size());
        Reply(qd, Code::kOk, request.id, {});
        break;
      case Op::kDelete:
        Reply(qd, table_.erase(request.key) > 0 ? Code::kOk : Code::kNotFound,
              request.id, {});
        break;
    }
  }

  void Reply(int qd, Code code, uint64_t id, absl::string_view value) {
    demi_sgarray_t sga = demi_sgaalloc(ResponseSize(value));
    if (sga.sga_numsegs == 0) {
      // Out of library memory: the client cannot be answered; drop it
      // rather than leave it waiting.
      End(qd);
      return;
    }
    WriteResponse(code, id, value,
                  static_cast<char*>(sga.sga_segs[0].sgaseg_buf));
    demi_qtoken_t qt = 0;
    int err = demi_push(&qt, qd, &sga);
    demi_sgafree(&sga);
    if (err != 0) End(qd);
  }

  const int listener_;
  absl::flat_hash_set<int> open_;
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
  Server server(listener);
  absl::Status status = server.Run();
  demi_close(listener);
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
