// A raw-verbs reproducer for the silent send-queue stall the soak found on
// rxe under loss (RELIABILITY.md, "Problems found" 1): a connection's
// posted work requests neither completed nor failed for many seconds,
// although RC retries should fail the QP within about 2 s.
//
// It runs the library's rendezvous pattern, without the library, so that
// variants can be compared: the client binds a type-2 memory window over a
// registered buffer (optional, signalled or not), SENDs an announcement
// naming it, the server RDMA READs through it and SENDs "done"; now and
// then the client posts a zero-length RDMA WRITE, as the keepalive does.
// Every work request that neither completes nor fails within --stall_s is
// reported as a STALL; its connection is then abandoned (left as it is, so
// that tearing a stuck QP down cannot hang the run) and a new one is made.
//
// What it showed (rxe in the Debian 6.1.0-57 guest, netem 1-3% loss and
// 10 ms delay on both VMs): the stall needs a memory window bind posted
// behind a work request that is not yet acknowledged (the keepalive probe,
// or any SEND), and a retry of that request. The queue then stops for good
// with the QP still in RTS: the oldest request, the bind and everything
// after it never complete nor fail. Signalled or unsignalled binds, 64 KiB
// or 4 KiB READs: the same. Without a bind, without a request ahead of the
// bind (--probe_ms=0), or with --bind_when_idle: no stall. Upstream rxe's
// req_retry() restarts at the oldest unacknowledged request and runs the
// local operations after it again; a type-2 window bound once cannot be
// bound again (its rkey has changed, it is no longer free), so the re-run
// fails inside the requester. That is the likely path; the counts are in
// the commit that added this file.
//
// Host 0 serves, host 1 is the client (testing/run_on_rdma.sh --hosts 2):
//   rxe_stall_repro --server ADDR [--port P] --bind none|unsignaled|signaled
//                   [--read_size N] [--connections N] [--seconds S]
// Both print one RESULT line at the end.
#include <arpa/inet.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <poll.h>
#include <rdma/rdma_cma.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

ABSL_FLAG(std::string, role, "",
          "server or client (default: from "
          "DEMI_TEST_HOST, 0 serves)");
ABSL_FLAG(std::string, server, "", "the server's address");
ABSL_FLAG(int, port, 7100, "the server's port");
ABSL_FLAG(std::string, bind, "unsignaled",
          "memory window bind before each announcement: none (the buffer's "
          "MR itself allows remote reads), unsignaled (as the library "
          "does) or signaled");
ABSL_FLAG(bool, window_per_iteration, true,
          "allocate a fresh window for each rendezvous and deallocate it "
          "after the done, as the library does; false keeps one window per "
          "connection bound once (no rebind)");
ABSL_FLAG(bool, bind_when_idle, false,
          "post a bind only when every earlier work request of the QP has "
          "completed, so that no retried request ever precedes it");
ABSL_FLAG(bool, bind_fence, false,
          "set IBV_SEND_FENCE on each bind (rxe fences only on outstanding "
          "READs and atomics, so this is expected not to help)");
ABSL_FLAG(bool, filler_send, false,
          "post a small signalled SEND (which the server ignores) right "
          "before each bind, so that a retried request precedes it");
ABSL_FLAG(int, read_size, 65536, "bytes the server READs per rendezvous");
ABSL_FLAG(int, read_piece, 262144, "largest single READ");
ABSL_FLAG(int, connections, 4, "client connections running the loop");
ABSL_FLAG(double, seconds, 60, "how long the client loops");
ABSL_FLAG(double, probe_ms, 300,
          "a zero-length RDMA WRITE (the keepalive probe) every this many "
          "ms on each connection, if none is outstanding; 0: none");
ABSL_FLAG(std::string, probe_op, "write0",
          "the probe: write0 (a zero-length RDMA WRITE, as the library's "
          "keepalive) or read0 (a zero-length RDMA READ)");
ABSL_FLAG(double, stall_s, 10,
          "a work request neither completed nor failed after this long is a "
          "stall");
ABSL_FLAG(int, ack_timeout, 16, "local ACK timeout exponent (as the library)");
ABSL_FLAG(int, retry_count, 6, "RC retry count (as the library)");

