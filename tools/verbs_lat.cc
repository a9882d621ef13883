// Ping-pong latency over raw verbs, in a chosen shape: to tell what the
// library's wire shape costs on a device (a shared receive queue, data in
// SEND_WITH_IMM, sends signalled one in N) apart from what the library's
// own code costs. With no shape flags it does what ib_send_lat does.
//
//   verbs_lat --server --bind A [--port P] [--iters N] [--warmup W] [shape]
//   verbs_lat --client A [--port P] [--size S] [--iters N] [--warmup W]
//             [shape]
//   shape: [--ud] [--srq] [--imm] [--signal N] [--inline_size N]
//          [--sges 1|2]
//
// Both sides take the same counts and shape; the server echoes each
// message. The client prints the median and the 99th percentile of half round
// trips in microseconds, as ib_send_lat's t_typical and 99%.
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "rdma/status_util.h"
#include "tools/demi_tool.h"

ABSL_FLAG(bool, server, false, "echo every message back");
ABSL_FLAG(std::string, bind, "", "server: the RDMA address to listen on");
ABSL_FLAG(std::string, client, "", "client: the server's RDMA address");
ABSL_FLAG(int, port, 7400, "the server's port");
ABSL_FLAG(int, size, 64, "message size in bytes (1 to 4096)");
ABSL_FLAG(int, iters, 10000, "round trips measured");
ABSL_FLAG(int, warmup, 1000, "round trips before measuring");
ABSL_FLAG(bool, ud, false, "datagrams (UD, resolved by rdma_cm) instead of RC");
ABSL_FLAG(int, sges, 1, "send each message as this many pieces (1 or 2)");
ABSL_FLAG(bool, srq, false, "receive from a shared receive queue");
ABSL_FLAG(bool, imm, false, "send with immediate data");
ABSL_FLAG(int, signal, 1, "signal one send in N (1: every send)");
ABSL_FLAG(int, inline_size, 236, "most bytes sent inline (0: none)");

namespace {

using demi::rdma::ErrnoError;

constexpr int kDepth = 64;
constexpr int kMaxSize = 4096;
// A UD receive starts with the GRH space.
constexpr int kGrh = 40;
// The most round trips measured, and warming up: the samples are kept.
constexpr int kMaxCount = 10000000;
// How long a side waits for its peer.
constexpr absl::Duration kPatience = absl::Seconds(10);

struct Shape {
  bool ud = false;
  int sges = 1;
  bool srq = false;
  bool imm = false;
  int signal = 1;
  int inline_size = 236;
};

absl::Status Check(int rc, const char* what) {
  return rc == 0 ? absl::OkStatus() : ErrnoError(errno, what);
}

// One side's QP and what it needs; a process holds one, to its end (the
// kernel tears the rest down at exit).
class Side {
 public:
  explicit Side(const Shape& shape) : shape_(shape) {}

