// The clients of the soak (tools/soak.sh) against kv_server, one mode each:
//
//   good:  closed-loop clients on --connections connections, a GET/PUT mix
//          over their own keys (every --large_every-th holds 64 KiB values,
//          the others 64 B); every GET is checked against the last PUT that
//          was acknowledged. A connection that fails is reconnected (the
//          soak cuts this host's link on purpose); a PUT whose reply was lost
//          leaves two possible values until the key is put again. Writes one
//          line per --interval to --stats and, at the end, reads every key
//          back. Exits 1 if a value was wrong or the server could not be
//          reached again.
//   deaf:  one connection that pushes requests for 64 KiB replies and never
//          pops them, for --seconds, then vanishes (exits without closing).
//   idle:  opens up to --connections connections (--window connects at a
//          time), never sends, holds them until --seconds, then vanishes.
#include <demi/libos.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client.h"
#include "rdma/status_util.h"
#include "tools/demi_tool.h"
#include "tools/program_info.h"

ABSL_FLAG(std::string, server, "", "the kv_server's address");
ABSL_FLAG(int, port, 7000, "its port");
ABSL_FLAG(std::string, mode, "good", "good, deaf or idle");
ABSL_FLAG(int, connections, 4, "connections (good, idle)");
ABSL_FLAG(int, window, 16, "connects in flight at a time (idle)");
ABSL_FLAG(int, keys, 128, "keys of this client (good)");
ABSL_FLAG(int, large_every, 8, "every Nth key holds 64 KiB values");
ABSL_FLAG(double, get_ratio, 0.9, "fraction of GETs (good)");
ABSL_FLAG(double, seconds, 60, "how long to run");
ABSL_FLAG(double, interval, 10, "seconds per line of --stats (good)");
ABSL_FLAG(std::string, stats, "", "file for the per-interval lines (good)");
ABSL_FLAG(std::string, key_prefix, "soak-", "prefix of this client's keys");
ABSL_FLAG(double, timeout, 30,
          "seconds a request may take before its connection counts as dead");
ABSL_FLAG(double, reconnect_for, 120,
          "seconds to keep trying to reach the server again (good)");

namespace kv {
namespace {

constexpr size_t kSmallValue = 64;
constexpr size_t kLargeValue = 64 * 1024;

double WallSeconds() {
  return absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
}

// Errors go to stderr with the wall clock, so the soak's report can tell
// which fault window they fell in.
void LogError(const std::string& what) {
  std::fprintf(stderr, "soak_client: error at %.3f: %s\n", WallSeconds(),
               what.c_str());
}

std::string KeyOf(int key) {
  return absl::StrFormat("%s%06d", absl::GetFlag(FLAGS_key_prefix), key);
}

// The value of `key` as its `version`-th PUT stores it: its size says which
// kind of key it is, its bytes which PUT it came from.
std::string ValueOf(int key, uint32_t version) {
  int every = std::max(1, absl::GetFlag(FLAGS_large_every));
  size_t size = key % every == 0 ? kLargeValue : kSmallValue;
  std::string value = absl::StrFormat("%d:%u:", key, version);
  value.reserve(size);
  while (value.size() < size) {
    value.push_back(
        static_cast<char>('a' + (key * 31 + version * 7 + value.size()) % 26));
  }
  value.resize(size);
  return value;
}

absl::StatusOr<std::unique_ptr<Client>> ConnectUntil(const sockaddr_in& addr,
                                                     double deadline) {
  absl::Status last = absl::DeadlineExceededError("no attempt");
  while (WallSeconds() < deadline) {
    absl::StatusOr<std::unique_ptr<Client>> client =
        Client::Connect(addr, absl::Seconds(10));
    if (client.ok()) return client;
    last = client.status();
    absl::SleepFor(absl::Seconds(1));
  }
  return last;
}

// One connection of the good mode and its request in flight.
struct Slot {
  std::unique_ptr<Client> client;
  bool busy = false;
  Op op = Op::kGet;
  int key = 0;
  uint32_t version = 0;  // Of a PUT.
  double started = 0;    // Wall seconds.
};

// What the good mode knows of each of its keys.
struct KeyState {
  uint32_t acked = 0;  // Version of the last acknowledged PUT.
  int64_t maybe = -1;  // A PUT whose reply was lost: this version, or acked.
};

class GoodClient {
 public:
  GoodClient(const sockaddr_in& addr, int connections, int keys)
      : addr_(addr), slots_(connections), keys_(keys), rng_(getpid()) {}