namespace {

enum MsgType : uint32_t { kAnnounce = 1, kDone = 2, kBye = 3, kFiller = 4 };

struct Msg {
  uint32_t type;
  uint32_t iter;
  uint64_t addr;
  uint32_t rkey;
  uint32_t len;
};

constexpr int kRecvDepth = 32;
constexpr int kSendDepth = 128;
constexpr int kReadDepth = 16;
// Receive wr_ids carry this bit: an error completion's opcode is undefined,
// so only the wr_id tells a failed receive from a failed send.
constexpr uint64_t kRecvBit = uint64_t{1} << 63;

enum class Op { kBind, kSend, kRead, kProbe, kRecv };

const char* OpName(Op op) {
  switch (op) {
    case Op::kBind:
      return "BIND_MW";
    case Op::kSend:
      return "SEND";
    case Op::kRead:
      return "RDMA_READ";
    case Op::kProbe:
      return absl::GetFlag(FLAGS_probe_op) == "read0" ? "READ0" : "WRITE0";
    case Op::kRecv:
      return "RECV";
  }
  return "?";
}

struct Posted {
  Op op;
  bool signaled;
  uint32_t iter;
  absl::Time at;
};

double Now() { return absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()); }

void Die(const std::string& what) {
  std::fprintf(stderr, "rxe_stall_repro: %s: %s\n", what.c_str(),
               std::strerror(errno));
  std::fflush(stdout);
  std::exit(2);
}

// Totals over the run, printed in the RESULT line.
struct Totals {
  uint64_t iterations = 0;
  uint64_t probes = 0;
  uint64_t stalls = 0;
  uint64_t failures = 0;
  uint64_t late = 0;  // Completions of stalled connections after the stall.
  std::map<std::string, uint64_t> stalled_heads;  // Oldest stuck op: count.
  std::map<std::string, uint64_t> failed_status;
};

struct Conn {
  int index = 0;
  rdma_cm_id* id = nullptr;
  rdma_event_channel* channel = nullptr;  // Client: its own.
  ibv_pd* pd = nullptr;
  ibv_cq* cq = nullptr;
  ibv_qp* qp = nullptr;
  ibv_mr* msg_mr = nullptr;
  std::vector<Msg> recv_bufs;
  std::vector<char> data;  // Client: read source; server: read target.
  ibv_mr* data_mr = nullptr;
  ibv_mw* mw = nullptr;
  bool window_bound = false;  // Per-connection window: bound once.
  bool established = false;
  bool dead = false;     // Stalled or failed: abandoned.
  bool stalled = false;  // Abandoned for a stall: still watched.
  uint64_t next_wr_id = 1;
  std::map<uint64_t, Posted> posted;  // Send queue, in posting order.
  // Client: the rendezvous in flight.
  bool in_rendezvous = false;
  bool announce_completed = false;
  uint64_t announce_wr_id = 0;  // Not the filler's: its own completion.
  bool done_received = false;
  uint32_t iter = 0;
  absl::Time next_probe;
  bool probing = false;
  // Server: READ pieces of the current announcement still outstanding.
  int reads_left = 0;
  uint32_t serving_iter = 0;
};

void SetupResources(Conn& c, bool server) {
  c.pd = ibv_alloc_pd(c.id->verbs);
  if (c.pd == nullptr) Die("ibv_alloc_pd");
  c.cq =
      ibv_create_cq(c.id->verbs, kSendDepth + kRecvDepth, nullptr, nullptr, 0);
  if (c.cq == nullptr) Die("ibv_create_cq");
  ibv_qp_init_attr attr = {};
  attr.send_cq = c.cq;
  attr.recv_cq = c.cq;
  attr.qp_type = IBV_QPT_RC;
  attr.cap.max_send_wr = kSendDepth;
  attr.cap.max_recv_wr = kRecvDepth;
  attr.cap.max_send_sge = 1;
  attr.cap.max_recv_sge = 1;
  attr.cap.max_inline_data = 64;
  if (rdma_create_qp(c.id, c.pd, &attr) != 0) Die("rdma_create_qp");
  c.qp = c.id->qp;
  c.recv_bufs.resize(kRecvDepth);
  c.msg_mr = ibv_reg_mr(c.pd, c.recv_bufs.data(), kRecvDepth * sizeof(Msg),
                        IBV_ACCESS_LOCAL_WRITE);
  if (c.msg_mr == nullptr) Die("ibv_reg_mr(msg)");
  c.data.assign(absl::GetFlag(FLAGS_read_size), 'x');
  int access = IBV_ACCESS_LOCAL_WRITE;
  std::string bind = absl::GetFlag(FLAGS_bind);
  if (!server) {
    access |= bind == "none" ? IBV_ACCESS_REMOTE_READ : IBV_ACCESS_MW_BIND;
  }
  c.data_mr = ibv_reg_mr(c.pd, c.data.data(), c.data.size(), access);
  if (c.data_mr == nullptr) Die("ibv_reg_mr(data)");
  for (int i = 0; i < kRecvDepth; ++i) {
    ibv_sge sge = {reinterpret_cast<uintptr_t>(&c.recv_bufs[i]), sizeof(Msg),
                   c.msg_mr->lkey};
    ibv_recv_wr wr = {};
    wr.wr_id = kRecvBit | i;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    ibv_recv_wr* bad = nullptr;
    if (ibv_post_recv(c.qp, &wr, &bad) != 0) Die("ibv_post_recv");
  }
}

