// Load generator for kv_server: closed-loop clients, each connection with
// one request in flight, a GET/PUT mix over a fixed key set. Every GET's
// value is checked. Prints operations per second and request latency
// (round trip: the client's view).
//
//   kv_loadgen --server ADDR [--connections N] [--seconds S] [--keys K]
//              [--value_size B] [--get_ratio R] [--json]
#include <demi/libos.h>

#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client.h"
#include "rdma/status_util.h"
#include "tools/demi_tool.h"
#include "tools/latency_stats.h"

ABSL_FLAG(std::string, server, "", "the kv_server's address");
ABSL_FLAG(int, port, 7000, "its port");
ABSL_FLAG(int, connections, 8, "clients, each its own connection");
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

absl::Status Run() {
  DEMI_RETURN_IF_ERROR(demi::tools::Init());
  DEMI_ASSIGN_OR_RETURN(sockaddr_in addr,
                        demi::tools::ParseAddr(absl::GetFlag(FLAGS_server),
                                               absl::GetFlag(FLAGS_port)));
  int connections = absl::GetFlag(FLAGS_connections);
  int keys = absl::GetFlag(FLAGS_keys);
  int value_size = absl::GetFlag(FLAGS_value_size);
  double get_ratio = absl::GetFlag(FLAGS_get_ratio);
  absl::Duration timeout = absl::Seconds(absl::GetFlag(FLAGS_timeout));
  if (connections < 1 || keys < 1 || value_size < 0 ||
      static_cast<size_t>(value_size) > kMaxValueSize || get_ratio < 0 ||
      get_ratio > 1) {
    return absl::InvalidArgumentError(
        "--connections and --keys at least 1, --value_size 0 to 1 MiB, "
        "--get_ratio 0 to 1");
  }
  std::vector<Slot> slots(connections);
  absl::flat_hash_map<int, Slot*> by_qd;
  for (Slot& slot : slots) {
    DEMI_ASSIGN_OR_RETURN(slot.client, Client::Connect(addr, timeout));
    slot.client->set_timeout(timeout);
    by_qd[slot.client->qd()] = &slot;
  }
  std::vector<std::string> values(keys);
  for (int i = 0; i < keys; ++i) values[i] = ValueOf(i, value_size);
  for (int i = 0; i < keys; ++i) {
    DEMI_RETURN_IF_ERROR(
        slots[i % connections].client->Put(KeyOf(i), values[i]));
  }

  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int> pick_key(0, keys - 1);
  std::bernoulli_distribution pick_get(get_ratio);
  auto start = [&](Slot& slot) -> absl::Status {
    slot.op = pick_get(rng) ? Op::kGet : Op::kPut;
    slot.key = pick_key(rng);
    slot.started = demi::tools::NowMicros();
    return slot.client
        ->Start(slot.op, KeyOf(slot.key),
                slot.op == Op::kPut ? absl::string_view(values[slot.key])
                                    : absl::string_view())
        .status();
  };
  double begin = demi::tools::NowMicros();
  double end = begin + absl::GetFlag(FLAGS_seconds) * 1e6;
  for (Slot& slot : slots) DEMI_RETURN_IF_ERROR(start(slot));
  int in_flight = connections;
  uint64_t gets = 0, puts = 0;
  std::vector<double> latencies;
  std::string value;
  double last = begin;
  while (in_flight > 0) {
    demi_qresult_t qr;
    DEMI_ASSIGN_OR_RETURN(bool got, demi::tools::WaitNext(&qr, timeout));
    if (!got) return absl::DeadlineExceededError("no reply in time");
    if (qr.qr_opcode == DEMI_OPC_FAILED) {
      return demi::rdma::ErrnoError(static_cast<int>(qr.qr_ret),
                                    "connection to the server");
    }
    if (qr.qr_opcode != DEMI_OPC_POP) continue;
    last = demi::tools::NowMicros();
    Slot& slot = *by_qd[qr.qr_qd];
    DEMI_ASSIGN_OR_RETURN(Response response,
                          slot.client->ParseReply(qr.qr_value.sga, &value));
    if (response.code != Code::kOk ||
        (slot.op == Op::kGet && value != values[slot.key])) {
      return absl::DataLossError(absl::StrCat(
          "wrong reply for ", KeyOf(slot.key), ": code ",
          static_cast<int>(response.code), ", ", value.size(), " bytes"));
    }
    latencies.push_back(last - slot.started);
    ++(slot.op == Op::kGet ? gets : puts);
    if (last < end) {
      DEMI_RETURN_IF_ERROR(start(slot));
    } else {
      --in_flight;
    }
  }
  double seconds = (last - begin) / 1e6;
  double ops = (gets + puts) / seconds;
  demi::tools::LatencySummary s = demi::tools::Summarize(latencies);
  if (absl::GetFlag(FLAGS_json)) {
    std::printf(
        "{\"tool\":\"kv_loadgen\",\"connections\":%d,\"keys\":%d,"
        "\"value_size\":%d,\"get_ratio\":%.2f,\"gets\":%llu,\"puts\":%llu,"
        "\"seconds\":%.3f,\"ops_per_s\":%.1f,\"latency\":%s}\n",
        connections, keys, value_size, get_ratio,
        static_cast<unsigned long long>(gets),
        static_cast<unsigned long long>(puts), seconds, ops,
        demi::tools::ToJson(value_size, s).c_str());
  } else {
    std::printf(
        "# kv_loadgen: %d connections, %d keys, %d B values, %.0f%% GET\n"
        "%llu GETs (all values checked), %llu PUTs in %.2f s: %.1f ops/s\n"
        "# request latency (round trip)\n%s\n%s\n",
        connections, keys, value_size, get_ratio * 100,
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
  absl::SetProgramUsageMessage(
      "closed-loop load for kv_server.\n"
      "  kv_loadgen --server ADDR [--connections N] [--seconds S]");
  absl::ParseCommandLine(argc, argv);
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
