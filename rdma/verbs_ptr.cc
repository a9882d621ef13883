#include "rdma/verbs_ptr.h"

#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "rdma/log.h"
#include "rdma/verbs_call.h"

namespace demi::rdma {
namespace {

void LogFailedDestroy(const char* what, int err) {
  DEMI_LOG(ERROR) << what << " failed: " << std::strerror(err);
}

absl::Status SetNonBlocking(int fd, const char* what) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    return ErrnoError(errno, std::string("fcntl(O_NONBLOCK) on ") + what);
  }
  return absl::OkStatus();
}

}  // namespace

void PdDeleter::operator()(ibv_pd* pd) const {
  if (int rc = ibv_dealloc_pd(pd); rc != 0)
    LogFailedDestroy("ibv_dealloc_pd", rc);
}

void MrDeleter::operator()(ibv_mr* mr) const {
  if (int rc = ibv_dereg_mr(mr); rc != 0) LogFailedDestroy("ibv_dereg_mr", rc);
}

void MwDeleter::operator()(ibv_mw* mw) const {
  if (int rc = ibv_dealloc_mw(mw); rc != 0) {
    LogFailedDestroy("ibv_dealloc_mw", rc);
  }
}

void CqDeleter::operator()(ibv_cq* cq) const {
  if (int rc = ibv_destroy_cq(cq); rc != 0) {
    LogFailedDestroy("ibv_destroy_cq", rc);
  }
}

void SrqDeleter::operator()(ibv_srq* srq) const {
  if (int rc = ibv_destroy_srq(srq); rc != 0) {
    LogFailedDestroy("ibv_destroy_srq", rc);
  }
}

void AhDeleter::operator()(ibv_ah* ah) const {
  if (int rc = ibv_destroy_ah(ah); rc != 0) {
    LogFailedDestroy("ibv_destroy_ah", rc);
  }
}

void EventChannelDeleter::operator()(rdma_event_channel* channel) const {
  rdma_destroy_event_channel(channel);
}

void CompChannelDeleter::operator()(ibv_comp_channel* channel) const {
  if (int rc = ibv_destroy_comp_channel(channel); rc != 0) {
    LogFailedDestroy("ibv_destroy_comp_channel", rc);
  }
}

void CmIdDeleter::operator()(rdma_cm_id* id) const {
  if (rdma_destroy_id(id) != 0) LogFailedDestroy("rdma_destroy_id", errno);
}

void CmQpDeleter::operator()(rdma_cm_id* id) const { rdma_destroy_qp(id); }

void CmEventDeleter::operator()(rdma_cm_event* event) const {
  if (rdma_ack_cm_event(event) != 0) {
    LogFailedDestroy("rdma_ack_cm_event", errno);
  }
}

absl::StatusOr<PdPtr> AllocPd(ibv_context* context) {
  DEMI_ASSIGN_OR_RETURN(ibv_pd * pd,
                        CheckPtr(ibv_alloc_pd(context), "ibv_alloc_pd"));
  return PdPtr(pd);
}

absl::StatusOr<MrPtr> RegisterMr(ibv_pd* pd, absl::Span<std::byte> bytes,
                                 int access) {
  DEMI_ASSIGN_OR_RETURN(
      ibv_mr * mr, CheckPtr(ibv_reg_mr(pd, bytes.data(), bytes.size(), access),
                            "ibv_reg_mr"));
  return MrPtr(mr);
}

absl::StatusOr<MwPtr> AllocMw(ibv_pd* pd, ibv_mw_type type) {
  DEMI_ASSIGN_OR_RETURN(ibv_mw * mw,
                        CheckPtr(ibv_alloc_mw(pd, type), "ibv_alloc_mw"));
  return MwPtr(mw);
}

absl::StatusOr<CqPtr> CreateCq(ibv_context* context, int cqe,
                               ibv_comp_channel* channel) {
  DEMI_ASSIGN_OR_RETURN(
      ibv_cq * cq, CheckPtr(ibv_create_cq(context, cqe, nullptr, channel, 0),
                            "ibv_create_cq"));
  return CqPtr(cq);
}