void RepostRecv(Conn& c, uint64_t i) {
  ibv_sge sge = {reinterpret_cast<uintptr_t>(&c.recv_bufs[i]), sizeof(Msg),
                 c.msg_mr->lkey};
  ibv_recv_wr wr = {};
  wr.wr_id = kRecvBit | i;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  ibv_recv_wr* bad = nullptr;
  if (ibv_post_recv(c.qp, &wr, &bad) != 0) Die("ibv_post_recv");
}

// Posts `wr` and remembers it; unsignalled requests are retired by the
// next signalled completion (RC completes in order).
bool Post(Conn& c, ibv_send_wr& wr, Op op, bool signaled) {
  wr.wr_id = c.next_wr_id++;
  if (signaled) wr.send_flags |= IBV_SEND_SIGNALED;
  ibv_send_wr* bad = nullptr;
  int rc = ibv_post_send(c.qp, &wr, &bad);
  if (rc != 0) {
    std::printf("%.3f conn %d: ibv_post_send(%s): %s\n", Now(), c.index,
                OpName(op), std::strerror(rc));
    return false;
  }
  c.posted[wr.wr_id] = {op, signaled, c.iter, absl::Now()};
  return true;
}

bool SendMsg(Conn& c, const Msg& m) {
  ibv_sge sge = {reinterpret_cast<uintptr_t>(&m), sizeof(m), 0};
  ibv_send_wr wr = {};
  wr.opcode = IBV_WR_SEND;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  // Inline, as the library sends its small headers: nothing to keep.
  wr.send_flags = IBV_SEND_INLINE;
  return Post(c, wr, Op::kSend, true);
}

std::string QpStateName(ibv_qp* qp) {
  ibv_qp_attr attr = {};
  ibv_qp_init_attr init = {};
  if (ibv_query_qp(qp, &attr, IBV_QP_STATE, &init) != 0) return "?";
  static const char* const kNames[] = {"RESET", "INIT", "RTR", "RTS",
                                       "SQD",   "SQE",  "ERR"};
  return attr.qp_state <= IBV_QPS_ERR ? kNames[attr.qp_state] : "?";
}

// Reports and abandons a connection whose oldest work request is older
// than --stall_s.
void CheckStall(Conn& c, Totals& t, const char* side) {
  if (c.dead || c.posted.empty()) return;
  absl::Duration limit = absl::Seconds(absl::GetFlag(FLAGS_stall_s));
  const Posted& oldest = c.posted.begin()->second;
  if (absl::Now() - oldest.at < limit) return;
  std::string list;
  for (const auto& [wr_id, p] : c.posted) {
    absl::StrAppendFormat(&list, " %s%s(iter %u, %.1fs)", OpName(p.op),
                          p.signaled ? "" : "/unsig", p.iter,
                          absl::ToDoubleSeconds(absl::Now() - p.at));
  }
  std::printf(
      "%.3f STALL %s conn %d (qp %u): qp state %s, %zu outstanding:%s\n", Now(),
      side, c.index, c.qp->qp_num, QpStateName(c.qp).c_str(), c.posted.size(),
      list.c_str());
  std::fflush(stdout);
  ++t.stalls;
  c.stalled = true;
  ++t.stalled_heads[absl::StrCat(OpName(oldest.op),
                                 oldest.signaled ? "" : "/unsig")];
  c.dead = true;
}

