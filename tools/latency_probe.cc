// Latency probe: round trips of messages between a client and an echo
// server over the Demikernel API, reported as one-way latency (half the
// round trip), like perftest's ib_send_lat.
//
//   latency_probe --server [--bind ADDR] [--port P]
//   latency_probe --client ADDR [--port P] [--size 64,4K] [--iters N]
//                 [--warmup N] [--connections N] [--json] [--plot F.png]
//                 [--samples F.txt] [--pause_ms N]
//   --udp on both sides: datagrams (the server then needs --bind ADDR);
//   --sleep: wait with the library's default spin budget, not spinning.
#include <demi/libos.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "rdma/status_util.h"
#include "tools/cdf_plot.h"
#include "tools/datagram_tool.h"
#include "tools/demi_tool.h"
#include "tools/latency_stats.h"
#include "tools/message_server.h"
#include "tools/path_report.h"
#include "tools/program_info.h"
#include "tools/tool_flags.h"

ABSL_FLAG(int, port, 12345, "server port");
ABSL_FLAG(std::vector<std::string>, size, {"64"},
          "client: message sizes, e.g. 64,4K,1M");
ABSL_FLAG(int, iters, 10000,
          "client: measured round trips per size (at most 10000000: every "
          "sample is kept in memory)");
ABSL_FLAG(int, warmup, 1000,
          "client: unmeasured round trips per size "
          "and connection first (at most 10000000)");
ABSL_FLAG(bool, rtt, false, "client: report round trips, not one-way");
ABSL_FLAG(int, pause_ms, 0,
          "client: stay idle this long before each measured round trip "
          "(what the first message after a quiet spell costs); only with "
          "--connections 1: one thread serves them all, and a pause would "
          "delay the other connections' replies and count in their "
          "samples");
ABSL_FLAG(std::string, plot, "", "client: write a latency CDF PNG here");
ABSL_FLAG(std::string, samples, "",
          "client: write every measured latency here, one line each "
          "(size, then microseconds), in the order measured");

