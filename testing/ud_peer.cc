#include "testing/ud_peer.h"

#include <endian.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "rdma/cm_event.h"
#include "rdma/status_util.h"
#include "rdma/verbs_call.h"
#include "testing/rc_peer.h"

namespace demi::testing {

namespace {

// The peer's PD, CQ, buffer and its MR, and a UD QP on its id.
absl::Status CreateQp(UdPeer& peer) {
  ibv_context* context = peer.id->verbs;
  if (context == nullptr) {
    return rdma::ErrnoError(ENODEV, "no RDMA device at that address");
  }
  DEMI_ASSIGN_OR_RETURN(peer.pd, rdma::AllocPd(context));
  DEMI_ASSIGN_OR_RETURN(peer.cq,
                        rdma::CreateCq(context, 8 + kUdPeerReceives, nullptr));
  peer.buffer.resize(kUdPeerBufferSize);
  DEMI_ASSIGN_OR_RETURN(
      peer.mr, rdma::RegisterMr(peer.pd.get(), absl::MakeSpan(peer.buffer),
                                IBV_ACCESS_LOCAL_WRITE));
  rdma::QpCaps caps;
  caps.max_send_wr = 8;
  caps.max_recv_wr = kUdPeerReceives;
  DEMI_ASSIGN_OR_RETURN(
      peer.qp, rdma::CreateUdQp(peer.id.get(), peer.pd.get(), peer.cq.get(),
                                peer.cq.get(), &caps));
  return absl::OkStatus();
}

// The peer's next completion within `timeout`, which must be a successful
// `opcode`.
absl::StatusOr<ibv_wc> PollOne(UdPeer& peer, ibv_wc_opcode opcode,
                               absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  ibv_wc wc;
  while (true) {
    int n = ibv_poll_cq(peer.cq.get(), 1, &wc);
    if (n < 0) return rdma::ErrnoError(EIO, "ibv_poll_cq");
    if (n == 1) break;
    if (absl::Now() > deadline) {
      return rdma::ErrnoError(ETIMEDOUT, "no completion in time");
    }
  }
  if (wc.status != IBV_WC_SUCCESS) {
    return rdma::ErrnoError(EIO, ibv_wc_status_str(wc.status));
  }
  if (wc.opcode != opcode) {
    return rdma::ErrnoError(EIO, "a completion of another opcode");
  }
  return wc;
}

// Posts receive slot `slot` of a ListenUd peer.
absl::Status PostReceive(UdPeer& peer, uint64_t slot) {
  ibv_sge sge = {reinterpret_cast<uintptr_t>(peer.receive_buffer.data() +
                                             slot * kUdPeerBufferSize),
                 static_cast<uint32_t>(kUdPeerBufferSize),
                 peer.receive_mr->lkey};
  ibv_recv_wr wr = {};
  wr.wr_id = slot;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  ibv_recv_wr* bad = nullptr;
  return rdma::CheckRc(ibv_post_recv(peer.qp->qp, &wr, &bad), "ibv_post_recv");
}

}  // namespace

absl::StatusOr<std::unique_ptr<UdPeer>> ResolveUd(const sockaddr_in& local,
                                                  const sockaddr_in& dest,
                                                  absl::Duration timeout) {
  auto peer = std::make_unique<UdPeer>();
  DEMI_ASSIGN_OR_RETURN(peer->channel, rdma::CreateEventChannel(false));
  DEMI_ASSIGN_OR_RETURN(
      peer->id, rdma::CreateCmId(peer->channel.get(), nullptr, RDMA_PS_UDP));
  sockaddr_in src = local;
  src.sin_port = 0;
  sockaddr_in dst = dest;
  int ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
  DEMI_RETURN_IF_ERROR(rdma::CheckCm(
      rdma_resolve_addr(peer->id.get(), reinterpret_cast<sockaddr*>(&src),
                        reinterpret_cast<sockaddr*>(&dst), ms),
      "rdma_resolve_addr"));
  DEMI_RETURN_IF_ERROR(
      ExpectEvent(peer->channel.get(), RDMA_CM_EVENT_ADDR_RESOLVED, timeout)
          .status());
  DEMI_RETURN_IF_ERROR(rdma::CheckCm(rdma_resolve_route(peer->id.get(), ms),
                                     "rdma_resolve_route"));
  DEMI_RETURN_IF_ERROR(
      ExpectEvent(peer->channel.get(), RDMA_CM_EVENT_ROUTE_RESOLVED, timeout)
          .status());
  DEMI_RETURN_IF_ERROR(CreateQp(*peer));
  rdma_conn_param param = {};
  DEMI_RETURN_IF_ERROR(
      rdma::CheckCm(rdma_connect(peer->id.get(), &param), "rdma_connect"));
  DEMI_ASSIGN_OR_RETURN(
      rdma::CmEvent event,
      ExpectEvent(peer->channel.get(), RDMA_CM_EVENT_ESTABLISHED, timeout));
  DEMI_ASSIGN_OR_RETURN(peer->ah,
                        rdma::CreateAh(peer->pd.get(), &event.ah_attr));
  peer->remote_qpn = event.remote_qpn;
  peer->remote_qkey = event.remote_qkey;
  peer->reply_data = event.private_data;
  std::memcpy(&peer->local, rdma_get_local_addr(peer->id.get()),
              sizeof(peer->local));
  return peer;
}

absl::StatusOr<std::unique_ptr<UdPeer>> ListenUd(const sockaddr_in& local,
                                                 std::string reply_data) {
  auto peer = std::make_unique<UdPeer>();
  peer->reply_data = std::move(reply_data);
  DEMI_ASSIGN_OR_RETURN(peer->channel, rdma::CreateEventChannel(false));
  DEMI_ASSIGN_OR_RETURN(
      peer->id, rdma::CreateCmId(peer->channel.get(), nullptr, RDMA_PS_UDP));
  sockaddr_in bind = local;
  DEMI_RETURN_IF_ERROR(rdma::CheckCm(
      rdma_bind_addr(peer->id.get(), reinterpret_cast<sockaddr*>(&bind)),
      "rdma_bind_addr"));
  DEMI_RETURN_IF_ERROR(CreateQp(*peer));
  peer->receive_buffer.resize(kUdPeerReceives * kUdPeerBufferSize);
  DEMI_ASSIGN_OR_RETURN(
      peer->receive_mr,
      rdma::RegisterMr(peer->pd.get(), absl::MakeSpan(peer->receive_buffer),
                       IBV_ACCESS_LOCAL_WRITE));
  for (uint64_t slot = 0; slot < kUdPeerReceives; ++slot) {
    DEMI_RETURN_IF_ERROR(PostReceive(*peer, slot));
  }
  DEMI_RETURN_IF_ERROR(
      rdma::CheckCm(rdma_listen(peer->id.get(), 8), "rdma_listen"));
  peer->local = bind;
  return peer;
}

absl::Status AnswerUd(UdPeer& peer, absl::Duration timeout) {
  DEMI_ASSIGN_OR_RETURN(
      rdma::CmEvent event,
      ExpectEvent(peer.channel.get(), RDMA_CM_EVENT_CONNECT_REQUEST, timeout));
  rdma::CmIdPtr request(event.id);
  // What a SIDR reply carries at most (IB_CM_SIDR_REP_PRIVATE_DATA_SIZE).
  if (peer.reply_data.size() > 136) {
    return rdma::ErrnoError(EINVAL, "private data past a SIDR reply's");
  }
  rdma_conn_param param = {};
  param.qp_num = peer.qp->qp->qp_num;
  param.private_data = peer.reply_data.data();
  param.private_data_len = static_cast<uint8_t>(peer.reply_data.size());
  return rdma::CheckCm(rdma_accept(request.get(), &param), "rdma_accept");
}

absl::StatusOr<ibv_wc> ReceiveUd(UdPeer& peer, absl::Duration timeout,
                                 std::vector<std::byte>* bytes) {
  if (peer.receive_buffer.empty()) {
    return rdma::ErrnoError(EINVAL,
                            "not a ListenUd peer: it posts no receives");
  }
  DEMI_ASSIGN_OR_RETURN(ibv_wc wc, PollOne(peer, IBV_WC_RECV, timeout));
  constexpr uint32_t kGrh = 40;
  if (wc.byte_len < kGrh) return rdma::ErrnoError(EPROTO, "no GRH");
  const std::byte* slot =
      peer.receive_buffer.data() + wc.wr_id * kUdPeerBufferSize;
  bytes->assign(slot + kGrh, slot + wc.byte_len);
  DEMI_RETURN_IF_ERROR(PostReceive(peer, wc.wr_id));
  return wc;
}

absl::Status SendUd(UdPeer& peer, absl::Span<const std::byte> bytes,
                    absl::optional<uint32_t> imm) {
  if (bytes.size() > peer.buffer.size()) {
    return rdma::ErrnoError(EMSGSIZE, "larger than the peer's buffer");
  }
  std::memcpy(peer.buffer.data(), bytes.data(), bytes.size());
  ibv_sge sge = {reinterpret_cast<uintptr_t>(peer.buffer.data()),
                 static_cast<uint32_t>(bytes.size()), peer.mr->lkey};
  ibv_send_wr wr = {};
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = imm.has_value() ? IBV_WR_SEND_WITH_IMM : IBV_WR_SEND;
  wr.imm_data = htobe32(imm.value_or(0));
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.wr.ud.ah = peer.ah.get();
  wr.wr.ud.remote_qpn = peer.remote_qpn;
  wr.wr.ud.remote_qkey = peer.remote_qkey;
  ibv_send_wr* bad = nullptr;
  DEMI_RETURN_IF_ERROR(
      rdma::CheckRc(ibv_post_send(peer.qp->qp, &wr, &bad), "ibv_post_send"));
  return PollOne(peer, IBV_WC_SEND, absl::Seconds(10)).status();
}

}  // namespace demi::testing