  absl::Status Run() {
    for (Slot& slot : slots_) {
      DEMI_ASSIGN_OR_RETURN(
          slot.client,
          ConnectUntil(addr_,
                       WallSeconds() + absl::GetFlag(FLAGS_reconnect_for)));
    }
    // Version 0 of every key first, so every GET has something to check.
    for (int key = 0; key < static_cast<int>(keys_.size()); ++key) {
      DEMI_RETURN_IF_ERROR(
          slots_[key % slots_.size()].client->Put(KeyOf(key), ValueOf(key, 0)));
    }
    std::fprintf(stderr, "soak_client: %zu keys stored, mix starts at %.3f\n",
                 keys_.size(), WallSeconds());
    // The mix runs --seconds from here: the stores before it take long
    // under emulation.
    double end = WallSeconds() + absl::GetFlag(FLAGS_seconds);
    double interval = absl::GetFlag(FLAGS_interval);
    double next_line = WallSeconds() + interval;
    timespec tick = absl::ToTimespec(absl::Milliseconds(200));
    while (true) {
      double now = WallSeconds();
      bool running = now < end;
      for (size_t i = 0; i < slots_.size(); ++i) {
        Slot& slot = slots_[i];
        if (slot.busy && now - slot.started > absl::GetFlag(FLAGS_timeout)) {
          CheckTokenKnown(slot.client->pop_qt(), "pop");
          Fail(i, absl::StrFormat(
                      "no reply in time to a %s of %s (%zu B values) on qd %d",
                      slot.op == Op::kGet ? "GET" : "PUT", KeyOf(slot.key),
                      ValueOf(slot.key, 0).size(), slot.client->qd()));
        }
        if (slot.client == nullptr && running) Reconnect(i, end);
        if (!slot.busy && slot.client != nullptr && running) Start(i);
      }
      if (now >= next_line) {
        WriteLine(next_line);
        next_line += interval;
      }
      if (!running && std::none_of(slots_.begin(), slots_.end(),
                                   [](const Slot& s) { return s.busy; })) {
        break;
      }
      demi_qresult_t qr;
      DEMI_ASSIGN_OR_RETURN(bool got, demi::tools::WaitNext(&qr, tick));
      if (got) Complete(qr);
    }
    WriteLine(WallSeconds());
    return Verify(end + absl::GetFlag(FLAGS_reconnect_for));
  }

 private:
  void Start(size_t i) {
    Slot& slot = slots_[i];
    std::uniform_int_distribution<int> pick(0, OwnedKeys(i) - 1);
    slot.key =
        static_cast<int>(i) + pick(rng_) * static_cast<int>(slots_.size());
    KeyState& state = keys_[slot.key];
    // A key in doubt is put again before it is read: that settles it.
    bool get = state.maybe < 0 && std::bernoulli_distribution(
                                      absl::GetFlag(FLAGS_get_ratio))(rng_);
    slot.op = get ? Op::kGet : Op::kPut;
    std::string value;
    if (!get) {
      slot.version = static_cast<uint32_t>(
          std::max<int64_t>(state.acked, state.maybe) + 1);
      value = ValueOf(slot.key, slot.version);
    }
    slot.started = WallSeconds();
    absl::StatusOr<uint64_t> id =
        slot.client->Start(slot.op, KeyOf(slot.key), value);
    if (!id.ok()) {
      slot.busy = true;  // So that Fail settles the key's state.
      Fail(i, id.status().ToString());
      return;
    }
    slot.busy = true;
  }

  // Keys owned by slot `i` (key % slots == i): one request per key at a
  // time, so a GET never races a PUT of its own key.
  int OwnedKeys(size_t i) const {
    size_t n = slots_.size();
    return static_cast<int>((keys_.size() - i + n - 1) / n);
  }

