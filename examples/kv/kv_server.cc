// The key-value server: an in-memory table served over the Demikernel API
// to any number of clients, one request per message. Each of --threads
// threads has its own libOS and event loop and listens on the one port
// (SO_REUSEPORT), serving the connections the library hands it; they share
// the table.
//
//   kv_server [--bind ADDR] [--port P] [--threads N] [--max_bytes N]
//             [--max_keys N] [--max_unfinished_replies N]
#include <demi/libos.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "protocol.h"
#include "rdma/status_util.h"
#include "tools/demi_tool.h"
#include "tools/message_server.h"
#include "tools/program_info.h"
#include "tools/thread_group.h"

ABSL_FLAG(std::string, bind, "0.0.0.0", "address to listen on");
ABSL_FLAG(int, port, 7000, "port to listen on");
ABSL_FLAG(int, threads, 1,
          "serving threads, each with its own libOS, all listening on --port "
          "(SO_REUSEPORT: the library spreads connections over them); they "
          "share the table");
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

using demi::tools::ThreadGroup;

// Set by SIGTERM and SIGINT, on whichever thread takes them; every serving
// thread watches it.
static_assert(std::atomic<bool>::is_always_lock_free,
              "stored by a signal handler");
std::atomic<bool> stop_requested{false};

// A reply in the calling thread's library memory; no segments when there
// is none.
demi_sgarray_t NewReply(Code code, uint64_t id, absl::string_view value) {
  demi_sgarray_t sga = demi_sgaalloc(ResponseSize(value));
  if (sga.sga_numsegs != 0) {
    WriteResponse(code, id, value,
                  static_cast<char*>(sga.sga_segs[0].sgaseg_buf));
  }
  return sga;
}

// The table, shared by the serving threads: a GET sees the PUTs made on
// any connection, whichever thread serves it. Bounded by its limits.
// Thread-safe: one std::mutex (not absl::Mutex, which ThreadSanitizer
// cannot see in the system's absl) guards it.
class Table {
 public:
  Table(uint64_t max_bytes, uint64_t max_keys)
      : max_bytes_(max_bytes), max_keys_(max_keys) {}

  // Executes `request`; returns its reply, as NewReply does.
  demi_sgarray_t Execute(const Request& request) {
    // A GET's reply is written under the lock: the value is copied once,
    // straight into the message, and cannot change meanwhile.
    std::lock_guard<std::mutex> lock(mutex_);
    switch (request.op) {
      case Op::kGet: {
        auto it = table_.find(request.key);
        if (it == table_.end())
          return NewReply(Code::kNotFound, request.id, {});
        return NewReply(Code::kOk, request.id, it->second);
      }
      case Op::kPut:
        return NewReply(Put(request.key, request.value), request.id, {});
      case Op::kDelete: {
        auto it = table_.find(request.key);
        if (it == table_.end()) {
          return NewReply(Code::kNotFound, request.id, {});
        }
        bytes_ -= it->first.size() + it->second.size();
        table_.erase(it);
        return NewReply(Code::kOk, request.id, {});
      }
    }
    return NewReply(Code::kBadRequest, request.id, {});
  }

  size_t size() {
    std::lock_guard<std::mutex> lock(mutex_);
    return table_.size();
  }
  uint64_t bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return bytes_;
  }

 private:
  // mutex_ held.
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

  const uint64_t max_bytes_;
  const uint64_t max_keys_;
  std::mutex mutex_;
  absl::flat_hash_map<std::string, std::string> table_;  // Guarded by mutex_.
  uint64_t bytes_ = 0;  // Guarded by mutex_: keys and values in table_.
};

// One serving thread's connections and their requests; replies go out on
// the request's queue. Bounded per connection by the replies it has not
// taken yet (the thread stops reading a connection at the limit). Not
// thread-safe: only its thread, whose queues these are, uses it while it
// serves; the counts are read once it has ended.
class Server {
 public:
  Server(Table* table, int max_unfinished)
      : table_(table), max_unfinished_(max_unfinished) {}

  void OnAccept(int) { ++accepted_; }
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
    demi_sgarray_t reply;
    if (sga.sga_numsegs != 1) {
      reply = NewReply(Code::kBadRequest, 0, {});
    } else {
      absl::StatusOr<Request> request = ParseRequest(absl::string_view(
          static_cast<const char*>(sga.sga_segs[0].sgaseg_buf),
          sga.sga_segs[0].sgaseg_len));
      reply = request.ok() ? table_->Execute(*request)
                           : NewReply(Code::kBadRequest, 0, {});
    }
    demi_sgafree(&sga);
    return Push(qd, reply);
  }

  int accepted() const { return accepted_; }
  uint64_t requests() const { return requests_; }

 private:
  // False when the reply cannot go out (out of library memory, or the
  // connection failed): the client is dropped rather than left waiting.
  bool Push(int qd, demi_sgarray_t& reply) {
    if (reply.sga_numsegs == 0) return false;
    demi_qtoken_t qt = 0;
    int err = demi_push(&qt, qd, &reply);
    demi_sgafree(&reply);  // The push keeps what it needs.
    if (err == 0) ++unfinished_[qd];
    return err == 0;
  }

  Table* const table_;  // Borrowed: shared by the threads.
  const int max_unfinished_;
  absl::flat_hash_map<int, int> unfinished_;  // Replies pushed, not done.
  int accepted_ = 0;
  uint64_t requests_ = 0;
};