  // Creates the CQs, the SRQ or the QP's receive queue, and posts every
  // receive, on `id`'s device.
  absl::Status Create(rdma_cm_id* id) {
    id_ = id;
    pd_ = ibv_alloc_pd(id->verbs);
    send_cq_ = ibv_create_cq(id->verbs, kDepth, nullptr, nullptr, 0);
    recv_cq_ = ibv_create_cq(id->verbs, kDepth, nullptr, nullptr, 0);
    if (pd_ == nullptr || send_cq_ == nullptr || recv_cq_ == nullptr) {
      return ErrnoError(ENOMEM, "pd/cq");
    }
    ibv_port_attr port = {};
    errno = ibv_query_port(id->verbs, id->port_num, &port);
    DEMI_RETURN_IF_ERROR(Check(errno, "ibv_query_port"));
    mtu_ = 128 << port.active_mtu;  // IBV_MTU_256 is 1.
    memory_.assign(size_t{kDepth + 1} * kMaxSize, std::byte{0});
    mr_ =
        ibv_reg_mr(pd_, memory_.data(), memory_.size(), IBV_ACCESS_LOCAL_WRITE);
    if (mr_ == nullptr) return ErrnoError(errno, "ibv_reg_mr");
    ibv_qp_init_attr attr = {};
    if (shape_.srq) {
      ibv_srq_init_attr srq_attr = {};
      srq_attr.attr.max_wr = kDepth;
      srq_attr.attr.max_sge = 1;
      srq_ = ibv_create_srq(pd_, &srq_attr);
      if (srq_ == nullptr) return ErrnoError(errno, "ibv_create_srq");
      attr.srq = srq_;
    }
    attr.send_cq = send_cq_;
    attr.recv_cq = recv_cq_;
    attr.qp_type = shape_.ud ? IBV_QPT_UD : IBV_QPT_RC;
    attr.cap.max_send_wr = kDepth;
    attr.cap.max_recv_wr = shape_.srq ? 0 : kDepth;
    attr.cap.max_send_sge = shape_.sges;
    attr.cap.max_recv_sge = 1;
    attr.cap.max_inline_data = shape_.inline_size;
    DEMI_RETURN_IF_ERROR(Check(rdma_create_qp(id, pd_, &attr), "create qp"));
    for (int i = 0; i < kDepth; ++i) DEMI_RETURN_IF_ERROR(PostRecv(i));
    return absl::OkStatus();
  }

  // Where datagrams go (UD only): `ah` is owned from now on.
  void SetDestination(ibv_ah* ah, uint32_t qpn, uint32_t qkey) {
    ah_ = ah;
    qpn_ = qpn;
    qkey_ = qkey;
  }
  bool has_destination() const { return ah_ != nullptr; }
  // The largest message: a datagram's path MTU.
  int max_size() const {
    return shape_.ud ? std::min(mtu_, kMaxSize - kGrh) : kMaxSize;
  }
  ibv_pd* pd() const { return pd_; }
  // The last message's completion and (UD) its GRH, copied before its
  // buffer was posted again.
  const ibv_wc& last() const { return last_; }
  ibv_grh* last_grh() { return &last_grh_; }

  // Sends `size` bytes; signalled one in shape.signal, and if `signal`.
  absl::Status Send(int size, bool signal = false) {
    uint32_t first = shape_.sges == 2 ? std::min(size, 16) : size;
    ibv_sge sges[2] = {
        {reinterpret_cast<uintptr_t>(SendBuffer()), first, mr_->lkey},
        {reinterpret_cast<uintptr_t>(SendBuffer() + first),
         static_cast<uint32_t>(size) - first, mr_->lkey}};
    ibv_send_wr wr = {};
    wr.sg_list = sges;
    wr.num_sge = sges[1].length > 0 ? 2 : 1;
    if (shape_.ud) {
      wr.wr.ud.ah = ah_;
      wr.wr.ud.remote_qpn = qpn_;
      wr.wr.ud.remote_qkey = qkey_;
    }
    wr.opcode = shape_.imm ? IBV_WR_SEND_WITH_IMM : IBV_WR_SEND;
    wr.imm_data = 7;
    if (size <= shape_.inline_size) wr.send_flags |= IBV_SEND_INLINE;
    if (++sent_ % shape_.signal == 0 || signal) {
      wr.send_flags |= IBV_SEND_SIGNALED;
      ++signalled_;
    }
    ibv_send_wr* bad = nullptr;
    errno = ibv_post_send(id_->qp, &wr, &bad);
    return Check(errno, "ibv_post_send");
  }