void Fail(Conn& c, Totals& t, const ibv_wc& wc, const char* side) {
  std::string op = "RECV";
  auto it = c.posted.find(wc.wr_id);
  if (!(wc.wr_id & kRecvBit) && it != c.posted.end()) {
    op = OpName(it->second.op);
  }
  if (!c.dead) {
    std::printf("%.3f FAIL %s conn %d (qp %u): %s status %s\n", Now(), side,
                c.index, c.qp->qp_num, op.c_str(),
                ibv_wc_status_str(wc.status));
    std::fflush(stdout);
    ++t.failures;
    ++t.failed_status[ibv_wc_status_str(wc.status)];
  }
  c.dead = true;
}

// Retires posted entries up to and including `wr_id`.
void Retire(Conn& c, uint64_t wr_id) {
  c.posted.erase(c.posted.begin(), c.posted.upper_bound(wr_id));
}

// ---- client ---------------------------------------------------------------

rdma_cm_event* WaitEvent(rdma_event_channel* ch, double seconds) {
  pollfd pfd = {ch->fd, POLLIN, 0};
  if (poll(&pfd, 1, static_cast<int>(seconds * 1000)) <= 0) return nullptr;
  rdma_cm_event* ev = nullptr;
  if (rdma_get_cm_event(ch, &ev) != 0) return nullptr;
  return ev;
}

// Connects `c` (fresh cm id and resources); retries while the server is not
// listening yet.
bool ClientConnect(Conn& c, const sockaddr_in& dst) {
  for (int attempt = 0; attempt < 60; ++attempt) {
    c.channel = rdma_create_event_channel();
    if (c.channel == nullptr) Die("rdma_create_event_channel");
    if (rdma_create_id(c.channel, &c.id, nullptr, RDMA_PS_TCP) != 0) {
      Die("rdma_create_id");
    }
    sockaddr_in d = dst;
    bool ok = rdma_resolve_addr(c.id, nullptr, reinterpret_cast<sockaddr*>(&d),
                                5000) == 0;
    rdma_cm_event* ev = ok ? WaitEvent(c.channel, 10) : nullptr;
    ok = ev != nullptr && ev->event == RDMA_CM_EVENT_ADDR_RESOLVED;
    if (ev != nullptr) rdma_ack_cm_event(ev);
    uint8_t timeout = absl::GetFlag(FLAGS_ack_timeout);
    ok = ok && rdma_set_option(c.id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT,
                               &timeout, sizeof(timeout)) == 0;
    ok = ok && rdma_resolve_route(c.id, 5000) == 0;
    ev = ok ? WaitEvent(c.channel, 10) : nullptr;
    ok = ev != nullptr && ev->event == RDMA_CM_EVENT_ROUTE_RESOLVED;
    if (ev != nullptr) rdma_ack_cm_event(ev);
    if (ok) {
      SetupResources(c, /*server=*/false);
      rdma_conn_param param = {};
      param.responder_resources = kReadDepth;
      param.initiator_depth = kReadDepth;
      param.retry_count = absl::GetFlag(FLAGS_retry_count);
      param.rnr_retry_count = 6;
      ok = rdma_connect(c.id, &param) == 0;
      ev = ok ? WaitEvent(c.channel, 10) : nullptr;
      ok = ev != nullptr && ev->event == RDMA_CM_EVENT_ESTABLISHED;
      if (ev != nullptr) rdma_ack_cm_event(ev);
      if (ok) {
        c.established = true;
        return true;
      }
      // Not listening yet (rejected): start over with fresh resources.
      rdma_destroy_qp(c.id);
      ibv_dereg_mr(c.data_mr);
      ibv_dereg_mr(c.msg_mr);
      ibv_destroy_cq(c.cq);
      ibv_dealloc_pd(c.pd);
      c.qp = nullptr;
    }
    rdma_destroy_id(c.id);
    rdma_destroy_event_channel(c.channel);
    c.id = nullptr;
    usleep(1000 * 1000);
  }
  return false;
}