  void Complete(const demi_qresult_t& qr) {
    for (size_t i = 0; i < slots_.size(); ++i) {
      Slot& slot = slots_[i];
      if (!slot.busy || slot.client == nullptr) continue;
      bool pop = qr.qr_qt == slot.client->pop_qt();
      bool push = qr.qr_qt == slot.client->push_qt();
      if (!pop && !push) continue;
      if (qr.qr_opcode == DEMI_OPC_FAILED) {
        Fail(i,
             absl::StrCat(pop ? "pop" : "push", " failed: errno ", qr.qr_ret));
        return;
      }
      if (!pop) return;
      std::string value;
      absl::StatusOr<Response> response =
          slot.client->ParseReply(qr.qr_value.sga, &value);
      if (!response.ok()) {
        Fail(i, response.status().ToString());
        return;
      }
      KeyState& state = keys_[slot.key];
      if (response->code != Code::kOk) {
        ++wrong_;
        LogError(absl::StrCat("code ", static_cast<int>(response->code),
                              " for ", KeyOf(slot.key)));
      } else if (slot.op == Op::kPut) {
        state.acked = slot.version;
        state.maybe = -1;
      } else if (value != ValueOf(slot.key, state.acked)) {
        ++wrong_;
        LogError(absl::StrCat("wrong value for ", KeyOf(slot.key), ": ",
                              value.size(), " bytes, ", value.substr(0, 16)));
      }
      latencies_.push_back((WallSeconds() - slot.started) * 1e6);
      slot.busy = false;
      return;
    }
  }

  // A token the library handed out stays known until a wait takes its
  // result: EINVAL for one nobody took breaks the wait contract.
  void CheckTokenKnown(demi_qtoken_t qt, const char* what) {
    demi_qresult_t qr;
    timespec zero = {0, 0};
    int err = demi_wait(&qr, qt, &zero);
    if (err == EINVAL) {
      ++lost_tokens_;
      LogError(absl::StrCat("library lost the ", what, " token ", qt));
    }
    // The reply came on this very pass: its buffer is ours to give back.
    if (err == 0 && qr.qr_opcode == DEMI_OPC_POP &&
        qr.qr_value.sga.sga_buf != nullptr) {
      demi_sgafree(&qr.qr_value.sga);
    }
  }

  // The connection of slot `i` is dead: drop it (a lost PUT leaves its key
  // in doubt) and reconnect later.
  void Fail(size_t i, const std::string& why) {
    Slot& slot = slots_[i];
    LogError(absl::StrCat("connection ", i, ": ", why));
    ++errors_;
    if (slot.busy && slot.op == Op::kPut) {
      keys_[slot.key].maybe = slot.version;
    }
    slot.busy = false;
    slot.client.reset();
  }

  void Reconnect(size_t i, double end) {
    absl::StatusOr<std::unique_ptr<Client>> client =
        ConnectUntil(addr_, std::min(end, WallSeconds() + 5));
    if (!client.ok()) return;  // Tried again on the next round.
    slots_[i].client = std::move(*client);
    ++reconnects_;
    std::fprintf(stderr, "soak_client: connection %zu back at %.3f\n", i,
                 WallSeconds());
  }

  // One line of --stats: the interval's end (wall seconds), operations,
  // p50 and p99 in microseconds, errors and reconnects in it.
  void WriteLine(double at) {
    std::sort(latencies_.begin(), latencies_.end());
    auto quantile = [&](double q) {
      if (latencies_.empty()) return 0.0;
      return latencies_[std::min(latencies_.size() - 1,
                                 static_cast<size_t>(q * latencies_.size()))];
    };
    std::string line = absl::StrFormat(
        "%.3f %zu %.0f %.0f %d %d %d\n", at, latencies_.size(), quantile(0.5),
        quantile(0.99), errors_, reconnects_, wrong_);
    std::string path = absl::GetFlag(FLAGS_stats);
    if (FILE* out = path.empty() ? nullptr : std::fopen(path.c_str(), "a")) {
      std::fputs(line.c_str(), out);
      std::fclose(out);
    }
    latencies_.clear();
    errors_ = reconnects_ = 0;
    wrong_total_ += wrong_;
    wrong_ = 0;
  }