absl::StatusOr<CompChannelPtr> CreateCompChannel(ibv_context* context) {
  DEMI_ASSIGN_OR_RETURN(
      ibv_comp_channel * channel,
      CheckPtr(ibv_create_comp_channel(context), "ibv_create_comp_channel"));
  CompChannelPtr owned(channel);
  DEMI_RETURN_IF_ERROR(SetNonBlocking(channel->fd, "the completion channel"));
  return owned;
}

absl::StatusOr<SrqPtr> CreateSrq(ibv_pd* pd, int max_wr, int max_sge) {
  ibv_srq_init_attr attr = {};
  attr.attr.max_wr = max_wr;
  attr.attr.max_sge = max_sge;
  DEMI_ASSIGN_OR_RETURN(ibv_srq * srq,
                        CheckPtr(ibv_create_srq(pd, &attr), "ibv_create_srq"));
  return SrqPtr(srq);
}

absl::StatusOr<EventChannelPtr> CreateEventChannel(bool nonblocking) {
  DEMI_ASSIGN_OR_RETURN(
      rdma_event_channel * raw,
      CheckPtr(rdma_create_event_channel(), "rdma_create_event_channel"));
  EventChannelPtr channel(raw);
  if (nonblocking) {
    DEMI_RETURN_IF_ERROR(SetNonBlocking(channel->fd, "the cm event channel"));
  }
  return channel;
}

absl::StatusOr<CmIdPtr> CreateCmId(rdma_event_channel* channel, void* context,
                                   rdma_port_space port_space) {
  rdma_cm_id* id = nullptr;
  DEMI_RETURN_IF_ERROR(CheckCm(
      rdma_create_id(channel, &id, context, port_space), "rdma_create_id"));
  return CmIdPtr(id);
}

namespace {

// rdma_create_qp with `caps`, which then hold what the device granted.
absl::StatusOr<CmQpPtr> CreateQp(rdma_cm_id* id, ibv_pd* pd,
                                 ibv_qp_init_attr& attr, QpCaps* caps) {
  // Selective signalling: the sender asks for completions where it needs them.
  attr.sq_sig_all = 0;
  attr.cap.max_send_wr = caps->max_send_wr;
  attr.cap.max_recv_wr = attr.srq != nullptr ? 0 : caps->max_recv_wr;
  attr.cap.max_send_sge = caps->max_send_sge;
  attr.cap.max_recv_sge = attr.srq != nullptr ? 0 : caps->max_recv_sge;
  attr.cap.max_inline_data = caps->max_inline_data;
  DEMI_RETURN_IF_ERROR(
      CheckCm(rdma_create_qp(id, pd, &attr), "rdma_create_qp"));
  caps->max_send_wr = attr.cap.max_send_wr;
  caps->max_recv_wr = attr.cap.max_recv_wr;
  caps->max_send_sge = attr.cap.max_send_sge;
  caps->max_recv_sge = attr.cap.max_recv_sge;
  caps->max_inline_data = attr.cap.max_inline_data;
  return CmQpPtr(id);
}

}  // namespace

absl::StatusOr<CmQpPtr> CreateRcQp(rdma_cm_id* id, ibv_pd* pd, ibv_cq* send_cq,
                                   ibv_cq* recv_cq, ibv_srq* srq,
                                   QpCaps* caps) {
  ibv_qp_init_attr attr = {};
  attr.send_cq = send_cq;
  attr.recv_cq = recv_cq;
  attr.srq = srq;
  attr.qp_type = IBV_QPT_RC;
  return CreateQp(id, pd, attr, caps);
}

absl::StatusOr<CmQpPtr> CreateUdQp(rdma_cm_id* id, ibv_pd* pd, ibv_cq* send_cq,
                                   ibv_cq* recv_cq, QpCaps* caps) {
  ibv_qp_init_attr attr = {};
  attr.send_cq = send_cq;
  attr.recv_cq = recv_cq;
  attr.qp_type = IBV_QPT_UD;
  return CreateQp(id, pd, attr, caps);
}

absl::StatusOr<AhPtr> CreateAh(ibv_pd* pd, ibv_ah_attr* attr) {
  DEMI_ASSIGN_OR_RETURN(ibv_ah * ah,
                        CheckPtr(ibv_create_ah(pd, attr), "ibv_create_ah"));
  return AhPtr(ah);
}

}  // namespace demi::rdma
