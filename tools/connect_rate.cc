// Sequential connects per second on one host, through the libOS or through
// rdma_cm by hand (what any RC application must do at least), so the two
// can be compared on the same device:
//
//   connect_rate --addr A [--port P] [--connections N] [--mode demi|rdma_cm]
//
// One process plays both sides; each connect waits until established
// before the next starts, and every connection is held until the end.
#include <demi/libos.h>
#include <rdma/rdma_cma.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rdma/status_util.h"
#include "tools/demi_tool.h"

ABSL_FLAG(std::string, addr, "", "this host's RDMA address");
ABSL_FLAG(int, port, 7300, "port to listen on");
ABSL_FLAG(int, connections, 1000, "connections to make, one after another");
ABSL_FLAG(std::string, mode, "demi", "demi (the libOS) or rdma_cm (by hand)");

namespace {

using demi::rdma::ErrnoError;

absl::Status Check(int rc, const char* what) {
  return rc == 0 ? absl::OkStatus() : ErrnoError(errno, what);
}

// rdma_cm by hand: one event channel for the listener and every id, an RC
// QP per side, as small as an application's would be.
class RawCm {
 public:
  ~RawCm() {
    for (rdma_cm_id* id : ids_) {
      if (id->qp != nullptr) rdma_destroy_qp(id);
      rdma_destroy_id(id);
    }
    if (cq_ != nullptr) ibv_destroy_cq(cq_);
    if (pd_ != nullptr) ibv_dealloc_pd(pd_);
    if (channel_ != nullptr) rdma_destroy_event_channel(channel_);
  }

  absl::Status Listen(const sockaddr_in& addr) {
    channel_ = rdma_create_event_channel();
    if (channel_ == nullptr) return ErrnoError(errno, "event channel");
    rdma_cm_id* id = nullptr;
    DEMI_RETURN_IF_ERROR(
        Check(rdma_create_id(channel_, &id, nullptr, RDMA_PS_TCP), "id"));
    ids_.push_back(id);
    sockaddr_in bind = addr;
    DEMI_RETURN_IF_ERROR(
        Check(rdma_bind_addr(id, reinterpret_cast<sockaddr*>(&bind)), "bind"));
    return Check(rdma_listen(id, 128), "listen");
  }

  // Connects to `addr` and returns once both sides are established.
  absl::Status Connect(const sockaddr_in& addr) {
    rdma_cm_id* id = nullptr;
    DEMI_RETURN_IF_ERROR(
        Check(rdma_create_id(channel_, &id, nullptr, RDMA_PS_TCP), "id"));
    ids_.push_back(id);
    sockaddr_in dst = addr;
    DEMI_RETURN_IF_ERROR(Check(
        rdma_resolve_addr(id, nullptr, reinterpret_cast<sockaddr*>(&dst), 2000),
        "resolve addr"));
    int established = 0;
    while (established < 2) {
      rdma_cm_event* event = nullptr;
      DEMI_RETURN_IF_ERROR(Check(rdma_get_cm_event(channel_, &event), "event"));
      rdma_cm_event copy = *event;
      rdma_ack_cm_event(event);
      switch (copy.event) {
        case RDMA_CM_EVENT_ADDR_RESOLVED:
          DEMI_RETURN_IF_ERROR(
              Check(rdma_resolve_route(copy.id, 2000), "resolve route"));
          break;
        case RDMA_CM_EVENT_ROUTE_RESOLVED: {
          DEMI_RETURN_IF_ERROR(CreateQp(copy.id));
          rdma_conn_param param = {};
          param.retry_count = 6;
          param.rnr_retry_count = 6;
          DEMI_RETURN_IF_ERROR(Check(rdma_connect(copy.id, &param), "connect"));
          break;
        }
        case RDMA_CM_EVENT_CONNECT_REQUEST: {
          ids_.push_back(copy.id);
          DEMI_RETURN_IF_ERROR(CreateQp(copy.id));
          rdma_conn_param param = {};
          DEMI_RETURN_IF_ERROR(Check(rdma_accept(copy.id, &param), "accept"));
          break;
        }
        case RDMA_CM_EVENT_ESTABLISHED:
          ++established;
          break;
        default:
          return ErrnoError(EIO, rdma_event_str(copy.event));
      }
    }
    return absl::OkStatus();
  }

