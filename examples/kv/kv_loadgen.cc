// Load generator for kv_server: closed-loop clients, each connection with
// one request in flight, a GET/PUT mix over a fixed key set. Every GET's
// value is checked. Prints operations per second and request latency
// (round trip: the client's view). With --threads N, N threads, each with
// its own libOS, share the connections and run the mix at the same time.
//
//   kv_loadgen --server ADDR [--connections N] [--threads N] [--seconds S]
//              [--keys K] [--value_size B] [--get_ratio R] [--json]
#include <demi/libos.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client.h"
#include "rdma/status_util.h"
#include "tools/demi_tool.h"
#include "tools/latency_stats.h"
#include "tools/program_info.h"
#include "tools/thread_group.h"

ABSL_FLAG(std::string, server, "", "the kv_server's address");
ABSL_FLAG(int, port, 7000, "its port");
ABSL_FLAG(int, connections, 8,
          "clients, each its own connection (in all, over --threads)");
ABSL_FLAG(int, threads, 1,
          "threads, each with its own libOS and its share of --connections "
          "(at least one each); their counts and latencies are merged");
ABSL_FLAG(double, seconds, 5, "how long to run the mix");
ABSL_FLAG(int, keys, 1000, "distinct keys (all stored first)");
ABSL_FLAG(int, value_size, 64, "bytes per value");
ABSL_FLAG(double, get_ratio, 0.9, "fraction of GETs; the rest are PUTs");
ABSL_FLAG(std::string, key_prefix, "key-",
          "keys are this prefix and a number (distinct prefixes keep "
          "concurrent generators off each other's values)");
ABSL_FLAG(bool, json, false, "print JSON instead of text");
ABSL_FLAG(double, timeout, 10, "seconds to wait for any reply");