namespace demi::tools {
namespace {

// The most --iters (and --warmup): every sample is kept, 8 bytes each, and
// warmup + iters must fit an int.
constexpr int kMaxIters = 10000000;
static_assert(kMaxIters <= std::numeric_limits<int>::max() / 2);

absl::Status CheckFlags() {
  int connections = absl::GetFlag(FLAGS_connections);
  int iters = absl::GetFlag(FLAGS_iters);
  int warmup = absl::GetFlag(FLAGS_warmup);
  int pause_ms = absl::GetFlag(FLAGS_pause_ms);
  if (connections < 1) {
    return absl::InvalidArgumentError("--connections must be at least 1");
  }
  if (iters < 1 || iters > kMaxIters) {
    return absl::InvalidArgumentError(
        absl::StrCat("--iters must be 1 to ", kMaxIters));
  }
  if (warmup < 0 || warmup > kMaxIters) {
    return absl::InvalidArgumentError(
        absl::StrCat("--warmup must be 0 to ", kMaxIters));
  }
  if (pause_ms < 0) {
    return absl::InvalidArgumentError("--pause_ms must be at least 0");
  }
  // The one thread that waits for every connection would sleep while other
  // round trips are under way, and their replies be timed after it.
  if (pause_ms > 0 && connections > 1) {
    return absl::InvalidArgumentError(
        "--pause_ms needs --connections 1: a pause would delay the other "
        "connections' replies and count in their samples");
  }
  return absl::OkStatus();
}

// Echoes every message back on its connection until the client closes it;
// prints the path of each connection (of the datagram socket, once).
absl::Status RunServer() {
  DEMI_ASSIGN_OR_RETURN(
      int listener, ListenFromFlags(absl::GetFlag(FLAGS_port), "latency_probe",
                                    "echo server"));
  const bool json = absl::GetFlag(FLAGS_json);
  ServeOptions options = ServeOptionsFromFlags();
  if (absl::GetFlag(FLAGS_udp)) {
    PrintServerPath(listener, "latency_probe", kLatencyProbeSchema, json);
  } else {
    options.on_accept = [json](int qd) {
      PrintServerPath(qd, "latency_probe", kLatencyProbeSchema, json);
    };
  }
  absl::Status status = ServeFromFlags(
      listener, options,
      [](int qd, demi_sgarray_t& sga) {
        int err = ReplyFromFlags(qd, sga);
        demi_sgafree(&sga);  // The echo keeps what it needs.
        return err == 0;
      },
      [](int, int) {});
  demi_close(listener);
  return status;
}

struct ClientConn {
  int qd = -1;
  demi_sgarray_t message = {};
  double sent_at = 0;
  int rounds = 0;
  int target = 0;
};

absl::Status StartRound(ClientConn& c) {
  demi_qtoken_t qt = 0;
  c.sent_at = NowMicros();
  if (int err = demi_push(&qt, c.qd, &c.message); err != 0) {
    return rdma::ErrnoError(err, "demi_push");
  }
  if (int err = demi_pop(&qt, c.qd); err != 0)
    return rdma::ErrnoError(err, "demi_pop");
  return absl::OkStatus();
}

// Runs warm-up and measured round trips of `size` bytes on every
// connection; returns the measured one-way (or round-trip) samples.
absl::StatusOr<std::vector<double>> MeasureSize(std::vector<ClientConn>& conns,
                                                size_t size) {
  int n = static_cast<int>(conns.size());
  int iters = absl::GetFlag(FLAGS_iters);
  int warmup = absl::GetFlag(FLAGS_warmup);
  double scale = absl::GetFlag(FLAGS_rtt) ? 1.0 : 0.5;
  const absl::Duration pause =
      absl::Milliseconds(absl::GetFlag(FLAGS_pause_ms));
  // Queue descriptors are small integers: a vector finds a result's
  // connection without hashing (the probe measures the library, not this).
  std::vector<ClientConn*> by_qd;
  for (int i = 0; i < n; ++i) {
    ClientConn& c = conns[i];
    DEMI_ASSIGN_OR_RETURN(c.message, AllocMessage(size));
    c.rounds = 0;
    c.target = warmup + iters / n + (i < iters % n ? 1 : 0);
    if (by_qd.size() <= static_cast<size_t>(c.qd)) by_qd.resize(c.qd + 1);
    by_qd[c.qd] = &c;
  }
  std::vector<double> samples;
  samples.reserve(iters);
  const timespec timeout = absl::ToTimespec(FlagTimeout());
  const bool udp = absl::GetFlag(FLAGS_udp);
  int active = 0;
  for (ClientConn& c : conns) {
    if (c.target == 0) continue;
    if (warmup == 0 && pause > absl::ZeroDuration()) absl::SleepFor(pause);
    DEMI_RETURN_IF_ERROR(StartRound(c));
    ++active;
  }
  while (active > 0) {
    demi_qresult_t qr;
    DEMI_ASSIGN_OR_RETURN(bool got, WaitNext(&qr, timeout));
    if (!got) {
      return absl::DeadlineExceededError(
          absl::StrCat("no answer from the server within ",
                       absl::GetFlag(FLAGS_timeout), " s"));
    }
    if (qr.qr_opcode == DEMI_OPC_FAILED) {
      return rdma::ErrnoError(static_cast<int>(qr.qr_ret),
                              "connection to the server");
    }
    if (qr.qr_opcode != DEMI_OPC_POP) continue;  // A push completed.
    double now = NowMicros();
    ClientConn& c = *by_qd[qr.qr_qd];
    size_t got_bytes = SgaLength(qr.qr_value.sga);
    demi_sgafree(&qr.qr_value.sga);
    if (udp && got_bytes < kMinDatagramSize) {
      // A late answer to a hello (ConnectFromFlags): not this round's.
      demi_qtoken_t qt = 0;
      if (int err = demi_pop(&qt, c.qd); err != 0) {
        return rdma::ErrnoError(err, "demi_pop");
      }
      continue;
    }
    if (got_bytes != size) {
      return absl::DataLossError(
          absl::StrCat("echo of ", size, " bytes came back with ", got_bytes));
    }
    if (++c.rounds > warmup) samples.push_back((now - c.sent_at) * scale);
    if (c.rounds < c.target) {
      if (c.rounds >= warmup && pause > absl::ZeroDuration()) {
        absl::SleepFor(pause);
      }
      DEMI_RETURN_IF_ERROR(StartRound(c));
    } else {
      --active;
    }
  }
  for (ClientConn& c : conns) demi_sgafree(&c.message);
  return samples;
}

// Unsorted, as perftest's -U prints them: a pattern over the iterations
// (a slow round every so many) shows only in measurement order.
absl::Status AppendSamples(const std::string& path, bool first, size_t size,
                           const std::vector<double>& samples) {
  FILE* out = std::fopen(path.c_str(), first ? "w" : "a");
  if (out == nullptr) return rdma::ErrnoError(errno, path);
  for (double sample : samples) std::fprintf(out, "%zu %.3f\n", size, sample);
  if (std::fclose(out) != 0) return rdma::ErrnoError(errno, path);
  return absl::OkStatus();
}

absl::Status RunClient() {
  DEMI_ASSIGN_OR_RETURN(std::vector<size_t> sizes,
                        ParseSizes(absl::GetFlag(FLAGS_size)));
  int connections = absl::GetFlag(FLAGS_connections);
  DEMI_ASSIGN_OR_RETURN(sockaddr_in addr,
                        ServerFromFlags(absl::GetFlag(FLAGS_port)));
  DEMI_RETURN_IF_ERROR(CheckSizesForFlags(sizes));
  std::vector<ClientConn> conns(connections);
  std::vector<PathReport> paths;
  std::string path_error;
  for (ClientConn& c : conns) {
    DEMI_ASSIGN_OR_RETURN(c.qd, ConnectFromFlags(addr));
    // Read before the measurement, which it must not disturb.
    absl::StatusOr<PathReport> path = QueryPath(c.qd);
    if (path.ok()) {
      paths.push_back(*std::move(path));
    } else {
      path_error = std::string(path.status().message());
    }
  }
  bool json = absl::GetFlag(FLAGS_json);
  const char* kind = absl::GetFlag(FLAGS_rtt) ? "round-trip" : "one-way";
  if (!json) {
    std::printf(
        "# latency_probe to %s, %d %s, %s latency%s\n",
        AddrString(addr).c_str(), connections,
        absl::GetFlag(FLAGS_udp) ? "datagram socket(s)" : "connection(s)", kind,
        absl::GetFlag(FLAGS_rtt) ? "" : " (half the round trip)");
    std::printf("%s\n", PathLines(paths, path_error).c_str());
    std::printf("%s\n", TableHeader().c_str());
  }
  std::vector<std::string> rows;
  std::vector<CdfSeries> series;
  for (size_t size : sizes) {
    DEMI_ASSIGN_OR_RETURN(std::vector<double> samples,
                          MeasureSize(conns, size));
    if (std::string path = absl::GetFlag(FLAGS_samples); !path.empty()) {
      DEMI_RETURN_IF_ERROR(AppendSamples(path, series.empty(), size, samples));
    }
    LatencySummary s = Summarize(samples);
    if (json) {
      rows.push_back(ToJson(size, s));
    } else {
      std::printf("%s\n", TableRow(size, s).c_str());
      std::fflush(stdout);
    }
    series.push_back({absl::StrCat(size, " B"), std::move(samples)});
  }
  for (ClientConn& c : conns) CloseFromFlags(c.qd);
  if (json) {
    // The keys older than the schema keep their order and form, which
    // scripts grep; the newer ones go around them (docs/probe-json.md).
    std::printf(
        "{%s,\"role\":\"client\",\"tool\":\"latency_probe\",\"server\":\"%s\","
        "\"connections\":%d,\"latency\":\"%s\",\"results\":[%s]%s}\n",
        JsonHead(kLatencyProbeSchema).c_str(), AddrString(addr).c_str(),
        connections, kind, absl::StrJoin(rows, ",").c_str(),
        PathJsonKeys(paths).c_str());
  }
  if (std::string plot = absl::GetFlag(FLAGS_plot); !plot.empty()) {
    DEMI_RETURN_IF_ERROR(
        PlotCdf(plot,
                absl::StrCat("demi latency_probe: ", kind, " latency, ",
                             connections, " connection(s)"),
                series));
    std::fprintf(stderr, "latency_probe: wrote %s\n", plot.c_str());
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace demi::tools

int main(int argc, char** argv) {
  demi::tools::ParseProgramCommandLine(
      argc, argv,
      {"demi-latency-probe", "round-trip latency over RDMA",
       "demi-latency-probe --server [--bind ADDR] [--port P] [--udp]\n"
       "demi-latency-probe --client ADDR [--port P] [--size 64,4K] "
       "[--iters N] [--json]",
       "Measures the latency of messages between two hosts through the "
       "Demikernel API over RDMA: the client sends a message, the server "
       "echoes it back, and the client reports the one-way latency (half the "
       "round trip, as perftest's ib_send_lat does; --rtt for the whole "
       "round trip) as a table of percentiles per message size, or as JSON "
       "with --json.\n\n"
       "Start the server on one host, then the client on the other with the "
       "server's address on its RDMA interface. Both sides spin while they "
       "wait, as a measurement should (--sleep waits as the library does by "
       "default). --udp uses datagrams over unreliable-datagram queue pairs "
       "instead of connections; the server then needs --bind ADDR.",
       "ib_send_lat(1), demi-throughput(1)"});
  return demi::tools::RunServerOrClient(
      "latency_probe", demi::tools::CheckFlags, demi::tools::RunServer,
      demi::tools::RunClient);
}
