// Throughput tool: message rate and bandwidth of one-way pushes over the
// Demikernel API, with a window of pushes outstanding per connection.
//
//   throughput --server [--bind ADDR] [--port P]
//   throughput --client ADDR [--port P] [--size 64,64K,1M] [--window W]
//              [--connections N] [--seconds S] [--json]
#include <demi/libos.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "rdma/status_util.h"
#include "tools/demi_tool.h"
#include "tools/message_server.h"
#include "tools/tool_flags.h"

ABSL_FLAG(int, port, 12346, "server port");
ABSL_FLAG(std::vector<std::string>, size,
          std::vector<std::string>({"64", "4K", "64K", "1M", "8M"}),
          "client: message sizes, e.g. 64,64K,1M");
ABSL_FLAG(int, window, 32, "client: pushes outstanding per connection");
ABSL_FLAG(double, seconds, 2, "client: how long to push each size");

namespace demi::tools {
namespace {

// Pops and drops every message; prints each connection's totals at its end.
absl::Status RunServer() {
  DEMI_ASSIGN_OR_RETURN(
      int listener,
      ListenFromFlags(absl::GetFlag(FLAGS_port), "throughput", "receiving"));
  struct Totals {
    uint64_t messages = 0;
    uint64_t bytes = 0;
  };
  // By queue descriptor (small integers): no hashing per message, which
  // would count against the library's message rate.
  std::vector<Totals> totals;
  auto of = [&](int qd) -> Totals& {
    if (totals.size() <= static_cast<size_t>(qd)) totals.resize(qd + 1);
    return totals[qd];
  };
  absl::Status status = ServeFromFlags(
      listener,
      [&](int qd, demi_sgarray_t& sga) {
        Totals& t = of(qd);
        ++t.messages;
        t.bytes += SgaLength(sga);
        demi_sgafree(&sga);
        return true;
      },
      [&](int qd, int err) {
        Totals t = of(qd);
        totals[qd] = Totals();
        std::fprintf(stderr,
                     "throughput: qd %d %s after %llu messages, %llu bytes\n",
                     qd, err == 0 ? "closed" : std::strerror(err),
                     static_cast<unsigned long long>(t.messages),
                     static_cast<unsigned long long>(t.bytes));
      });
  // Datagram sockets never end one by one: what each received, at the end.
  for (const Totals& t : totals) {
    if (t.messages == 0) continue;  // Not a datagram socket, or idle.
    std::fprintf(stderr, "throughput: received %llu datagrams, %llu bytes\n",
                 static_cast<unsigned long long>(t.messages),
                 static_cast<unsigned long long>(t.bytes));
  }
  demi_close(listener);
  return status;
}

struct Result {
  size_t size = 0;
  uint64_t messages = 0;
  double seconds = 0;
  double rate() const { return messages / seconds; }
  double mbytes_per_s() const { return messages * size / seconds / 1e6; }
};

// Keeps `window` pushes of `size` bytes in flight on every connection for
// the configured time, then lets them drain.
absl::StatusOr<Result> MeasureSize(const std::vector<int>& qds, size_t size) {
  int window = absl::GetFlag(FLAGS_window);
  // One message per connection, pushed over and over: no copies.
  std::vector<demi_sgarray_t> messages;
  for (size_t i = 0; i < qds.size(); ++i) {
    DEMI_ASSIGN_OR_RETURN(demi_sgarray_t sga, AllocMessage(size));
    messages.push_back(sga);
  }
  // By queue descriptor (small integers): no hashing per message, which
  // would count against the library's message rate.
  std::vector<size_t> index;
  for (size_t i = 0; i < qds.size(); ++i) {
    if (index.size() <= static_cast<size_t>(qds[i])) index.resize(qds[i] + 1);
    index[qds[i]] = i;
  }
  auto push = [&](size_t i) -> absl::Status {
    demi_qtoken_t qt = 0;
    if (int err = demi_push(&qt, qds[i], &messages[i]); err != 0) {
      return rdma::ErrnoError(err, "demi_push");
    }
    return absl::OkStatus();
  };
  double start = NowMicros();
  double stop = start + absl::GetFlag(FLAGS_seconds) * 1e6;
  int in_flight = 0;
  for (size_t i = 0; i < qds.size(); ++i) {
    for (int w = 0; w < window; ++w) {
      DEMI_RETURN_IF_ERROR(push(i));
      ++in_flight;
    }
  }
  Result result;
  result.size = size;
  double last = start;
  const timespec timeout = absl::ToTimespec(FlagTimeout());
  while (in_flight > 0) {
    demi_qresult_t qr;
    DEMI_ASSIGN_OR_RETURN(bool got, WaitNext(&qr, timeout));
    if (!got) {
      return absl::DeadlineExceededError(absl::StrCat(
          "no push completed within ", absl::GetFlag(FLAGS_timeout), " s"));
    }
    if (qr.qr_opcode == DEMI_OPC_FAILED) {
      return rdma::ErrnoError(static_cast<int>(qr.qr_ret),
                              "connection to the server");
    }
    if (qr.qr_opcode != DEMI_OPC_PUSH) continue;
    --in_flight;
    ++result.messages;
    last = NowMicros();
    if (last < stop) {
      DEMI_RETURN_IF_ERROR(push(index[qr.qr_qd]));
      ++in_flight;
    }
  }
  result.seconds = (last - start) / 1e6;
  for (demi_sgarray_t& sga : messages) demi_sgafree(&sga);
  return result;
}

absl::Status RunClient() {
  DEMI_ASSIGN_OR_RETURN(std::vector<size_t> sizes,
                        ParseSizes(absl::GetFlag(FLAGS_size)));
  int connections = absl::GetFlag(FLAGS_connections);
  int window = absl::GetFlag(FLAGS_window);
  if (connections < 1 || window < 1 || absl::GetFlag(FLAGS_seconds) <= 0) {
    return absl::InvalidArgumentError(
        "--connections, --window and --seconds must be positive");
  }
  DEMI_ASSIGN_OR_RETURN(sockaddr_in addr,
                        ServerFromFlags(absl::GetFlag(FLAGS_port)));
  DEMI_RETURN_IF_ERROR(CheckSizesForFlags(sizes));
  std::vector<int> qds;
  for (int i = 0; i < connections; ++i) {
    DEMI_ASSIGN_OR_RETURN(int qd, ConnectFromFlags(addr));
    qds.push_back(qd);
  }
  bool json = absl::GetFlag(FLAGS_json);
  if (!json) {
    std::printf("# throughput to %s, %d connection(s), window %d\n",
                AddrString(addr).c_str(), connections, window);
    std::printf("%-10s %12s %10s %14s %12s\n", "#bytes", "#messages", "seconds",
                "msg/s", "MB/s");
  }
  std::vector<std::string> rows;
  for (size_t size : sizes) {
    DEMI_ASSIGN_OR_RETURN(Result r, MeasureSize(qds, size));
    if (json) {
      rows.push_back(absl::StrFormat(
          "{\"bytes\":%d,\"messages\":%d,\"seconds\":%.3f,\"msg_per_s\":%.1f,"
          "\"mb_per_s\":%.2f}",
          r.size, r.messages, r.seconds, r.rate(), r.mbytes_per_s()));
    } else {
      std::printf("%-10zu %12llu %10.3f %14.1f %12.2f\n", r.size,
                  static_cast<unsigned long long>(r.messages), r.seconds,
                  r.rate(), r.mbytes_per_s());
      std::fflush(stdout);
    }
  }
  for (int qd : qds) CloseFromFlags(qd);
  if (json) {
    std::printf(
        "{\"tool\":\"throughput\",\"server\":\"%s\",\"connections\":%d,"
        "\"window\":%d,\"results\":[%s]}\n",
        AddrString(addr).c_str(), connections, window,
        absl::StrJoin(rows, ",").c_str());
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace demi::tools

int main(int argc, char** argv) {
  demi::tools::ParseToolCommandLine(
      argc, argv,
      "message rate and bandwidth over the Demikernel API.\n"
      "  throughput --server [--bind ADDR] [--port P]\n"
      "  throughput --client ADDR [--size 64,1M] [--window W]");
  return demi::tools::RunServerOrClient("throughput", demi::tools::RunServer,
                                        demi::tools::RunClient);
}