  // Polls until one message has arrived (and reposts its receive), and
  // the send completions out come in as they do; returns its size. Gives
  // up after kPatience.
  absl::StatusOr<int> Receive() {
    ibv_wc wc;
    for (uint64_t polls = 1;; ++polls) {
      DEMI_RETURN_IF_ERROR(PollSends());
      int n = ibv_poll_cq(recv_cq_, 1, &wc);
      if (n < 0 || (n == 1 && (wc.status != IBV_WC_SUCCESS ||
                               (wc.opcode & IBV_WC_RECV) == 0))) {
        return ErrnoError(EIO, "receive completion");
      }
      if (n == 1) {
        last_ = wc;
        if (shape_.ud) {
          std::memcpy(&last_grh_, memory_.data() + wc.wr_id * kMaxSize,
                      sizeof(last_grh_));
        }
        DEMI_RETURN_IF_ERROR(PostRecv(static_cast<int>(wc.wr_id)));
        return static_cast<int>(wc.byte_len) - (shape_.ud ? kGrh : 0);
      }
      DEMI_RETURN_IF_ERROR(Patience(polls));
    }
  }

  // Waits for the signalled sends out (a process that exits first may
  // take its last send with it).
  absl::Status FinishSends() {
    for (uint64_t polls = 1; signalled_ > 0; ++polls) {
      DEMI_RETURN_IF_ERROR(PollSends());
      DEMI_RETURN_IF_ERROR(Patience(polls));
    }
    return absl::OkStatus();
  }

 private:
  std::byte* SendBuffer() { return memory_.data() + size_t{kDepth} * kMaxSize; }

  absl::Status PollSends() {
    if (signalled_ == 0) return absl::OkStatus();
    ibv_wc wc;
    int n = ibv_poll_cq(send_cq_, 1, &wc);
    if (n < 0 || (n == 1 && wc.status != IBV_WC_SUCCESS)) {
      return ErrnoError(EIO, "send completion");
    }
    signalled_ -= n;
    return absl::OkStatus();
  }

  // An error once kPatience has passed since `polls` was 1 (the clock is
  // read every 4,096 polls: a read costs more than a poll).
  absl::Status Patience(uint64_t polls) {
    if (polls == 1) {
      give_up_ = absl::Now() + kPatience;
    } else if (polls % 4096 == 0 && absl::Now() > give_up_) {
      return ErrnoError(ETIMEDOUT, "nothing from the peer");
    }
    return absl::OkStatus();
  }

  absl::Status PostRecv(int slot) {
    ibv_sge sge = {
        reinterpret_cast<uintptr_t>(memory_.data() + size_t(slot) * kMaxSize),
        kMaxSize, mr_->lkey};
    ibv_recv_wr wr = {};
    wr.wr_id = static_cast<uint64_t>(slot);
    wr.sg_list = &sge;
    wr.num_sge = 1;
    ibv_recv_wr* bad = nullptr;
    errno = shape_.srq ? ibv_post_srq_recv(srq_, &wr, &bad)
                       : ibv_post_recv(id_->qp, &wr, &bad);
    return Check(errno, "post receive");
  }

