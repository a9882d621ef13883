// The key-value example end to end on an RDMA device: kv_server runs as its
// own process (with one serving thread, or two on one port); clients here,
// on one thread or two, in kv_loadgen processes, and in children of this
// binary that die in the middle of a request.
//
// Usage: kv_test <kv_server> <kv_loadgen>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "client.h"
#include "gtest/gtest.h"
#include "testing/rdma_env.h"
#include "tools/demi_tool.h"
#include "tools/thread_group.h"

namespace kv {
namespace {

using demi::testing::Scaled;

const char* server_binary = nullptr;
const char* loadgen_binary = nullptr;
const char* self_binary = nullptr;
constexpr int kPort = 7123;
// A second server, with small limits, for KvLimitsTest.
constexpr int kLimitsPort = 7124;
constexpr uint64_t kLimitBytes = 64 * 1024;
constexpr int kLimitKeys = 10;
constexpr int kLimitUnfinished = 4;
// A third, with two serving threads, for KvThreadsTest.
constexpr int kThreadsPort = 7125;

std::string Pattern(size_t size, int seed) {
  std::string value(size, '\0');
  for (size_t i = 0; i < size; ++i) {
    value[i] = static_cast<char>((i * 7 + seed) & 0xff);
  }
  return value;
}

sockaddr_in ServerAddr(int port = kPort) {
  absl::StatusOr<sockaddr_in> addr = demi::testing::TestAddr(port);
  if (!addr.ok()) {
    std::fprintf(stderr, "%s\n", addr.status().ToString().c_str());
    std::abort();
  }
  return *addr;
}

std::string AddrText() {
  std::string text = demi::tools::AddrString(ServerAddr());
  return text.substr(0, text.find(':'));
}

// Runs `argv`; its stderr goes to `stderr_path` if one is given.
pid_t Spawn(const std::vector<std::string>& argv,
            const std::string& stderr_path = "") {
  pid_t pid = fork();
  if (pid == 0) {
    if (!stderr_path.empty()) {
      int fd = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0 || dup2(fd, 2) < 0) std::_Exit(126);
    }
    std::vector<char*> args;
    for (const std::string& arg : argv) {
      args.push_back(const_cast<char*>(arg.c_str()));
    }
    args.push_back(nullptr);
    execv(args[0], args.data());
    std::_Exit(127);
  }
  return pid;
}

int WaitExit(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A writable place that outlives the test: the run's outputs (the VM's
// share) when there are any.
std::string OutputPath(const std::string& name) {
  for (const char* var : {"DEMI_OUT_DIR", "TEST_UNDECLARED_OUTPUTS_DIR"}) {
    const char* dir = std::getenv(var);
    if (dir != nullptr && access(dir, W_OK) == 0) {
      return absl::StrCat(dir, "/", name);
    }
  }
  return absl::StrCat("/tmp/", name);
}

// demi_init, once per process (every suite needs it).
void InitOnce() {
  static bool done = false;
  if (done) return;
  ASSERT_TRUE(demi::tools::Init().ok());
  done = true;
}

class KvTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = Spawn({server_binary, "--bind=" + AddrText(),
                     absl::StrCat("--port=", kPort)});
    ASSERT_GT(server_, 0);
    InitOnce();
  }

  static void TearDownTestSuite() {
    // The server must still be alive after everything the tests did.
    EXPECT_EQ(waitpid(server_, nullptr, WNOHANG), 0) << "kv_server died";
    kill(server_, SIGTERM);
    EXPECT_EQ(WaitExit(server_), 0) << "kv_server did not stop cleanly";
  }

