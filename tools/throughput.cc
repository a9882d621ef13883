// Throughput tool: message rate and bandwidth of one-way pushes over the
// Demikernel API, with a window of pushes outstanding per connection.
//
//   throughput --server [--bind ADDR] [--port P] [--threads N]
//   throughput --client ADDR [--port P] [--size 64,64K,1M] [--window W]
//              [--connections N] [--threads N] [--seconds S] [--json]
#include <demi/libos.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "rdma/status_util.h"
#include "tools/demi_tool.h"
#include "tools/message_server.h"
#include "tools/path_report.h"
#include "tools/program_info.h"
#include "tools/thread_group.h"
#include "tools/tool_flags.h"

ABSL_FLAG(int, port, 12346, "server port");
ABSL_FLAG(std::vector<std::string>, size,
          std::vector<std::string>({"64", "4K", "64K", "1M", "8M"}),
          "client: message sizes, e.g. 64,64K,1M");
ABSL_FLAG(int, window, 32, "client: pushes outstanding per connection");
ABSL_FLAG(double, seconds, 2,
          "client: how long to push each size (1e-6 to 1e6)");
ABSL_FLAG(int, threads, 1,
          "threads, each with its own libOS: the server's listen on one "
          "port (SO_REUSEPORT) and share its connections; the client's "
          "share --connections (at least one each) and push at the same "
          "time, their rates summed");

namespace demi::tools {
namespace {

// Thread `index` of the server: pops and drops every message; prints each
// connection's path when it comes (the datagram socket's, once) and its
// totals at its end.
absl::Status ServeThread(ThreadGroup& group, int index, std::atomic<int>* ended,
                         int* accepted) {
  DEMI_ASSIGN_OR_RETURN(int listener,
                        ListenFromFlags(absl::GetFlag(FLAGS_port), "throughput",
                                        "receiving", group, index));
  struct Totals {
    uint64_t messages = 0;
    uint64_t bytes = 0;
  };
  // By queue descriptor, erased when the connection ends: the library does
  // not reuse qds (until 2^31), so a table indexed by them would grow for
  // as long as the server runs.
  absl::flat_hash_map<int, Totals> totals;
  ServeOptions options = ServeOptionsFromFlags();
  // --exit_after counts the connections of every thread.
  if (group.size() > 1) options.ended = ended;
  options.stop = group.stop();
  const bool json = absl::GetFlag(FLAGS_json);
  options.on_accept = [accepted, json](int qd) {
    ++*accepted;
    PrintServerPath(qd, "throughput", kThroughputSchema, json);
  };
  if (absl::GetFlag(FLAGS_udp)) {
    PrintServerPath(listener, "throughput", kThroughputSchema, json);
  }
  absl::Status status = ServeFromFlags(
      listener, options,
      [&](int qd, demi_sgarray_t& sga) {
        Totals& t = totals[qd];
        ++t.messages;
        t.bytes += SgaLength(sga);
        demi_sgafree(&sga);
        return true;
      },
      [&](int qd, int err) {
        Totals t;  // None if it sent nothing.
        if (auto it = totals.find(qd); it != totals.end()) {
          t = it->second;
          totals.erase(it);
        }
        std::fprintf(stderr,
                     "throughput: qd %d %s after %llu messages, %llu bytes\n",
                     qd, err == 0 ? "closed" : std::strerror(err),
                     static_cast<unsigned long long>(t.messages),
                     static_cast<unsigned long long>(t.bytes));
      });
  // Datagram sockets never end one by one: what each received, at the end;
  // and connections still open when the server stopped.
  const bool udp = absl::GetFlag(FLAGS_udp);
  for (const auto& [qd, t] : totals) {
    if (udp) {
      std::fprintf(stderr, "throughput: received %llu datagrams, %llu bytes\n",
                   static_cast<unsigned long long>(t.messages),
                   static_cast<unsigned long long>(t.bytes));
    } else {
      std::fprintf(stderr,
                   "throughput: qd %d open at exit after %llu messages, %llu "
                   "bytes\n",
                   qd, static_cast<unsigned long long>(t.messages),
                   static_cast<unsigned long long>(t.bytes));
    }
  }
  demi_close(listener);
  return status;
}

absl::Status CheckFlags() {
  return CheckSeconds("--seconds", absl::GetFlag(FLAGS_seconds));
}

absl::Status RunServer() {
  int threads = absl::GetFlag(FLAGS_threads);
  if (threads < 1) {
    return absl::InvalidArgumentError("--threads must be at least 1");
  }
  ThreadGroup group(threads);
  std::atomic<int> ended{0};
  std::vector<int> accepted(threads);
  absl::Status status = group.Run([&](int index) {
    return ServeThread(group, index, &ended, &accepted[index]);
  });
  if (threads > 1) {
    for (int i = 0; i < threads; ++i) {
      std::fprintf(stderr, "throughput: thread %d accepted %d connections\n", i,
                   accepted[i]);
    }
  }
  return status;
}

struct Result {
  size_t size = 0;
  uint64_t messages = 0;
  double start = 0;  // Microseconds (NowMicros).
  double last = 0;   // When the last push completed.
  double seconds() const { return (last - start) / 1e6; }
  double rate() const { return messages / seconds(); }
  double mbytes_per_s() const { return messages * size / seconds() / 1e6; }
};

// What the threads measured together: their messages over the time from
// the first start to the last completion.
Result Merge(const std::vector<Result>& parts) {
  Result all = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) {
    all.messages += parts[i].messages;
    all.start = std::min(all.start, parts[i].start);
    all.last = std::max(all.last, parts[i].last);
  }
  return all;
}

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
  result.start = start;
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
  result.last = last;
  for (demi_sgarray_t& sga : messages) demi_sgafree(&sga);
  return result;
}