  Shape shape_;
  rdma_cm_id* id_ = nullptr;
  ibv_pd* pd_ = nullptr;
  ibv_cq* send_cq_ = nullptr;
  ibv_cq* recv_cq_ = nullptr;
  ibv_srq* srq_ = nullptr;
  ibv_mr* mr_ = nullptr;
  std::vector<std::byte> memory_;
  uint64_t sent_ = 0;
  int signalled_ = 0;
  int mtu_ = 0;
  absl::Time give_up_;
  ibv_wc last_ = {};
  ibv_grh last_grh_ = {};
  ibv_ah* ah_ = nullptr;
  uint32_t qpn_ = 0;
  uint32_t qkey_ = 0;
};

// The next event on `channel`, which must be `expected`: its id, and its
// UD parameters in `ud` if given.
absl::StatusOr<rdma_cm_id*> Expect(rdma_event_channel* channel,
                                   rdma_cm_event_type expected,
                                   rdma_ud_param* ud = nullptr) {
  rdma_cm_event* event = nullptr;
  DEMI_RETURN_IF_ERROR(Check(rdma_get_cm_event(channel, &event), "event"));
  rdma_cm_event_type type = event->event;
  rdma_cm_id* id = event->id;
  if (ud != nullptr) *ud = event->param.ud;
  rdma_ack_cm_event(event);
  if (type != expected) return ErrnoError(EIO, rdma_event_str(type));
  return id;
}

rdma_port_space PortSpace(const Shape& shape) {
  return shape.ud ? RDMA_PS_UDP : RDMA_PS_TCP;
}

absl::Status Serve(const sockaddr_in& addr, const Shape& shape, Side& side) {
  rdma_event_channel* channel = rdma_create_event_channel();
  rdma_cm_id* listener = nullptr;
  if (channel == nullptr) return ErrnoError(errno, "event channel");
  DEMI_RETURN_IF_ERROR(Check(
      rdma_create_id(channel, &listener, nullptr, PortSpace(shape)), "id"));
  sockaddr_in bind = addr;
  DEMI_RETURN_IF_ERROR(Check(
      rdma_bind_addr(listener, reinterpret_cast<sockaddr*>(&bind)), "bind"));
  // A UD server's one QP is the listener's: SIDR answers name it.
  if (shape.ud) DEMI_RETURN_IF_ERROR(side.Create(listener));
  DEMI_RETURN_IF_ERROR(Check(rdma_listen(listener, 1), "listen"));
  DEMI_ASSIGN_OR_RETURN(rdma_cm_id * id,
                        Expect(channel, RDMA_CM_EVENT_CONNECT_REQUEST));
  rdma_conn_param param = {};
  if (shape.ud) {
    param.qp_num = listener->qp->qp_num;
    DEMI_RETURN_IF_ERROR(Check(rdma_accept(id, &param), "accept"));
  } else {
    DEMI_RETURN_IF_ERROR(side.Create(id));
    DEMI_RETURN_IF_ERROR(Check(rdma_accept(id, &param), "accept"));
    DEMI_RETURN_IF_ERROR(Expect(channel, RDMA_CM_EVENT_ESTABLISHED).status());
  }
  // Echoes what comes, as many as the client sends (the same flags).
  int total = absl::GetFlag(FLAGS_iters) + absl::GetFlag(FLAGS_warmup);
  for (int i = 0; i < total; ++i) {
    DEMI_ASSIGN_OR_RETURN(int got, side.Receive());
    if (shape.ud && !side.has_destination()) {
      // Replies go where the first datagram came from.
      const ibv_wc& wc = side.last();
      ibv_ah* ah = ibv_create_ah_from_wc(side.pd(), const_cast<ibv_wc*>(&wc),
                                         side.last_grh(), listener->port_num);
      if (ah == nullptr) return ErrnoError(errno, "ibv_create_ah_from_wc");
      side.SetDestination(ah, wc.src_qp, RDMA_UDP_QKEY);
    }
    // The last one signalled: exiting before it went would lose it.
    DEMI_RETURN_IF_ERROR(side.Send(got, /*signal=*/i + 1 == total));
  }
  return side.FinishSends();
}

absl::Status Ping(const sockaddr_in& addr, const Shape& shape, Side& side,
                  int size) {
  rdma_event_channel* channel = rdma_create_event_channel();
  rdma_cm_id* id = nullptr;
  if (channel == nullptr) return ErrnoError(errno, "event channel");
  DEMI_RETURN_IF_ERROR(
      Check(rdma_create_id(channel, &id, nullptr, PortSpace(shape)), "id"));
  sockaddr_in dst = addr;
  DEMI_RETURN_IF_ERROR(Check(
      rdma_resolve_addr(id, nullptr, reinterpret_cast<sockaddr*>(&dst), 2000),
      "resolve addr"));
  DEMI_RETURN_IF_ERROR(Expect(channel, RDMA_CM_EVENT_ADDR_RESOLVED).status());
  DEMI_RETURN_IF_ERROR(Check(rdma_resolve_route(id, 2000), "resolve route"));
  DEMI_RETURN_IF_ERROR(Expect(channel, RDMA_CM_EVENT_ROUTE_RESOLVED).status());
  DEMI_RETURN_IF_ERROR(side.Create(id));
  if (size > side.max_size()) {
    return ErrnoError(EMSGSIZE, "larger than a message may be here");
  }
  rdma_conn_param param = {};
  param.retry_count = 6;
  param.rnr_retry_count = 6;
  DEMI_RETURN_IF_ERROR(Check(rdma_connect(id, &param), "connect"));
  rdma_ud_param ud = {};
  DEMI_RETURN_IF_ERROR(
      Expect(channel, RDMA_CM_EVENT_ESTABLISHED, &ud).status());
  if (shape.ud) {
    ibv_ah* ah = ibv_create_ah(side.pd(), &ud.ah_attr);
    if (ah == nullptr) return ErrnoError(errno, "ibv_create_ah");
    side.SetDestination(ah, ud.qp_num, ud.qkey);
  }
  int iters = absl::GetFlag(FLAGS_iters);
  int warmup = absl::GetFlag(FLAGS_warmup);
  std::vector<double> half_trips;
  half_trips.reserve(iters);
  for (int i = 0; i < warmup + iters; ++i) {
    double start = demi::tools::NowMicros();
    DEMI_RETURN_IF_ERROR(side.Send(size));
    DEMI_ASSIGN_OR_RETURN(int got, side.Receive());
    if (got != size) {
      return ErrnoError(EPROTO,
                        "the echo's size differs (a server with "
                        "other flags?)");
    }
    if (i >= warmup) {
      half_trips.push_back((demi::tools::NowMicros() - start) / 2);
    }
  }
  std::sort(half_trips.begin(), half_trips.end());
  std::printf("verbs_lat size %d p50 %.2f us p99 %.2f us\n", size,
              half_trips[half_trips.size() / 2],
              half_trips[half_trips.size() * 99 / 100]);
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char* argv[]) {
  absl::ParseCommandLine(argc, argv);
  bool server = absl::GetFlag(FLAGS_server);
  std::string host =
      server ? absl::GetFlag(FLAGS_bind) : absl::GetFlag(FLAGS_client);
  absl::StatusOr<sockaddr_in> addr =
      demi::tools::ParseAddr(host, absl::GetFlag(FLAGS_port));
  Shape shape;
  shape.ud = absl::GetFlag(FLAGS_ud);
  shape.sges = absl::GetFlag(FLAGS_sges);
  shape.srq = absl::GetFlag(FLAGS_srq);
  shape.imm = absl::GetFlag(FLAGS_imm);
  shape.signal = absl::GetFlag(FLAGS_signal);
  shape.inline_size = absl::GetFlag(FLAGS_inline_size);
  int size = absl::GetFlag(FLAGS_size);
  if (!addr.ok() || size < 1 || size > kMaxSize || shape.signal < 1 ||
      shape.sges < 1 || shape.sges > 2 || (shape.ud && shape.srq) ||
      (shape.ud && size > kMaxSize - kGrh) ||
      // A UD server's QP is its listener's, which needs a device.
      (shape.ud && server && addr.ok() &&
       addr->sin_addr.s_addr == INADDR_ANY) ||
      shape.signal > kDepth / 2 || shape.inline_size < 0 ||
      absl::GetFlag(FLAGS_iters) < 1 || absl::GetFlag(FLAGS_warmup) < 0 ||
      absl::GetFlag(FLAGS_iters) > kMaxCount ||
      absl::GetFlag(FLAGS_warmup) > kMaxCount) {
    std::fprintf(stderr,
                 "usage: verbs_lat --server --bind A | --client A [--port P] "
                 "[--size 1..4096] [--iters 1..10^7] [--warmup 0..10^7] [--ud] "
                 "[--srq] [--imm] "
                 "[--signal 1..32] [--inline_size N] [--sges 1|2]\n");
    return 2;
  }
  Side side(shape);
  absl::Status status =
      server ? Serve(*addr, shape, side) : Ping(*addr, shape, side, size);
  if (!status.ok()) {
    std::fprintf(stderr, "verbs_lat: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