// Starts one rendezvous: (bind,) announce.
bool StartRendezvous(Conn& c) {
  std::string bind = absl::GetFlag(FLAGS_bind);
  ++c.iter;
  Msg m = {};
  m.type = kAnnounce;
  m.iter = c.iter;
  m.addr = reinterpret_cast<uintptr_t>(c.data.data());
  m.len = static_cast<uint32_t>(c.data.size());
  if (bind == "none") {
    m.rkey = c.data_mr->rkey;
  } else {
    bool per_iteration = absl::GetFlag(FLAGS_window_per_iteration);
    if (c.mw == nullptr) {
      c.mw = ibv_alloc_mw(c.pd, IBV_MW_TYPE_2);
      if (c.mw == nullptr) Die("ibv_alloc_mw");
    }
    if (per_iteration || !c.window_bound) {
      if (absl::GetFlag(FLAGS_filler_send)) {
        Msg filler = {};
        filler.type = kFiller;
        filler.iter = c.iter;
        if (!SendMsg(c, filler)) return false;
      }
      ibv_send_wr wr = {};
      wr.opcode = IBV_WR_BIND_MW;
      wr.bind_mw.mw = c.mw;
      wr.bind_mw.rkey = ibv_inc_rkey(c.mw->rkey);
      // Addressed by virtual address, as the library binds (push_builder.cc).
      wr.bind_mw.bind_info.mr = c.data_mr;
      wr.bind_mw.bind_info.addr = m.addr;
      wr.bind_mw.bind_info.length = m.len;
      wr.bind_mw.bind_info.mw_access_flags = IBV_ACCESS_REMOTE_READ;
      if (absl::GetFlag(FLAGS_bind_fence)) wr.send_flags = IBV_SEND_FENCE;
      if (!Post(c, wr, Op::kBind, bind == "signaled")) return false;
      c.mw->rkey = wr.bind_mw.rkey;
      c.window_bound = true;
    }
    m.rkey = c.mw->rkey;
  }
  c.in_rendezvous = true;
  c.announce_completed = false;
  c.done_received = false;
  if (!SendMsg(c, m)) return false;
  c.announce_wr_id = c.next_wr_id - 1;
  return true;
}

void FinishRendezvousIfDone(Conn& c, Totals& t) {
  if (!c.in_rendezvous || !c.announce_completed || !c.done_received) return;
  c.in_rendezvous = false;
  ++t.iterations;
  // The library deallocates the window once the peer has read it.
  if (absl::GetFlag(FLAGS_bind) != "none" &&
      absl::GetFlag(FLAGS_window_per_iteration)) {
    ibv_dealloc_mw(c.mw);
    c.mw = nullptr;
  }
}

void ClientPoll(Conn& c, Totals& t) {
  ibv_wc wcs[16];
  int n = ibv_poll_cq(c.cq, 16, wcs);
  for (int i = 0; i < n; ++i) {
    const ibv_wc& wc = wcs[i];
    bool recv = wc.wr_id & kRecvBit;
    if (wc.status != IBV_WC_SUCCESS) {
      if (!recv) Retire(c, wc.wr_id);
      Fail(c, t, wc, "client");
      continue;
    }
    if (recv) {
      uint64_t slot = wc.wr_id & ~kRecvBit;
      Msg m = c.recv_bufs[slot];
      RepostRecv(c, slot);
      if (m.type == kDone && m.iter == c.iter) c.done_received = true;
    } else {
      auto it = c.posted.find(wc.wr_id);
      if (it != c.posted.end()) {
        if (wc.wr_id == c.announce_wr_id) c.announce_completed = true;
        if (it->second.op == Op::kProbe) {
          c.probing = false;
          ++t.probes;
        }
      }
      Retire(c, wc.wr_id);
    }
  }
  if (c.dead) return;
  FinishRendezvousIfDone(c, t);
}

// Polls a connection abandoned for a stall: whether its requests ever
// complete or fail later tells a slow QP from a wedged one.
void WatchStalled(Conn& c, Totals& t) {
  ibv_wc wcs[16];
  int n = ibv_poll_cq(c.cq, 16, wcs);
  for (int i = 0; i < n; ++i) {
    const ibv_wc& wc = wcs[i];
    std::string op = "RECV";
    double age = 0;
    auto it = c.posted.find(wc.wr_id);
    if (it != c.posted.end()) {
      op = OpName(it->second.op);
      age = absl::ToDoubleSeconds(absl::Now() - it->second.at);
    }
    std::printf(
        "%.3f LATE client conn %d (qp %u): %s %s, %.1fs after posting\n", Now(),
        c.index, c.qp->qp_num, op.c_str(), ibv_wc_status_str(wc.status), age);
    ++t.late;
    if (!(wc.wr_id & kRecvBit)) Retire(c, wc.wr_id);
  }
}