  // Reads every key back, after putting those in doubt once more.
  absl::Status Verify(double deadline) {
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].client == nullptr) {
        DEMI_ASSIGN_OR_RETURN(slots_[i].client, ConnectUntil(addr_, deadline));
        std::fprintf(stderr, "soak_client: connection %zu back at %.3f\n", i,
                     WallSeconds());
      }
    }
    int intact = 0, bad = 0;
    for (int key = 0; key < static_cast<int>(keys_.size()); ++key) {
      absl::StatusOr<bool> ok = VerifyKey(key, deadline);
      if (!ok.ok()) return ok.status();
      ++(*ok ? intact : bad);
    }
    std::printf(
        "soak_client: verify: %d of %zu keys intact, %d wrong; %d wrong "
        "replies during the mix; %d tokens lost by the library\n",
        intact, keys_.size(), bad, wrong_total_, lost_tokens_);
    if (bad != 0 || wrong_total_ != 0 || lost_tokens_ != 0) {
      return absl::DataLossError("values lost or wrong, or tokens lost");
    }
    return absl::OkStatus();
  }

  // Reads `key` back (put first if in doubt); a connection that fails
  // meanwhile is replaced and the key tried again, until `deadline`.
  absl::StatusOr<bool> VerifyKey(int key, double deadline) {
    Slot& slot = slots_[key % slots_.size()];
    KeyState& state = keys_[key];
    while (WallSeconds() < deadline) {
      if (slot.client == nullptr) {
        DEMI_ASSIGN_OR_RETURN(slot.client, ConnectUntil(addr_, deadline));
        std::fprintf(stderr, "soak_client: connection back at %.3f\n",
                     WallSeconds());
      }
      absl::Status status;
      if (state.maybe >= 0) {
        uint32_t version = static_cast<uint32_t>(state.maybe) + 1;
        status = slot.client->Put(KeyOf(key), ValueOf(key, version));
        if (status.ok()) {
          state.acked = version;
          state.maybe = -1;
        } else {
          state.maybe = version;
        }
      }
      absl::StatusOr<std::string> value =
          status.ok() ? slot.client->Get(KeyOf(key))
                      : absl::StatusOr<std::string>(status);
      if (value.ok()) {
        if (*value == ValueOf(key, state.acked)) return true;
        LogError(absl::StrCat("verify: wrong value for ", KeyOf(key)));
        return false;
      }
      if (demi::rdma::ErrnoOf(value.status()) == EINVAL) {
        ++lost_tokens_;
        LogError("library lost a token (EINVAL from its wait)");
      }
      LogError(absl::StrCat("verify: ", KeyOf(key), ": ",
                            value.status().ToString()));
      slot.client.reset();
    }
    return absl::DeadlineExceededError("verify: the server stayed away");
  }

  const sockaddr_in addr_;
  std::vector<Slot> slots_;
  std::vector<KeyState> keys_;
  std::mt19937_64 rng_;
  std::vector<double> latencies_;  // Microseconds, this interval.
  int errors_ = 0;
  int reconnects_ = 0;
  int wrong_ = 0;
  int wrong_total_ = 0;
  int lost_tokens_ = 0;
};

// Drives the library's progress (pushes, credits) without taking any reply.
void HoldOn(double until) {
  timespec tick = absl::ToTimespec(absl::Milliseconds(100));
  while (WallSeconds() < until) {
    demi_qresult_t qr;
    int n = 0;
    demi_wait_next_n(&qr, 1, &n, &tick);
  }
}