  // A client, retrying while the server starts.
  static std::unique_ptr<Client> NewClient(int port = kPort) {
    absl::Time deadline = absl::Now() + Scaled(absl::Seconds(30));
    while (true) {
      absl::StatusOr<std::unique_ptr<Client>> client =
          Client::Connect(ServerAddr(port), Scaled(absl::Seconds(10)));
      if (client.ok()) {
        (*client)->set_timeout(Scaled(absl::Seconds(20)));
        return std::move(*client);
      }
      if (absl::Now() > deadline) {
        ADD_FAILURE() << client.status();
        return nullptr;
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
  }

  static pid_t server_;
};

pid_t KvTest::server_ = -1;

TEST_F(KvTest, PutGetDelete) {
  std::unique_ptr<Client> c = NewClient();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->Get("absent").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(c->Put("apple", "red").ok());
  EXPECT_EQ(*c->Get("apple"), "red");
  ASSERT_TRUE(c->Put("apple", "green").ok());  // Overwrite.
  EXPECT_EQ(*c->Get("apple"), "green");
  ASSERT_TRUE(c->Put("empty", "").ok());  // An empty value is a value.
  EXPECT_EQ(*c->Get("empty"), "");
  EXPECT_TRUE(c->Delete("apple").ok());
  EXPECT_EQ(c->Delete("apple").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c->Get("apple").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(KvTest, KeyAndValueLimits) {
  std::unique_ptr<Client> c = NewClient();
  ASSERT_NE(c, nullptr);
  std::string key250(250, 'k');
  std::string big = Pattern(kMaxValueSize, 3);
  ASSERT_TRUE(c->Put(key250, big).ok());
  absl::StatusOr<std::string> got = c->Get(key250);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == big) << "1 MiB value differs";
  EXPECT_EQ(c->Put(std::string(251, 'k'), "v").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c->Put("k", std::string(kMaxValueSize + 1, 'v')).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c->Get("").status().code(), absl::StatusCode::kInvalidArgument);
}

// Bytes a broken or hostile client might send: the server answers
// BAD_REQUEST and keeps serving that connection and everyone else.
TEST_F(KvTest, MalformedRequestsAreRejected) {
  std::unique_ptr<Client> c = NewClient();
  ASSERT_NE(c, nullptr);
  std::vector<std::string> bad = {
      std::string(3, 'x'),                         // Shorter than a header.
      std::string(sizeof(RequestHeader), '\xff'),  // Unknown op, wild sizes.
      *EncodeRequest(Op::kPut, 1, "k", "v") + "tail",  // Sizes do not add up.
  };
  std::string long_key(sizeof(RequestHeader) + 300, 'k');  // Key > 250.
  RequestHeader header = {};
  header.op = static_cast<uint8_t>(Op::kGet);
  header.key_size = 300;
  std::memcpy(long_key.data(), &header, sizeof(header));
  bad.push_back(long_key);
  for (const std::string& message : bad) {
    demi_sgarray_t sga = demi_sgaalloc(message.size());
    ASSERT_EQ(sga.sga_numsegs, 1u);
    std::memcpy(sga.sga_segs[0].sgaseg_buf, message.data(), message.size());
    demi_qtoken_t push = 0, pop = 0;
    ASSERT_EQ(demi_push(&push, c->qd(), &sga), 0);
    EXPECT_EQ(demi_sgafree(&sga), 0);
    ASSERT_EQ(demi_pop(&pop, c->qd()), 0);
    ASSERT_TRUE(
        demi::tools::Wait(push, Scaled(absl::Seconds(20)), "push").ok());
    absl::StatusOr<demi_qresult_t> qr =
        demi::tools::Wait(pop, Scaled(absl::Seconds(20)), "pop");
    ASSERT_TRUE(qr.ok()) << qr.status();
    absl::StatusOr<Response> response =
        c->ParseReply(qr->qr_value.sga, nullptr);
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->code, Code::kBadRequest);
  }
  ASSERT_TRUE(c->Put("after-bad", "fine").ok());
  EXPECT_EQ(*c->Get("after-bad"), "fine");
}

// Many clients in one process, requests interleaved on the server.
TEST_F(KvTest, ManyClientsInterleaved) {
  constexpr int kClients = 16;
  constexpr int kKeysEach = 20;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(NewClient());
    ASSERT_NE(clients.back(), nullptr);
  }
  for (int k = 0; k < kKeysEach; ++k) {
    for (int i = 0; i < kClients; ++i) {
      ASSERT_TRUE(
          clients[i]
              ->Put(absl::StrCat("c", i, "-", k), Pattern(100 + 37 * k, i))
              .ok());
    }
  }
  // Every client reads every other client's keys.
  for (int i = 0; i < kClients; ++i) {
    for (int k = 0; k < kKeysEach; ++k) {
      int owner = (i + k) % kClients;
      absl::StatusOr<std::string> got =
          clients[i]->Get(absl::StrCat("c", owner, "-", k));
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_TRUE(*got == Pattern(100 + 37 * k, owner));
    }
  }
}

// Processes hammering the server at the same time, each checking every
// value it reads.
TEST_F(KvTest, ConcurrentLoadGenerators) {
  ASSERT_NE(NewClient(), nullptr);  // The server is up.
  std::vector<pid_t> pids;
  for (int i = 0; i < 3; ++i) {
    pids.push_back(Spawn(
        {loadgen_binary, "--server=" + AddrText(),
         absl::StrCat("--port=", kPort), "--connections=4", "--keys=200",
         absl::StrCat("--value_size=", 64 << i),
         absl::StrCat("--key_prefix=gen", i, "-"), "--seconds=2",
         "--get_ratio=0.7",
         absl::StrCat("--timeout=",
                      absl::ToDoubleSeconds(Scaled(absl::Seconds(20))))}));
  }
  for (pid_t pid : pids) EXPECT_EQ(WaitExit(pid), 0);
}

// A thousand clients at once, each its own connection, every GET checked
// by the load generator; the server holds them all in one process.
TEST_F(KvTest, AThousandClients) {
  ASSERT_NE(NewClient(), nullptr);  // The server is up.
  pid_t pid = Spawn(
      {loadgen_binary, "--server=" + AddrText(), absl::StrCat("--port=", kPort),
       "--connections=1000", "--keys=2000", "--value_size=64",
       "--key_prefix=thousand-", "--seconds=3", "--get_ratio=0.7",
       absl::StrCat("--timeout=",
                    absl::ToDoubleSeconds(Scaled(absl::Seconds(60))))});
  EXPECT_EQ(WaitExit(pid), 0);
}

// A --timeout that is no time at all (NaN, 0, negative, below a
// microsecond) or beyond 10^6 s is refused before any connect: NaN waited
// for ever.
TEST_F(KvTest, LoadGeneratorRefusesABadTimeout) {
  ASSERT_NE(NewClient(), nullptr);  // The server is up: a bad run would run.
  int run = 0;
  for (const char* value : {"nan", "0", "-1", "1e-7", "inf", "1e7"}) {
    std::string err_path =
        OutputPath(absl::StrCat("kv_loadgen_bad_timeout.", run++, ".err"));
    std::remove(err_path.c_str());
    pid_t pid =
        Spawn({loadgen_binary, "--server=" + AddrText(),
               absl::StrCat("--port=", kPort), "--connections=1", "--keys=10",
               "--seconds=1", absl::StrCat("--timeout=", value)},
              err_path);
    EXPECT_EQ(WaitExit(pid), 1) << value;
    EXPECT_NE(ReadFile(err_path).find("--timeout must be from 0.000001"),
              std::string::npos)
        << value;
  }
}

// A client dies in the middle of a request: a 1 MiB PUT the server is
// still pulling, or a 1 MiB GET whose reply it never takes. Other clients
// carry on, and the half-sent PUT never shows up half-written.
TEST_F(KvTest, ClientKilledMidRequest) {
  std::unique_ptr<Client> c = NewClient();
  ASSERT_NE(c, nullptr);
  std::string big = Pattern(kMaxValueSize, 9);
  ASSERT_TRUE(c->Put("big", big).ok());
  for (const char* mode : {"put", "get"}) {
    for (int round = 0; round < 3; ++round) {
      pid_t child = Spawn({self_binary, "--die_mid_request", mode, AddrText()});
      EXPECT_EQ(WaitExit(child), 128 + SIGKILL) << mode;
      // Meanwhile and after, this client is served as before.
      ASSERT_TRUE(c->Put(absl::StrCat("alive-", mode, round), "yes").ok());
      EXPECT_EQ(*c->Get(absl::StrCat("alive-", mode, round)), "yes");
    }
  }
  absl::StatusOr<std::string> victim = c->Get("victim");
  if (victim.ok()) {
    EXPECT_TRUE(*victim == big) << "a half-sent PUT was stored";
  } else {
    EXPECT_EQ(victim.status().code(), absl::StatusCode::kNotFound);
  }
  absl::StatusOr<std::string> still = c->Get("big");
  ASSERT_TRUE(still.ok());
  EXPECT_TRUE(*still == big);
}

// A server with small limits: what one client can take from the others.
class KvLimitsTest : public KvTest {
 protected:
  static void SetUpTestSuite() {
    server_ =
        Spawn({server_binary, "--bind=" + AddrText(),
               absl::StrCat("--port=", kLimitsPort),
               absl::StrCat("--max_bytes=", kLimitBytes),
               absl::StrCat("--max_keys=", kLimitKeys),
               absl::StrCat("--max_unfinished_replies=", kLimitUnfinished)});
    ASSERT_GT(server_, 0);
    InitOnce();
  }
};

TEST_F(KvLimitsTest, AFullTableSaysOutOfSpaceAndRecoversOnDelete) {
  std::unique_ptr<Client> c = NewClient(kLimitsPort);
  ASSERT_NE(c, nullptr);
  for (int i = 0; i < kLimitKeys; ++i) {
    ASSERT_TRUE(c->Put(absl::StrCat("key", i), Pattern(1000, i)).ok());
  }
  // One key too many, then too many bytes for a key already there.
  EXPECT_EQ(c->Put("one-more", "v").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(c->Put("key0", Pattern(kLimitBytes, 1)).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(*c->Get("key0") == Pattern(1000, 0)) << "value changed";
  ASSERT_TRUE(c->Put("key0", Pattern(2000, 7)).ok());  // Fits: overwritten.
  EXPECT_TRUE(*c->Get("key0") == Pattern(2000, 7)) << "not overwritten";
  ASSERT_TRUE(c->Delete("key1").ok());
  ASSERT_TRUE(c->Put("one-more", "v").ok());  // Room again.
  EXPECT_EQ(*c->Get("one-more"), "v");
  // Empty again for the next test.
  for (int i = 0; i < kLimitKeys; ++i) {
    if (i != 1) {
      EXPECT_TRUE(c->Delete(absl::StrCat("key", i)).ok());
    }
  }
  EXPECT_TRUE(c->Delete("one-more").ok());
}

TEST_F(KvLimitsTest, AClientThatNeverTakesRepliesStopsBeingRead) {
  std::unique_ptr<Client> setup = NewClient(kLimitsPort);
  ASSERT_NE(setup, nullptr);
  // A value big enough to go by rendezvous: its reply is unfinished until
  // the client pops it, which this one never does.
  std::string big = Pattern(32 * 1024, 5);
  ASSERT_TRUE(setup->Put("big", big).ok());
  std::unique_ptr<Client> greedy = NewClient(kLimitsPort);
  ASSERT_NE(greedy, nullptr);
  // More than the server ever reads from one client that takes no reply:
  // the 63 credits the library lets a connection's allotment grow to (its
  // kMaxConnCredits, as many as a QP's send requests), plus the
  // kLimitUnfinished requests it popped (their credits went back).
  constexpr int kMostTaken = 63 + kLimitUnfinished;
  constexpr int kRequests = 2 * kMostTaken;
  std::string get = *EncodeRequest(Op::kGet, 1, "big", {});
  std::vector<demi_qtoken_t> pushes;
  for (int i = 0; i < kRequests; ++i) {
    demi_sgarray_t sga = demi_sgaalloc(get.size());
    ASSERT_EQ(sga.sga_numsegs, 1u);
    std::memcpy(sga.sga_segs[0].sgaseg_buf, get.data(), get.size());
    demi_qtoken_t qt = 0;
    ASSERT_EQ(demi_push(&qt, greedy->qd(), &sga), 0);
    EXPECT_EQ(demi_sgafree(&sga), 0);
    pushes.push_back(qt);
  }
  // Everyone else is served meanwhile (these waits also drive the greedy
  // client's pushes).
  std::vector<absl::Duration> latencies;
  for (int i = 0; i < 100; ++i) {
    absl::Time start = absl::Now();
    ASSERT_TRUE(setup->Put("small", absl::StrCat(i)).ok());
    ASSERT_EQ(*setup->Get("small"), absl::StrCat(i));
    latencies.push_back(absl::Now() - start);
  }
  std::sort(latencies.begin(), latencies.end());
  std::printf(
      "well-behaved client beside the greedy one: PUT+GET p50 %s, "
      "p99 %s\n",
      absl::FormatDuration(latencies[50]).c_str(),
      absl::FormatDuration(latencies[98]).c_str());
  // The server read only what the greedy client's credits and the reply
  // limit allow: the other requests still wait in the client library.
  int taken = 0;
  for (demi_qtoken_t qt : pushes) {
    demi_qresult_t qr;
    timespec zero = {0, 0};
    if (demi_wait(&qr, qt, &zero) == 0) {
      EXPECT_EQ(qr.qr_opcode, DEMI_OPC_PUSH);
      ++taken;
    }
  }
  std::printf("greedy client: %d of %d requests taken in\n", taken, kRequests);
  EXPECT_LE(taken, kMostTaken) << "the server kept reading a client that "
                                  "takes none of its replies";
  EXPECT_GT(taken, kLimitUnfinished);
  greedy.reset();  // Closes with replies unread: reset.
  ASSERT_TRUE(setup->Put("after", "ok").ok());
  EXPECT_EQ(*setup->Get("after"), "ok");
  for (const char* key : {"big", "small", "after"}) {
    EXPECT_TRUE(setup->Delete(key).ok());
  }
}

// A server with two threads listening on one port (--threads 2): the
// library spreads the connections over both, and a GET sees every PUT,
// whichever thread took it. The test owns the server: it reads the
// server's closing stats.
class KvThreadsTest : public KvTest {
 protected:
  static void SetUpTestSuite() { InitOnce(); }
  static void TearDownTestSuite() {}
};

// The "thread I: N connections accepted" lines of kv_server's stats.
std::vector<int> AcceptsByThread(const std::string& log) {
  std::vector<int> accepted;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    constexpr absl::string_view kPrefix = "kv_server: thread ";
    if (!absl::ConsumePrefix(&line, kPrefix)) continue;
    std::vector<absl::string_view> words = absl::StrSplit(line, ' ');
    int thread = -1, count = -1;
    if (words.size() < 3 || !absl::ConsumeSuffix(&words[0], ":") ||
        !absl::SimpleAtoi(words[0], &thread) ||
        !absl::SimpleAtoi(words[1], &count) ||
        thread != static_cast<int>(accepted.size())) {
      ADD_FAILURE() << "stats line: " << line;
      continue;
    }
    accepted.push_back(count);
  }
  return accepted;
}

TEST_F(KvThreadsTest, TwoServerThreadsShareThePortAndTheTable) {
  std::string log = OutputPath("kv_server_threads.log");
  pid_t server = Spawn({server_binary, "--bind=" + AddrText(),
                        absl::StrCat("--port=", kThreadsPort), "--threads=2"},
                       log);
  ASSERT_GT(server, 0);
  // Announced once both threads listen: a connection made before would
  // find only the first.
  absl::Time deadline = absl::Now() + Scaled(absl::Seconds(60));
  while (ReadFile(log).find("listening on") == std::string::npos) {
    ASSERT_EQ(waitpid(server, nullptr, WNOHANG), 0) << ReadFile(log);
    ASSERT_LT(absl::Now(), deadline) << "kv_server did not listen";
    absl::SleepFor(absl::Milliseconds(100));
  }

  // Two client threads, each with its own libOS and four connections: each
  // connection stores its keys, then every connection reads every key.
  constexpr int kClientThreads = 2;
  constexpr int kPerThread = 4;
  constexpr int kKeysEach = 8;
  auto key = [](int thread, int connection, int k) {
    return absl::StrCat("t", thread, "-c", connection, "-", k);
  };
  auto value = [](int thread, int connection, int k) {
    return Pattern(64 + 997 * k, thread * 100 + connection * 10 + k);
  };
  demi::tools::ThreadGroup clients(kClientThreads);
  absl::Status status = clients.Run([&](int t) -> absl::Status {
    std::vector<std::unique_ptr<Client>> mine;
    for (int i = 0; i < kPerThread; ++i) {
      mine.push_back(NewClient(kThreadsPort));
      if (mine.back() == nullptr) return absl::UnavailableError("connect");
    }
    for (int i = 0; i < kPerThread; ++i) {
      for (int k = 0; k < kKeysEach; ++k) {
        absl::Status put = mine[i]->Put(key(t, i, k), value(t, i, k));
        if (!put.ok()) return put;
      }
    }
    if (!clients.Sync()) return demi::tools::ThreadGroup::Cancelled();
    for (int i = 0; i < kPerThread; ++i) {
      for (int owner = 0; owner < kClientThreads; ++owner) {
        for (int c = 0; c < kPerThread; ++c) {
          for (int k = 0; k < kKeysEach; ++k) {
            absl::StatusOr<std::string> got = mine[i]->Get(key(owner, c, k));
            if (!got.ok()) return got.status();
            if (*got != value(owner, c, k)) {
              return absl::DataLossError(
                  absl::StrCat("wrong value for ", key(owner, c, k)));
            }
          }
        }
      }
    }
    return absl::OkStatus();
  });
  EXPECT_TRUE(status.ok()) << status;

  // The same from a process: two threads, eight connections, every GET
  // checked by the load generator.
  pid_t loadgen =
      Spawn({loadgen_binary, "--server=" + AddrText(),
             absl::StrCat("--port=", kThreadsPort), "--threads=2",
             "--connections=8", "--keys=200", "--value_size=256",
             "--key_prefix=threads-", "--seconds=2", "--get_ratio=0.7",
             absl::StrCat("--timeout=",
                          absl::ToDoubleSeconds(Scaled(absl::Seconds(20))))});
  EXPECT_EQ(WaitExit(loadgen), 0);

  EXPECT_EQ(waitpid(server, nullptr, WNOHANG), 0) << "kv_server died";
  kill(server, SIGTERM);
  EXPECT_EQ(WaitExit(server), 0) << "kv_server did not stop cleanly";
  std::string stats = ReadFile(log);
  std::printf("%s", stats.c_str());
  std::vector<int> accepted = AcceptsByThread(stats);
  ASSERT_EQ(accepted.size(), 2u) << stats;
  EXPECT_GE(accepted[0], 1) << "server thread 0 took no connection";
  EXPECT_GE(accepted[1], 1) << "server thread 1 took no connection";
  EXPECT_EQ(accepted[0] + accepted[1], kClientThreads * kPerThread + 8);
}

// The child of ClientKilledMidRequest: starts a request and kills itself
// while it is in flight.
int DieMidRequest(const std::string& mode, const std::string& host) {
  if (!demi::tools::Init().ok()) return 1;
  absl::StatusOr<sockaddr_in> addr = demi::tools::ParseAddr(host, kPort);
  if (!addr.ok()) return 1;
  absl::StatusOr<std::unique_ptr<Client>> c = Client::Connect(*addr);
  if (!c.ok()) return 1;
  std::string big = Pattern(kMaxValueSize, 9);
  absl::StatusOr<uint64_t> id = mode == "put"
                                    ? (*c)->Start(Op::kPut, "victim", big)
                                    : (*c)->Start(Op::kGet, "big", {});
  if (!id.ok()) return 1;
  // Let the request get under way, then vanish without a goodbye.
  demi_qresult_t qr;
  int n = 0;
  timespec ts = {0, 2000000};
  demi_wait_next_n(&qr, 1, &n, &ts);
  raise(SIGKILL);
  return 1;
}

}  // namespace
}  // namespace kv

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "--die_mid_request") == 0) {
    return kv::DieMidRequest(argv[2], argv[3]);
  }
  ::testing::InitGoogleTest(&argc, argv);
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <kv_server> <kv_loadgen>\n", argv[0]);
    return 2;
  }
  kv::server_binary = argv[1];
  kv::loadgen_binary = argv[2];
  static std::string self = "/proc/self/exe";
  char path[4096] = {};
  ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n > 0) self.assign(path, n);
  kv::self_binary = self.c_str();
  return RUN_ALL_TESTS();
}