void ClientStep(Conn& c) {
  if (c.dead) return;
  // With --bind_when_idle a rendezvous starts only on an empty send queue.
  bool may_start = !(absl::GetFlag(FLAGS_bind_when_idle) &&
                     absl::GetFlag(FLAGS_bind) != "none" && !c.posted.empty());
  if (!c.in_rendezvous && may_start && !StartRendezvous(c)) {
    c.dead = true;
    return;
  }
  double probe_ms = absl::GetFlag(FLAGS_probe_ms);
  if (probe_ms > 0 && !c.probing && absl::Now() >= c.next_probe) {
    ibv_send_wr wr = {};
    // Zero bytes: no address, no rkey.
    wr.opcode = absl::GetFlag(FLAGS_probe_op) == "read0" ? IBV_WR_RDMA_READ
                                                         : IBV_WR_RDMA_WRITE;
    if (!Post(c, wr, Op::kProbe, true)) {
      c.dead = true;
      return;
    }
    c.probing = true;
    c.next_probe = absl::Now() + absl::Milliseconds(probe_ms);
  }
}

int RunClient(const std::string& server) {
  sockaddr_in dst = {};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(absl::GetFlag(FLAGS_port));
  if (inet_pton(AF_INET, server.c_str(), &dst.sin_addr) != 1) {
    std::fprintf(stderr, "rxe_stall_repro: bad --server %s\n", server.c_str());
    return 2;
  }
  Totals t;
  std::deque<std::unique_ptr<Conn>> all;  // Abandoned ones stay allocated.
  std::vector<Conn*> live;
  std::vector<Conn*> stalled;
  int next_index = 0;
  auto open = [&]() -> Conn* {
    all.push_back(std::make_unique<Conn>());
    Conn* c = all.back().get();
    c->index = next_index++;
    if (!ClientConnect(*c, dst)) {
      std::fprintf(stderr, "rxe_stall_repro: cannot connect to %s\n",
                   server.c_str());
      std::exit(2);
    }
    c->next_probe =
        absl::Now() + absl::Milliseconds(absl::GetFlag(FLAGS_probe_ms));
    return c;
  };
  for (int i = 0; i < absl::GetFlag(FLAGS_connections); ++i) {
    live.push_back(open());
  }
  std::printf("%.3f client: %zu connections up\n", Now(), live.size());
  std::fflush(stdout);
  absl::Time end = absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_seconds));
  absl::Time next_report = absl::Now() + absl::Seconds(10);
  while (absl::Now() < end) {
    bool any = false;
    for (Conn*& c : live) {
      uint64_t before = t.iterations;
      ClientPoll(*c, t);
      ClientStep(*c);
      CheckStall(*c, t, "client");
      any |= t.iterations != before;
      // An abandoned connection is replaced, so the loop keeps its width.
      if (c->dead) {
        if (c->stalled) stalled.push_back(c);
        c = open();
      }
    }
    for (Conn* c : stalled) WatchStalled(*c, t);
    if (absl::Now() >= next_report) {
      std::printf(
          "%.3f client: %llu rendezvous, %llu probes, %llu stalls, "
          "%llu failures\n",
          Now(), static_cast<unsigned long long>(t.iterations),
          static_cast<unsigned long long>(t.probes),
          static_cast<unsigned long long>(t.stalls),
          static_cast<unsigned long long>(t.failures));
      std::fflush(stdout);
      next_report += absl::Seconds(10);
    }
    if (!any) usleep(200);
  }
  // Stalls still in the making: wait for them to show before counting.
  absl::Time grace = absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_stall_s));
  while (absl::Now() < grace) {
    bool pending = false;
    for (Conn* c : live) {
      ClientPoll(*c, t);
      CheckStall(*c, t, "client");
      pending |= !c->dead && !c->posted.empty();
    }
    if (!pending) break;
    usleep(1000);
  }
  for (Conn* c : live) {
    if (c->dead) continue;
    Msg bye = {};
    bye.type = kBye;
    SendMsg(*c, bye);
    break;
  }
  usleep(500 * 1000);
  for (Conn* c : live) {
    if (c->stalled) stalled.push_back(c);
  }
  for (Conn* c : stalled) {
    WatchStalled(*c, t);
    if (c->posted.empty()) continue;
    std::printf(
        "%.3f STILL client conn %d (qp %u): %zu outstanding, the "
        "oldest (%s) posted %.1fs ago; qp state %s\n",
        Now(), c->index, c->qp->qp_num, c->posted.size(),
        OpName(c->posted.begin()->second.op),
        absl::ToDoubleSeconds(absl::Now() - c->posted.begin()->second.at),
        QpStateName(c->qp).c_str());
  }
  std::string heads, failed;
  for (const auto& [k, v] : t.stalled_heads)
    absl::StrAppend(&heads, " ", k, "=", v);
  for (const auto& [k, v] : t.failed_status)
    absl::StrAppend(&failed, " ", k, "=", v);
  std::printf(
      "RESULT client bind=%s fence=%d when_idle=%d filler=%d "
      "window_per_iteration=%d "
      "read_size=%d "
      "probe=%s/%gms connections=%d seconds=%g: rendezvous %llu probes %llu "
      "stalls %llu "
      "[%s ] late %llu failures %llu [%s ] connections_made %d\n",
      absl::GetFlag(FLAGS_bind).c_str(),
      absl::GetFlag(FLAGS_bind_fence) ? 1 : 0,
      absl::GetFlag(FLAGS_bind_when_idle) ? 1 : 0,
      absl::GetFlag(FLAGS_filler_send) ? 1 : 0,
      absl::GetFlag(FLAGS_window_per_iteration) ? 1 : 0,
      absl::GetFlag(FLAGS_read_size), absl::GetFlag(FLAGS_probe_op).c_str(),
      absl::GetFlag(FLAGS_probe_ms), absl::GetFlag(FLAGS_connections),
      absl::GetFlag(FLAGS_seconds),
      static_cast<unsigned long long>(t.iterations),
      static_cast<unsigned long long>(t.probes),
      static_cast<unsigned long long>(t.stalls), heads.c_str(),
      static_cast<unsigned long long>(t.late),
      static_cast<unsigned long long>(t.failures), failed.c_str(), next_index);
  std::fflush(stdout);
  // Abandoned QPs are left to process exit: a stuck one may not tear down.
  std::_Exit(0);
}