absl::Status RunClient() {
  DEMI_ASSIGN_OR_RETURN(std::vector<size_t> sizes,
                        ParseSizes(absl::GetFlag(FLAGS_size)));
  int connections = absl::GetFlag(FLAGS_connections);
  int window = absl::GetFlag(FLAGS_window);
  int threads = absl::GetFlag(FLAGS_threads);
  if (connections < 1 || window < 1) {
    return absl::InvalidArgumentError(
        "--connections and --window must be positive");
  }
  if (threads < 1 || threads > connections) {
    return absl::InvalidArgumentError(
        "--threads: 1 to --connections (each thread has its own)");
  }
  DEMI_ASSIGN_OR_RETURN(sockaddr_in addr,
                        ServerFromFlags(absl::GetFlag(FLAGS_port)));
  DEMI_RETURN_IF_ERROR(CheckSizesForFlags(sizes));
  bool json = absl::GetFlag(FLAGS_json);
  // By size, then thread: each thread writes only its own entries, and
  // thread 0 reads a size's once every thread has measured it.
  std::vector<std::vector<Result>> results(sizes.size(),
                                           std::vector<Result>(threads));
  std::vector<std::string> rows;
  // By thread, as `results`: the paths of each thread's connections.
  std::vector<std::vector<PathReport>> paths(threads);
  std::vector<std::string> path_errors(threads);
  ThreadGroup group(threads);
  DEMI_RETURN_IF_ERROR(group.Run([&](int index) -> absl::Status {
    std::vector<int> qds;
    int mine = connections / threads + (index < connections % threads);
    for (int i = 0; i < mine; ++i) {
      DEMI_ASSIGN_OR_RETURN(int qd, ConnectFromFlags(addr));
      qds.push_back(qd);
      // In the thread whose libOS has the queue, before any push.
      absl::StatusOr<PathReport> path = QueryPath(qd);
      if (path.ok()) {
        paths[index].push_back(*std::move(path));
      } else {
        path_errors[index] = std::string(path.status().message());
      }
    }
    if (!group.Sync()) return ThreadGroup::Cancelled();
    if (index == 0) {
      for (int i = 1; i < threads; ++i) {
        paths[0].insert(paths[0].end(), paths[i].begin(), paths[i].end());
        if (path_errors[0].empty()) path_errors[0] = path_errors[i];
      }
    }
    if (index == 0 && !json) {
      std::string spread =
          threads == 1 ? "" : absl::StrCat(", ", threads, " threads");
      std::printf("# throughput to %s, %d connection(s), window %d%s\n",
                  AddrString(addr).c_str(), connections, window,
                  spread.c_str());
      std::printf("%s\n", PathLines(paths[0], path_errors[0]).c_str());
      std::printf("%-10s %12s %10s %14s %12s\n", "#bytes", "#messages",
                  "seconds", "msg/s", "MB/s");
    }
    for (size_t s = 0; s < sizes.size(); ++s) {
      // Every thread pushes at the same time, and only then.
      if (!group.Sync()) return ThreadGroup::Cancelled();
      DEMI_ASSIGN_OR_RETURN(results[s][index], MeasureSize(qds, sizes[s]));
      if (!group.Sync()) return ThreadGroup::Cancelled();
      if (index != 0) continue;
      Result r = Merge(results[s]);
      if (json) {
        rows.push_back(absl::StrFormat(
            "{\"bytes\":%d,\"messages\":%d,\"seconds\":%.3f,"
            "\"msg_per_s\":%.1f,\"mb_per_s\":%.2f}",
            r.size, r.messages, r.seconds(), r.rate(), r.mbytes_per_s()));
      } else {
        std::printf("%-10zu %12llu %10.3f %14.1f %12.2f\n", r.size,
                    static_cast<unsigned long long>(r.messages), r.seconds(),
                    r.rate(), r.mbytes_per_s());
        std::fflush(stdout);
      }
    }
    for (int qd : qds) CloseFromFlags(qd);
    return absl::OkStatus();
  }));
  if (json) {
    // No "threads" key for one: the output of before --threads.
    std::string spread =
        threads == 1 ? "" : absl::StrCat("\"threads\":", threads, ",");
    // The keys older than the schema keep their order and form, which
    // scripts grep; the newer ones go around them (docs/probe-json.md).
    std::printf(
        "{%s,\"role\":\"client\",\"tool\":\"throughput\",\"server\":\"%s\","
        "\"connections\":%d,%s\"window\":%d,\"results\":[%s]%s}\n",
        JsonHead(kThroughputSchema).c_str(), AddrString(addr).c_str(),
        connections, spread.c_str(), window, absl::StrJoin(rows, ",").c_str(),
        PathJsonKeys(paths[0]).c_str());
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace demi::tools

int main(int argc, char** argv) {
  demi::tools::ParseProgramCommandLine(
      argc, argv,
      {"demi-throughput", "message rate and bandwidth over RDMA",
       "demi-throughput --server [--bind ADDR] [--port P] [--threads N]\n"
       "demi-throughput --client ADDR [--size 64,1M] [--window W] "
       "[--threads N] [--json]",
       "Measures how many messages per second, and how many bytes, one host "
       "can push to another through the Demikernel API over RDMA: the client "
       "keeps a window of pushes outstanding on each connection and the "
       "server takes them; the client reports messages per second and "
       "bandwidth per message size, as a table or as JSON with --json.\n\n"
       "Start the server on one host, then the client on the other with the "
       "server's address on its RDMA interface. With --threads N each side "
       "runs N threads, each with its own libOS; the server's threads share "
       "one port.",
       "ib_send_bw(1), demi-latency-probe(1)"});
  return demi::tools::RunServerOrClient("throughput", demi::tools::CheckFlags,
                                        demi::tools::RunServer,
                                        demi::tools::RunClient);
}
