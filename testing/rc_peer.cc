#include "testing/rc_peer.h"

#include <endian.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "rdma/cm_connection.h"
#include "rdma/cm_event.h"
#include "rdma/status_util.h"
#include "rdma/verbs_call.h"

namespace demi::testing {
namespace {

using rdma::ErrnoError;

}  // namespace

absl::StatusOr<rdma::CmEvent> ExpectEvent(rdma_event_channel* channel,
                                          rdma_cm_event_type want,
                                          absl::Duration timeout) {
  DEMI_ASSIGN_OR_RETURN(rdma::CmEvent event,
                        rdma::WaitCmEvent(channel, timeout));
  if (event.type != want) {
    return ErrnoError(
        event.type == RDMA_CM_EVENT_REJECTED ? ECONNREFUSED : EPROTO,
        absl::StrCat("expected ", rdma_event_str(want), ", got ",
                     rdma_event_str(event.type), " (status ", event.status,
                     ")"));
  }
  return event;
}

namespace {

// Gives `peer` (whose id is bound to a device) its PD, CQ, buffer and QP,
// and posts one receive of the whole buffer.
absl::Status Provision(RcPeer& peer) {
  ibv_context* context = peer.id->verbs;
  DEMI_ASSIGN_OR_RETURN(peer.pd, rdma::AllocPd(context));
  DEMI_ASSIGN_OR_RETURN(peer.cq,
                        rdma::CreateCq(context, 2 * kRcPeerDepth, nullptr));
  peer.buffer.resize(kRcPeerBufferSize);
  DEMI_ASSIGN_OR_RETURN(
      peer.mr,
      rdma::RegisterMr(peer.pd.get(), absl::MakeSpan(peer.buffer),
                       IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ));
  rdma::QpCaps caps;
  caps.max_send_wr = kRcPeerDepth;
  caps.max_recv_wr = kRcPeerDepth;
  DEMI_ASSIGN_OR_RETURN(
      peer.qp, rdma::CreateRcQp(peer.id.get(), peer.pd.get(), peer.cq.get(),
                                peer.cq.get(), nullptr, &caps));
  return PostRecv(peer, 0, kRcPeerBufferSize);
}

ibv_sge BufferSge(RcPeer& peer, size_t offset, size_t length) {
  ibv_sge sge = {};
  sge.addr = reinterpret_cast<uintptr_t>(peer.buffer.data() + offset);
  sge.length = static_cast<uint32_t>(length);
  sge.lkey = peer.mr->lkey;
  return sge;
}

// Posts one signalled work request of `opcode` over the buffer range.
absl::Status PostSignaled(RcPeer& peer, ibv_wr_opcode opcode, size_t offset,
                          size_t length, uint64_t remote_addr, uint32_t rkey,
                          uint32_t imm = 0) {
  ibv_sge sge = BufferSge(peer, offset, length);
  ibv_send_wr wr = {};
  wr.wr_id = offset;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = opcode;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.wr.rdma.remote_addr = remote_addr;
  wr.wr.rdma.rkey = rkey;
  wr.imm_data = htobe32(imm);
  ibv_send_wr* bad = nullptr;
  return rdma::CheckRc(ibv_post_send(peer.qp->qp, &wr, &bad), "ibv_post_send");
}

}  // namespace

absl::StatusOr<std::unique_ptr<RcPeer>> ListenRc(const sockaddr_in& addr) {
  auto peer = std::make_unique<RcPeer>();
  DEMI_ASSIGN_OR_RETURN(peer->channel, rdma::CreateEventChannel(false));
  DEMI_ASSIGN_OR_RETURN(peer->id,
                        rdma::CreateCmId(peer->channel.get(), nullptr));
  DEMI_RETURN_IF_ERROR(rdma::Listen(peer->id.get(), addr, 8));
  return peer;
}

absl::StatusOr<std::unique_ptr<RcPeer>> AcceptRc(
    RcPeer& listener, const std::string& private_data, absl::Duration timeout) {
  DEMI_ASSIGN_OR_RETURN(rdma::CmEvent request,
                        ExpectEvent(listener.channel.get(),
                                    RDMA_CM_EVENT_CONNECT_REQUEST, timeout));
  auto peer = std::make_unique<RcPeer>();
  // The new id reports on the listener's channel; move it to its own.
  DEMI_ASSIGN_OR_RETURN(peer->channel, rdma::CreateEventChannel(false));
  peer->id.reset(request.id);
  DEMI_RETURN_IF_ERROR(rdma::CheckCm(
      rdma_migrate_id(peer->id.get(), peer->channel.get()), "rdma_migrate_id"));
  peer->peer_private_data = request.private_data;
  DEMI_RETURN_IF_ERROR(Provision(*peer));
  DEMI_RETURN_IF_ERROR(rdma::Accept(peer->id.get(), private_data,
                                    rdma::ReadDepth(peer->id.get(), 4)));
  DEMI_RETURN_IF_ERROR(
      ExpectEvent(peer->channel.get(), RDMA_CM_EVENT_ESTABLISHED, timeout)
          .status());
  return peer;
}

namespace {

// Moves the QP of `peer` to `state` with the attributes rdma_cm gives.
absl::Status ModifyQp(RcPeer& peer, ibv_qp_state state) {
  ibv_qp_attr attr = {};
  int mask = 0;
  attr.qp_state = state;
  DEMI_RETURN_IF_ERROR(rdma::CheckCm(
      rdma_init_qp_attr(peer.id.get(), &attr, &mask), "rdma_init_qp_attr"));
  return rdma::CheckRc(ibv_modify_qp(peer.qp->qp, &attr, mask),
                       "ibv_modify_qp");
}

// rdma_connect on a QP rdma_cm does not know of, which leaves bringing it
// up and the RTU to the caller. The returned event is CONNECT_RESPONSE
// where ConnectRc's is ESTABLISHED.
absl::StatusOr<rdma::CmEvent> ConnectWithoutRtu(RcPeer& peer,
                                                const std::string& private_data,
                                                absl::Duration timeout) {
  rdma_cm_id* id = peer.id.get();
  rdma_conn_param param = {};
  param.private_data = private_data.data();
  param.private_data_len = static_cast<uint8_t>(private_data.size());
  param.responder_resources = param.initiator_depth = rdma::ReadDepth(id, 4);
  param.retry_count = rdma::kRetryCount;
  param.rnr_retry_count = rdma::kRnrRetryCount;
  param.qp_num = id->qp->qp_num;
  ibv_qp* qp = id->qp;
  id->qp = nullptr;
  int rc = rdma_connect(id, &param);
  absl::StatusOr<rdma::CmEvent> event =
      rc == 0 ? rdma::WaitCmEvent(peer.channel.get(), timeout)
              : rdma::CheckCm(rc, "rdma_connect");
  id->qp = qp;
  if (!event.ok() || event->type != RDMA_CM_EVENT_CONNECT_RESPONSE) {
    return event;
  }
  // INIT again first: its access flags (remote write, read) are the
  // connection's, known only now.
  DEMI_RETURN_IF_ERROR(ModifyQp(peer, IBV_QPS_INIT));
  DEMI_RETURN_IF_ERROR(ModifyQp(peer, IBV_QPS_RTR));
  DEMI_RETURN_IF_ERROR(ModifyQp(peer, IBV_QPS_RTS));
  return event;
}

absl::StatusOr<std::unique_ptr<RcPeer>> Connect(const sockaddr_in& server,
                                                const std::string& private_data,
                                                absl::Duration timeout,
                                                bool send_rtu) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    auto peer = std::make_unique<RcPeer>();
    DEMI_ASSIGN_OR_RETURN(peer->channel, rdma::CreateEventChannel(false));
    DEMI_ASSIGN_OR_RETURN(peer->id,
                          rdma::CreateCmId(peer->channel.get(), nullptr));
    rdma_event_channel* channel = peer->channel.get();
    absl::Duration left = deadline - absl::Now();
    DEMI_RETURN_IF_ERROR(rdma::ResolveAddr(peer->id.get(), nullptr, server));
    DEMI_RETURN_IF_ERROR(
        ExpectEvent(channel, RDMA_CM_EVENT_ADDR_RESOLVED, left).status());
    DEMI_RETURN_IF_ERROR(rdma::ResolveRoute(peer->id.get()));
    DEMI_RETURN_IF_ERROR(
        ExpectEvent(channel, RDMA_CM_EVENT_ROUTE_RESOLVED, left).status());
    DEMI_RETURN_IF_ERROR(Provision(*peer));
    rdma::CmEvent event;
    if (send_rtu) {
      DEMI_RETURN_IF_ERROR(rdma::Connect(peer->id.get(), private_data,
                                         rdma::ReadDepth(peer->id.get(), 4)));
      DEMI_ASSIGN_OR_RETURN(event, rdma::WaitCmEvent(channel, left));
    } else {
      DEMI_ASSIGN_OR_RETURN(event,
                            ConnectWithoutRtu(*peer, private_data, left));
    }
    if (event.type == RDMA_CM_EVENT_ESTABLISHED ||
        event.type == RDMA_CM_EVENT_CONNECT_RESPONSE) {
      peer->peer_private_data = event.private_data;
      return peer;
    }
    bool not_listening_yet = event.type == RDMA_CM_EVENT_REJECTED ||
                             event.type == RDMA_CM_EVENT_UNREACHABLE;
    if (!not_listening_yet || absl::Now() + absl::Seconds(1) > deadline) {
      return ErrnoError(ECONNREFUSED,
                        absl::StrCat("connect: ", rdma_event_str(event.type)));
    }
    absl::SleepFor(absl::Milliseconds(500));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<RcPeer>> ConnectRc(
    const sockaddr_in& server, const std::string& private_data,
    absl::Duration timeout) {
  return Connect(server, private_data, timeout, /*send_rtu=*/true);
}

absl::StatusOr<std::unique_ptr<RcPeer>> ConnectRcWithoutRtu(
    const sockaddr_in& server, const std::string& private_data,
    absl::Duration timeout) {
  return Connect(server, private_data, timeout, /*send_rtu=*/false);
}

absl::Status SendRtu(RcPeer& peer) {
  // rdma_establish refuses an id with a QP rdma_cm brings up itself.
  ibv_qp* qp = peer.id->qp;
  peer.id->qp = nullptr;
  int rc = rdma_establish(peer.id.get());
  peer.id->qp = qp;
  return rdma::CheckCm(rc, "rdma_establish");
}

absl::Status PostRecv(RcPeer& peer, size_t offset, size_t length) {
  ibv_sge sge = BufferSge(peer, offset, length);
  ibv_recv_wr wr = {};
  wr.wr_id = offset;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  ibv_recv_wr* bad = nullptr;
  return rdma::CheckRc(ibv_post_recv(peer.qp->qp, &wr, &bad), "ibv_post_recv");
}

absl::Status PostSend(RcPeer& peer, size_t offset, size_t length) {
  return PostSignaled(peer, IBV_WR_SEND, offset, length, 0, 0);
}

absl::Status PostSendWithImm(RcPeer& peer, size_t offset, size_t length,
                             uint32_t imm) {
  return PostSignaled(peer, IBV_WR_SEND_WITH_IMM, offset, length, 0, 0, imm);
}

absl::Status PostRead(RcPeer& peer, size_t offset, size_t length,
                      uint64_t remote_addr, uint32_t rkey) {
  return PostSignaled(peer, IBV_WR_RDMA_READ, offset, length, remote_addr,
                      rkey);
}

absl::StatusOr<ibv_wc> PollOne(RcPeer& peer, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  ibv_wc wc = {};
  while (true) {
    DEMI_ASSIGN_OR_RETURN(
        int n,
        rdma::CheckPoll(ibv_poll_cq(peer.cq.get(), 1, &wc), "ibv_poll_cq"));
    if (n == 1) return wc;
    if (absl::Now() > deadline) {
      return ErrnoError(ETIMEDOUT, "no work completion in time");
    }
  }
}

}  // namespace demi::testing