// ---- server ---------------------------------------------------------------

void ServerPoll(Conn& c, Totals& t, bool* bye) {
  ibv_wc wcs[16];
  int n = ibv_poll_cq(c.cq, 16, wcs);
  for (int i = 0; i < n; ++i) {
    const ibv_wc& wc = wcs[i];
    bool recv = wc.wr_id & kRecvBit;
    if (wc.status != IBV_WC_SUCCESS) {
      if (!recv) Retire(c, wc.wr_id);
      // Flushes after the client abandoned or left: not the server's own.
      if (wc.status != IBV_WC_WR_FLUSH_ERR) Fail(c, t, wc, "server");
      c.dead = true;
      continue;
    }
    if (recv) {
      uint64_t slot = wc.wr_id & ~kRecvBit;
      Msg m = c.recv_bufs[slot];
      RepostRecv(c, slot);
      if (m.type == kBye) *bye = true;
      if (m.type != kAnnounce || c.dead) continue;
      c.iter = c.serving_iter = m.iter;
      uint32_t piece = absl::GetFlag(FLAGS_read_piece);
      for (uint32_t off = 0; off < m.len; off += piece) {
        uint32_t len = std::min(piece, m.len - off);
        ibv_sge sge = {reinterpret_cast<uintptr_t>(c.data.data() + off), len,
                       c.data_mr->lkey};
        ibv_send_wr wr = {};
        wr.opcode = IBV_WR_RDMA_READ;
        wr.sg_list = &sge;
        wr.num_sge = 1;
        wr.wr.rdma.remote_addr = m.addr + off;
        wr.wr.rdma.rkey = m.rkey;
        if (!Post(c, wr, Op::kRead, true)) {
          c.dead = true;
          break;
        }
        ++c.reads_left;
      }
    } else {
      auto it = c.posted.find(wc.wr_id);
      bool read = it != c.posted.end() && it->second.op == Op::kRead;
      Retire(c, wc.wr_id);
      if (read && --c.reads_left == 0) {
        ++t.iterations;
        Msg done = {};
        done.type = kDone;
        done.iter = c.serving_iter;
        if (!SendMsg(c, done)) c.dead = true;
      }
    }
  }
}