 private:
  absl::Status CreateQp(rdma_cm_id* id) {
    if (pd_ == nullptr) {
      pd_ = ibv_alloc_pd(id->verbs);
      cq_ = ibv_create_cq(id->verbs, 256, nullptr, nullptr, 0);
      if (pd_ == nullptr || cq_ == nullptr) return ErrnoError(ENOMEM, "pd/cq");
    }
    ibv_qp_init_attr attr = {};
    attr.send_cq = cq_;
    attr.recv_cq = cq_;
    attr.qp_type = IBV_QPT_RC;
    attr.cap.max_send_wr = 16;
    attr.cap.max_recv_wr = 16;
    attr.cap.max_send_sge = 1;
    attr.cap.max_recv_sge = 1;
    return Check(rdma_create_qp(id, pd_, &attr), "create qp");
  }

  rdma_event_channel* channel_ = nullptr;
  ibv_pd* pd_ = nullptr;
  ibv_cq* cq_ = nullptr;
  std::vector<rdma_cm_id*> ids_;
};

// Each returns the seconds its connects took (set-up and teardown apart).
absl::StatusOr<double> RunRaw(const sockaddr_in& addr, int connections) {
  RawCm cm;
  DEMI_RETURN_IF_ERROR(cm.Listen(addr));
  double start = demi::tools::NowMicros();
  for (int i = 0; i < connections; ++i) {
    DEMI_RETURN_IF_ERROR(cm.Connect(addr));
  }
  return (demi::tools::NowMicros() - start) / 1e6;
}

absl::StatusOr<double> RunDemi(const sockaddr_in& addr, int connections) {
  DEMI_RETURN_IF_ERROR(demi::tools::Init());
  DEMI_ASSIGN_OR_RETURN(int listener, demi::tools::Listen(addr, 128));
  std::vector<int> qds;
  double start = demi::tools::NowMicros();
  for (int i = 0; i < connections; ++i) {
    demi_qtoken_t accept_qt = 0;
    if (int err = demi_accept(&accept_qt, listener); err != 0) {
      return ErrnoError(err, "demi_accept");
    }
    DEMI_ASSIGN_OR_RETURN(int qd,
                          demi::tools::Connect(addr, absl::Seconds(10)));
    DEMI_ASSIGN_OR_RETURN(
        demi_qresult_t accepted,
        demi::tools::Wait(accept_qt, absl::Seconds(10), "accept"));
    qds.push_back(qd);
    qds.push_back(accepted.qr_value.ares.qd);
  }
  double seconds = (demi::tools::NowMicros() - start) / 1e6;
  for (int qd : qds) demi_close(qd);
  demi_close(listener);
  return seconds;
}

}  // namespace

int main(int argc, char* argv[]) {
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<sockaddr_in> addr = demi::tools::ParseAddr(
      absl::GetFlag(FLAGS_addr), absl::GetFlag(FLAGS_port));
  int connections = absl::GetFlag(FLAGS_connections);
  std::string mode = absl::GetFlag(FLAGS_mode);
  if (!addr.ok() || connections < 1 || (mode != "demi" && mode != "rdma_cm")) {
    std::fprintf(stderr,
                 "usage: connect_rate --addr A [--port P] [--connections N] "
                 "[--mode demi|rdma_cm]\n");
    return 2;
  }
  absl::StatusOr<double> seconds =
      mode == "demi" ? RunDemi(*addr, connections) : RunRaw(*addr, connections);
  if (!seconds.ok()) {
    std::fprintf(stderr, "connect_rate: %s\n",
                 seconds.status().ToString().c_str());
    return 1;
  }
  std::printf("%-8s %6d connects in %6.2f s: %7.1f per second\n", mode.c_str(),
              connections, *seconds, connections / *seconds);
  return 0;
}
