#include "rdma/cm_connection.h"

#include <algorithm>
#include <cerrno>

#include "rdma/status_util.h"
#include "rdma/verbs_call.h"

namespace demi::rdma {
namespace {

absl::StatusOr<rdma_conn_param> ConnParam(absl::string_view private_data,
                                          uint8_t read_depth) {
  if (private_data.size() > kMaxPrivateData) {
    return ErrnoError(EINVAL, "private data too long");
  }
  rdma_conn_param param = {};
  param.private_data = private_data.data();
  param.private_data_len = static_cast<uint8_t>(private_data.size());
  param.responder_resources = read_depth;
  param.initiator_depth = read_depth;
  param.retry_count = kRetryCount;
  param.rnr_retry_count = kRnrRetryCount;
  return param;
}

}  // namespace

absl::Status Listen(rdma_cm_id* id, const sockaddr_in& addr, int backlog) {
  sockaddr_in copy = addr;
  DEMI_RETURN_IF_ERROR(
      CheckCm(rdma_bind_addr(id, reinterpret_cast<sockaddr*>(&copy)),
              "rdma_bind_addr"));
  return CheckCm(rdma_listen(id, backlog), "rdma_listen");
}

absl::Status ResolveAddr(rdma_cm_id* id, const sockaddr_in* src,
                         const sockaddr_in& dst) {
  sockaddr_in src_copy = src != nullptr ? *src : sockaddr_in{};
  sockaddr_in dst_copy = dst;
  return CheckCm(
      rdma_resolve_addr(
          id, src != nullptr ? reinterpret_cast<sockaddr*>(&src_copy) : nullptr,
          reinterpret_cast<sockaddr*>(&dst_copy), kResolveTimeoutMs),
      "rdma_resolve_addr");
}

absl::Status ResolveRoute(rdma_cm_id* id) {
  uint8_t timeout = kAckTimeout;
  DEMI_RETURN_IF_ERROR(
      CheckCm(rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT,
                              &timeout, sizeof(timeout)),
              "rdma_set_option(ACK_TIMEOUT)"));
  return CheckCm(rdma_resolve_route(id, kResolveTimeoutMs),
                 "rdma_resolve_route");
}

absl::Status Connect(rdma_cm_id* id, absl::string_view private_data,
                     uint8_t read_depth) {
  DEMI_ASSIGN_OR_RETURN(rdma_conn_param param,
                        ConnParam(private_data, read_depth));
  return CheckCm(rdma_connect(id, &param), "rdma_connect");
}

absl::Status Accept(rdma_cm_id* id, absl::string_view private_data,
                    uint8_t read_depth) {
  uint8_t timeout = kAckTimeout;
  DEMI_RETURN_IF_ERROR(
      CheckCm(rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT,
                              &timeout, sizeof(timeout)),
              "rdma_set_option(ACK_TIMEOUT)"));
  DEMI_ASSIGN_OR_RETURN(rdma_conn_param param,
                        ConnParam(private_data, read_depth));
  return CheckCm(rdma_accept(id, &param), "rdma_accept");
}

absl::Status NotifyEstablished(rdma_cm_id* id) {
  return CheckCm(rdma_notify(id, IBV_EVENT_COMM_EST), "rdma_notify");
}

absl::Status Reject(rdma_cm_id* id) {
  return CheckCm(rdma_reject(id, nullptr, 0), "rdma_reject");
}

absl::Status Disconnect(rdma_cm_id* id) {
  return CheckCm(rdma_disconnect(id), "rdma_disconnect");
}

uint8_t ReadDepth(rdma_cm_id* id, uint8_t wanted) {
  ibv_device_attr attr = {};
  if (id->verbs == nullptr || ibv_query_device(id->verbs, &attr) != 0) {
    return 1;
  }
  int depth = std::min({static_cast<int>(wanted), attr.max_qp_rd_atom,
                        attr.max_qp_init_rd_atom});
  return static_cast<uint8_t>(std::max(depth, 1));
}

}  // namespace demi::rdma