int RunServer(const std::string& addr) {
  rdma_event_channel* ch = rdma_create_event_channel();
  if (ch == nullptr) Die("rdma_create_event_channel");
  fcntl(ch->fd, F_SETFL, fcntl(ch->fd, F_GETFL) | O_NONBLOCK);
  rdma_cm_id* listener = nullptr;
  if (rdma_create_id(ch, &listener, nullptr, RDMA_PS_TCP) != 0) {
    Die("rdma_create_id");
  }
  sockaddr_in sin = {};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(absl::GetFlag(FLAGS_port));
  if (inet_pton(AF_INET, addr.c_str(), &sin.sin_addr) != 1) {
    std::fprintf(stderr, "rxe_stall_repro: bad --server %s\n", addr.c_str());
    return 2;
  }
  if (rdma_bind_addr(listener, reinterpret_cast<sockaddr*>(&sin)) != 0) {
    Die("rdma_bind_addr");
  }
  if (rdma_listen(listener, 64) != 0) Die("rdma_listen");
  std::printf("%.3f server: listening on %s:%d\n", Now(), addr.c_str(),
              absl::GetFlag(FLAGS_port));
  std::fflush(stdout);
  Totals t;
  std::map<rdma_cm_id*, std::unique_ptr<Conn>> conns;
  int next_index = 0;
  bool bye = false;
  // The client runs --seconds plus its grace; give up well after that.
  absl::Time deadline =
      absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_seconds) + 180);
  while (!bye && absl::Now() < deadline) {
    rdma_cm_event* ev = nullptr;
    while (rdma_get_cm_event(ch, &ev) == 0) {
      if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST) {
        auto c = std::make_unique<Conn>();
        c->index = next_index++;
        c->id = ev->id;
        SetupResources(*c, /*server=*/true);
        uint8_t timeout = absl::GetFlag(FLAGS_ack_timeout);
        rdma_set_option(c->id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT,
                        &timeout, sizeof(timeout));
        rdma_conn_param param = {};
        param.responder_resources = kReadDepth;
        param.initiator_depth = kReadDepth;
        param.retry_count = absl::GetFlag(FLAGS_retry_count);
        param.rnr_retry_count = 6;
        if (rdma_accept(c->id, &param) != 0) Die("rdma_accept");
        conns[ev->id] = std::move(c);
      } else if (ev->event == RDMA_CM_EVENT_ESTABLISHED) {
        auto it = conns.find(ev->id);
        if (it != conns.end()) it->second->established = true;
      } else if (ev->event == RDMA_CM_EVENT_DISCONNECTED) {
        auto it = conns.find(ev->id);
        if (it != conns.end()) it->second->dead = true;
      }
      rdma_ack_cm_event(ev);
    }
    for (auto& [id, c] : conns) {
      if (c->qp == nullptr) continue;
      ServerPoll(*c, t, &bye);
      CheckStall(*c, t, "server");
    }
    usleep(200);
  }
  std::string heads, failed;
  for (const auto& [k, v] : t.stalled_heads)
    absl::StrAppend(&heads, " ", k, "=", v);
  for (const auto& [k, v] : t.failed_status)
    absl::StrAppend(&failed, " ", k, "=", v);
  std::printf(
      "RESULT server: reads done %llu stalls %llu [%s ] failures %llu [%s ] "
      "connections %d%s\n",
      static_cast<unsigned long long>(t.iterations),
      static_cast<unsigned long long>(t.stalls), heads.c_str(),
      static_cast<unsigned long long>(t.failures), failed.c_str(), next_index,
      bye ? "" : " (no bye: timed out)");
  std::fflush(stdout);
  std::_Exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string role = absl::GetFlag(FLAGS_role);
  if (role.empty()) {
    const char* host = std::getenv("DEMI_TEST_HOST");
    role = host != nullptr && std::string(host) == "0" ? "server" : "client";
  }
  std::string server = absl::GetFlag(FLAGS_server);
  if (server.empty() && std::getenv("DEMI_TEST_SERVER_ADDR") != nullptr) {
    server = std::getenv("DEMI_TEST_SERVER_ADDR");
  }
  if (server.empty()) {
    std::fprintf(stderr, "rxe_stall_repro: --server ADDR is required\n");
    return 2;
  }
  return role == "server" ? RunServer(server) : RunClient(server);
}