namespace kv {
namespace {

std::string KeyOf(int i) {
  return absl::StrFormat("%s%08d", absl::GetFlag(FLAGS_key_prefix), i);
}

// The value every PUT of key `i` stores, so any GET can be checked.
std::string ValueOf(int i, size_t size) {
  std::string value(size, '\0');
  for (size_t k = 0; k < size; ++k) {
    value[k] = static_cast<char>('a' + (i * 31 + k) % 26);
  }
  return value;
}

struct Slot {
  std::unique_ptr<Client> client;
  Op op = Op::kGet;
  int key = 0;
  double started = 0;
};

// What the load is, the same for every thread.
struct Load {
  sockaddr_in addr = {};
  int connections = 0;  // In all.
  int keys = 0;
  int value_size = 0;
  double get_ratio = 0;
  absl::Duration timeout;
  std::vector<std::string> values;  // By key.
};

// What one thread counted.
struct Tally {
  uint64_t gets = 0;
  uint64_t puts = 0;
  double begin = 0;  // Microseconds (NowMicros): the mix started.
  double last = 0;   // The last reply came.
  std::vector<double> latencies;
};

// Thread `index` of `group`: its share of the connections stores its share
// of the keys, then, once every thread has, runs the mix until the time is
// up (or another thread failed).
absl::Status RunThread(demi::tools::ThreadGroup& group, int index,
                       const Load& load, Tally* tally) {
  int threads = group.size();
  int connections =
      load.connections / threads + (index < load.connections % threads);
  std::vector<Slot> slots(connections);
  absl::flat_hash_map<int, Slot*> by_qd;
  for (Slot& slot : slots) {
    DEMI_ASSIGN_OR_RETURN(slot.client,
                          Client::Connect(load.addr, load.timeout));
    slot.client->set_timeout(load.timeout);
    by_qd[slot.client->qd()] = &slot;
  }
  for (int i = index, n = 0; i < load.keys; i += threads, ++n) {
    DEMI_RETURN_IF_ERROR(
        slots[n % connections].client->Put(KeyOf(i), load.values[i]));
  }
  // No thread's GET may come before the PUT of its key.
  if (!group.Sync()) return demi::tools::ThreadGroup::Cancelled();

  std::mt19937_64 rng(42 + index);
  std::uniform_int_distribution<int> pick_key(0, load.keys - 1);
  std::bernoulli_distribution pick_get(load.get_ratio);
  auto start = [&](Slot& slot) -> absl::Status {
    slot.op = pick_get(rng) ? Op::kGet : Op::kPut;
    slot.key = pick_key(rng);
    slot.started = demi::tools::NowMicros();
    return slot.client
        ->Start(slot.op, KeyOf(slot.key),
                slot.op == Op::kPut ? absl::string_view(load.values[slot.key])
                                    : absl::string_view())
        .status();
  };
  double begin = demi::tools::NowMicros();
  double end = begin + absl::GetFlag(FLAGS_seconds) * 1e6;
  tally->begin = begin;
  tally->last = begin;
  for (Slot& slot : slots) DEMI_RETURN_IF_ERROR(start(slot));
  int in_flight = connections;
  std::string value;
  while (in_flight > 0) {
    demi_qresult_t qr;
    DEMI_ASSIGN_OR_RETURN(bool got, demi::tools::WaitNext(&qr, load.timeout));
    if (!got) return absl::DeadlineExceededError("no reply in time");
    if (qr.qr_opcode == DEMI_OPC_FAILED) {
      return demi::rdma::ErrnoError(static_cast<int>(qr.qr_ret),
                                    "connection to the server");
    }
    if (qr.qr_opcode != DEMI_OPC_POP) continue;
    double now = demi::tools::NowMicros();
    tally->last = now;
    Slot& slot = *by_qd[qr.qr_qd];
    DEMI_ASSIGN_OR_RETURN(Response response,
                          slot.client->ParseReply(qr.qr_value.sga, &value));
    if (response.code != Code::kOk ||
        (slot.op == Op::kGet && value != load.values[slot.key])) {
      return absl::DataLossError(absl::StrCat(
          "wrong reply for ", KeyOf(slot.key), ": code ",
          static_cast<int>(response.code), ", ", value.size(), " bytes"));
    }
    tally->latencies.push_back(now - slot.started);
    ++(slot.op == Op::kGet ? tally->gets : tally->puts);
    if (now < end && !group.stop()->load()) {
      DEMI_RETURN_IF_ERROR(start(slot));
    } else {
      --in_flight;
    }
  }
  return absl::OkStatus();
}

absl::Status Run() {
  // NaN waited for ever.
  double timeout = absl::GetFlag(FLAGS_timeout);
  DEMI_RETURN_IF_ERROR(demi::tools::CheckSeconds("--timeout", timeout));
  DEMI_RETURN_IF_ERROR(demi::tools::Init());
  Load load;
  DEMI_ASSIGN_OR_RETURN(load.addr,
                        demi::tools::ParseAddr(absl::GetFlag(FLAGS_server),
                                               absl::GetFlag(FLAGS_port)));
  load.connections = absl::GetFlag(FLAGS_connections);
  load.keys = absl::GetFlag(FLAGS_keys);
  load.value_size = absl::GetFlag(FLAGS_value_size);
  load.get_ratio = absl::GetFlag(FLAGS_get_ratio);
  load.timeout = absl::Seconds(timeout);
  int threads = absl::GetFlag(FLAGS_threads);
  if (load.connections < 1 || load.keys < 1 || load.value_size < 0 ||
      static_cast<size_t>(load.value_size) > kMaxValueSize ||
      load.get_ratio < 0 || load.get_ratio > 1) {
    return absl::InvalidArgumentError(
        "--connections and --keys at least 1, --value_size 0 to 1 MiB, "
        "--get_ratio 0 to 1");
  }
  if (threads < 1 || threads > load.connections) {
    return absl::InvalidArgumentError(
        "--threads: 1 to --connections (each thread has its own)");
  }
  load.values.resize(load.keys);
  for (int i = 0; i < load.keys; ++i) {
    load.values[i] = ValueOf(i, load.value_size);
  }
  std::vector<Tally> tallies(threads);
  demi::tools::ThreadGroup group(threads);
  DEMI_RETURN_IF_ERROR(group.Run([&](int index) {
    return RunThread(group, index, load, &tallies[index]);
  }));

  // Merged: every thread's requests over the time from the first start to
  // the last reply.
  uint64_t gets = 0, puts = 0;
  double begin = tallies[0].begin, last = tallies[0].last;
  std::vector<double> latencies;
  for (Tally& tally : tallies) {
    gets += tally.gets;
    puts += tally.puts;
    begin = std::min(begin, tally.begin);
    last = std::max(last, tally.last);
    if (latencies.empty()) {
      latencies = std::move(tally.latencies);
    } else {
      latencies.insert(latencies.end(), tally.latencies.begin(),
                       tally.latencies.end());
    }
  }
  double seconds = (last - begin) / 1e6;
  double ops = (gets + puts) / seconds;
  demi::tools::LatencySummary s = demi::tools::Summarize(latencies);
  int connections = load.connections, keys = load.keys;
  int value_size = load.value_size;
  double get_ratio = load.get_ratio;
  if (absl::GetFlag(FLAGS_json)) {
    // No "threads" key for one: the output of before --threads.
    std::string spread =
        threads == 1 ? "" : absl::StrCat("\"threads\":", threads, ",");
    std::printf(
        "{\"tool\":\"kv_loadgen\",\"connections\":%d,%s\"keys\":%d,"
        "\"value_size\":%d,\"get_ratio\":%.2f,\"gets\":%llu,\"puts\":%llu,"
        "\"seconds\":%.3f,\"ops_per_s\":%.1f,\"latency\":%s}\n",
        connections, spread.c_str(), keys, value_size, get_ratio,
        static_cast<unsigned long long>(gets),
        static_cast<unsigned long long>(puts), seconds, ops,
        demi::tools::ToJson(value_size, s).c_str());
  } else {
    std::string spread =
        threads == 1 ? "" : absl::StrCat(" (", threads, " threads)");
    std::printf(
        "# kv_loadgen: %d connections%s, %d keys, %d B values, %.0f%% GET\n"
        "%llu GETs (all values checked), %llu PUTs in %.2f s: %.1f ops/s\n"
        "# request latency (round trip)\n%s\n%s\n",
        connections, spread.c_str(), keys, value_size, get_ratio * 100,
        static_cast<unsigned long long>(gets),
        static_cast<unsigned long long>(puts), seconds, ops,
        demi::tools::TableHeader().c_str(),
        demi::tools::TableRow(value_size, s).c_str());
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace kv

int main(int argc, char** argv) {
  demi::tools::ParseProgramCommandLine(
      argc, argv,
      {"demi-kv-loadgen", "closed-loop load for demi-kv-server",
       "demi-kv-loadgen --server ADDR [--connections N] [--threads N] "
       "[--seconds S] [--json]",
       "Runs closed-loop clients against demi-kv-server: each connection "
       "keeps one request in flight, in a mix of GETs and PUTs over a fixed "
       "set of keys, and every value a GET returns is checked against what "
       "was put. Prints operations per second and the request latency (the "
       "round trip, as the client sees it), as a table or as JSON with "
       "--json.\n\n"
       "With --threads N, N threads, each with its own libOS, share the "
       "connections and run the mix at the same time.",
       "demi-kv-server(1)"});
  if (absl::GetFlag(FLAGS_server).empty()) {
    std::fprintf(stderr, "kv_loadgen: --server ADDR is required\n");
    return 2;
  }
  absl::Status status = kv::Run();
  if (!status.ok()) {
    std::fprintf(stderr, "kv_loadgen: %s\n",
                 std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