absl::Status RunDeaf(const sockaddr_in& addr) {
  double end = WallSeconds() + absl::GetFlag(FLAGS_seconds);
  DEMI_ASSIGN_OR_RETURN(std::unique_ptr<Client> client,
                        ConnectUntil(addr, end));
  std::string key = absl::StrCat(absl::GetFlag(FLAGS_key_prefix), "big");
  DEMI_RETURN_IF_ERROR(client->Put(key, std::string(kLargeValue, 'd')));
  // Bounded: the server stops reading at its limit of unfinished replies,
  // and the pushes beyond what it takes wait in this process.
  int pushed = 0;
  for (; pushed < 256; ++pushed) {
    if (!client->Start(Op::kGet, key, {}).ok()) break;
  }
  std::fprintf(stderr,
               "soak_client: deaf: %d requests pushed, no reply taken\n",
               pushed);
  HoldOn(end);
  std::fflush(nullptr);
  std::_Exit(0);  // Vanishes: no close, as a crash would.
}

absl::Status RunIdle(const sockaddr_in& addr) {
  double start = WallSeconds();
  double end = start + absl::GetFlag(FLAGS_seconds);
  int want = absl::GetFlag(FLAGS_connections);
  int window = std::max(1, absl::GetFlag(FLAGS_window));
  int started = 0, connected = 0, failed = 0, in_flight = 0;
  timespec tick = absl::ToTimespec(absl::Milliseconds(100));
  // Connecting takes at most half the time; the rest holds them.
  double connect_end = start + absl::GetFlag(FLAGS_seconds) / 2;
  while (WallSeconds() < connect_end && (started < want || in_flight > 0)) {
    while (started < want && in_flight < window) {
      int qd = -1;
      demi_qtoken_t qt = 0;
      if (demi_socket(&qd, AF_INET, SOCK_STREAM, 0) != 0 ||
          demi_connect(&qt, qd, reinterpret_cast<const sockaddr*>(&addr),
                       sizeof(addr)) != 0) {
        ++failed;
        ++started;
        continue;
      }
      ++started;
      ++in_flight;
    }
    demi_qresult_t qr;
    int n = 0;
    if (demi_wait_next_n(&qr, 1, &n, &tick) != 0 || n == 0) continue;
    if (qr.qr_opcode == DEMI_OPC_CONNECT) {
      ++connected;
      --in_flight;
    } else if (qr.qr_opcode == DEMI_OPC_FAILED) {
      ++failed;
      --in_flight;
    }
  }
  std::fprintf(stderr,
               "soak_client: idle: %d connected, %d failed, %d pending after "
               "%.1f s; holding them\n",
               connected, failed, in_flight, WallSeconds() - start);
  HoldOn(end);
  std::fflush(nullptr);
  std::_Exit(0);
}

absl::Status Run() {
  DEMI_RETURN_IF_ERROR(demi::tools::Init());
  DEMI_ASSIGN_OR_RETURN(sockaddr_in addr,
                        demi::tools::ParseAddr(absl::GetFlag(FLAGS_server),
                                               absl::GetFlag(FLAGS_port)));
  std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "deaf") return RunDeaf(addr);
  if (mode == "idle") return RunIdle(addr);
  if (mode != "good")
    return absl::InvalidArgumentError("--mode: good, deaf or idle");
  int connections = absl::GetFlag(FLAGS_connections);
  int keys = absl::GetFlag(FLAGS_keys);
  if (connections < 1 || keys < connections) {
    return absl::InvalidArgumentError(
        "--connections at least 1, --keys at least that");
  }
  GoodClient client(addr, connections, keys);
  return client.Run();
}

}  // namespace
}  // namespace kv

int main(int argc, char** argv) {
  demi::tools::ParseProgramCommandLine(
      argc, argv,
      {"soak_client", "the clients of the soak under faults",
       "soak_client --server ADDR --mode good|deaf|idle [--seconds S]",
       "Good clients run a checked GET/PUT mix and read every key back at "
       "the end; deaf and idle clients misbehave for the soak "
       "(tools/soak.sh).",
       "demi-kv-server(1)"});
  if (absl::GetFlag(FLAGS_server).empty()) {
    std::fprintf(stderr, "soak_client: --server ADDR is required\n");
    return 2;
  }
  absl::Status status = kv::Run();
  if (!status.ok()) {
    std::fprintf(stderr, "soak_client: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