// Thread `index` of `group`: listens on `addr` and serves until stopped.
// Thread 0 sets `*listening` once every thread listens.
absl::Status Serve(ThreadGroup& group, int index, const sockaddr_in& addr,
                   Server& server, bool* listening) {
  DEMI_ASSIGN_OR_RETURN(
      int listener, group.size() == 1 ? demi::tools::Listen(addr, 128)
                                      : demi::tools::ListenShared(addr, 128));
  // Announced once every thread listens: a client that saw it may reach
  // any of them.
  if (!group.Sync()) {
    demi_close(listener);
    return ThreadGroup::Cancelled();
  }
  if (index == 0) {
    *listening = true;
    std::string spread =
        group.size() == 1 ? "" : absl::StrCat(" (", group.size(), " threads)");
    std::fprintf(stderr, "kv_server: listening on %s%s\n",
                 demi::tools::AddrString(addr).c_str(), spread.c_str());
  }
  demi::tools::ServeOptions options;
  options.stop = group.stop();
  options.on_accept = [&](int qd) { server.OnAccept(qd); };
  options.can_read = [&](int qd) { return server.CanRead(qd); };
  options.on_push_done = [&](int qd) { server.OnReplyDone(qd); };
  absl::Status status = demi::tools::ServeMessages(
      listener, options,
      [&](int qd, demi_sgarray_t& sga) { return server.OnMessage(qd, sga); },
      [&](int qd, int) { server.OnEnd(qd); });
  demi_close(listener);
  return status;
}

absl::Status Main() {
  int threads = absl::GetFlag(FLAGS_threads);
  if (threads < 1) {
    return absl::InvalidArgumentError("--threads must be at least 1");
  }
  DEMI_RETURN_IF_ERROR(demi::tools::Init());
  DEMI_ASSIGN_OR_RETURN(sockaddr_in addr,
                        demi::tools::ParseAddr(absl::GetFlag(FLAGS_bind),
                                               absl::GetFlag(FLAGS_port)));
  Table table(absl::GetFlag(FLAGS_max_bytes), absl::GetFlag(FLAGS_max_keys));
  int max_unfinished = std::max(1, absl::GetFlag(FLAGS_max_unfinished_replies));
  std::vector<Server> servers(threads, Server(&table, max_unfinished));
  // A thread that fails stops the others through stop_requested.
  ThreadGroup group(threads, &stop_requested);
  bool listening = false;
  absl::Status status = group.Run([&](int index) {
    return Serve(group, index, addr, servers[index], &listening);
  });
  if (!listening) return status;
  uint64_t requests = 0;
  for (int i = 0; i < threads; ++i) {
    requests += servers[i].requests();
    if (threads > 1) {
      std::fprintf(stderr,
                   "kv_server: thread %d: %d connections accepted, %llu "
                   "requests\n",
                   i, servers[i].accepted(),
                   static_cast<unsigned long long>(servers[i].requests()));
    }
  }
  std::fprintf(stderr,
               "kv_server: %zu keys (%llu bytes), %llu requests, stopping\n",
               table.size(), static_cast<unsigned long long>(table.bytes()),
               static_cast<unsigned long long>(requests));
  return status;
}

}  // namespace
}  // namespace kv

int main(int argc, char** argv) {
  demi::tools::ParseProgramCommandLine(
      argc, argv,
      {"demi-kv-server", "in-memory key-value server over RDMA",
       "demi-kv-server [--bind ADDR] [--port P] [--threads N] "
       "[--max_bytes N] [--max_keys N]",
       "Serves an in-memory table of keys and values to any number of "
       "clients (demi-kv-loadgen, or a program built on the kv client "
       "library) through the Demikernel API over RDMA, one request per "
       "message: GET, PUT and DELETE.\n\n"
       "With --threads N, N threads each run their own libOS and event loop "
       "and listen on the one port (SO_REUSEPORT); the library hands each "
       "incoming connection to one of them, and they share the table. "
       "SIGTERM or SIGINT stops the server, which then prints what it "
       "served.",
       "demi-kv-loadgen(1)"});
  std::signal(SIGTERM, [](int) { kv::stop_requested.store(true); });
  std::signal(SIGINT, [](int) { kv::stop_requested.store(true); });
  absl::Status status = kv::Main();
  if (!status.ok()) {
    std::fprintf(stderr, "kv_server: %s\n",
                 std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
