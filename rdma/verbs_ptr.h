// Owning pointers for verbs and rdma_cm objects, and the factories that make
// them. Destruction order is part of the verbs API (QP, then CQ/SRQ/MR, then
// PD; cm events acked before their id is destroyed): a class that holds
// several of these declares parents first, so they are destroyed last.
#ifndef DEMI_RDMA_VERBS_PTR_H_
#define DEMI_RDMA_VERBS_PTR_H_

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include <cstddef>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace demi::rdma {

// Deleters log a failed destroy (EBUSY means a child outlived its parent)
// and never throw.
struct PdDeleter {
  void operator()(ibv_pd* pd) const;
};
struct MrDeleter {
  void operator()(ibv_mr* mr) const;
};
struct MwDeleter {
  void operator()(ibv_mw* mw) const;
};
struct CqDeleter {
  void operator()(ibv_cq* cq) const;
};
struct SrqDeleter {
  void operator()(ibv_srq* srq) const;
};
struct AhDeleter {
  void operator()(ibv_ah* ah) const;
};
struct EventChannelDeleter {
  void operator()(rdma_event_channel* channel) const;
};
// ibv_destroy_comp_channel: after every CQ that uses it.
struct CompChannelDeleter {
  void operator()(ibv_comp_channel* channel) const;
};
// rdma_destroy_id: blocks until every event of the id has been acked.
struct CmIdDeleter {
  void operator()(rdma_cm_id* id) const;
};
// rdma_destroy_qp on an id that stays owned elsewhere.
struct CmQpDeleter {
  void operator()(rdma_cm_id* id) const;
};
// rdma_ack_cm_event.
struct CmEventDeleter {
  void operator()(rdma_cm_event* event) const;
};

using PdPtr = std::unique_ptr<ibv_pd, PdDeleter>;
using MrPtr = std::unique_ptr<ibv_mr, MrDeleter>;
using MwPtr = std::unique_ptr<ibv_mw, MwDeleter>;
using CqPtr = std::unique_ptr<ibv_cq, CqDeleter>;
using SrqPtr = std::unique_ptr<ibv_srq, SrqDeleter>;
using AhPtr = std::unique_ptr<ibv_ah, AhDeleter>;
using EventChannelPtr =
    std::unique_ptr<rdma_event_channel, EventChannelDeleter>;
using CompChannelPtr = std::unique_ptr<ibv_comp_channel, CompChannelDeleter>;
using CmIdPtr = std::unique_ptr<rdma_cm_id, CmIdDeleter>;
using CmQpPtr = std::unique_ptr<rdma_cm_id, CmQpDeleter>;
using CmEventPtr = std::unique_ptr<rdma_cm_event, CmEventDeleter>;

// Allocates a protection domain on `context` (borrowed).
absl::StatusOr<PdPtr> AllocPd(ibv_context* context);

// Allocates a memory window of `type` in `pd` (borrowed). Deallocating it
// revokes whatever access it granted, at once.
absl::StatusOr<MwPtr> AllocMw(ibv_pd* pd, ibv_mw_type type);

// Registers `bytes` with `access` (IBV_ACCESS_* flags) in `pd` (borrowed).
// The memory must outlive the returned region.
absl::StatusOr<MrPtr> RegisterMr(ibv_pd* pd, absl::Span<std::byte> bytes,
                                 int access);

// Creates a completion queue of at least `cqe` entries; `channel` may be null.
absl::StatusOr<CqPtr> CreateCq(ibv_context* context, int cqe,
                               ibv_comp_channel* channel);

// Creates a completion channel on `context` whose fd never blocks (its
// events are read when poll or epoll says there are some).
absl::StatusOr<CompChannelPtr> CreateCompChannel(ibv_context* context);

// Creates a shared receive queue in `pd` for `max_wr` receives of up to
// `max_sge` segments each.
absl::StatusOr<SrqPtr> CreateSrq(ibv_pd* pd, int max_wr, int max_sge);

// Creates an rdma_cm event channel; with `nonblocking`, rdma_get_cm_event on
// it returns EAGAIN instead of waiting.
absl::StatusOr<EventChannelPtr> CreateEventChannel(bool nonblocking);

// Creates a TCP-port-space cm id on `channel` (borrowed) with `context`.
absl::StatusOr<CmIdPtr> CreateCmId(rdma_event_channel* channel, void* context,
                                   rdma_port_space port_space = RDMA_PS_TCP);

// Queue-pair capabilities of an RC connection.
struct QpCaps {
  uint32_t max_send_wr = 0;
  uint32_t max_recv_wr = 0;
  uint32_t max_send_sge = 1;
  uint32_t max_recv_sge = 1;
  uint32_t max_inline_data = 0;
};

// Creates an RC QP on `id` in `pd` with the given CQs (null `srq`: the QP has
// its own receive queue). All are borrowed; the QP is destroyed (and only
// the QP, not the id) when the result goes away. On success `caps` holds the
// capabilities the device granted.
absl::StatusOr<CmQpPtr> CreateRcQp(rdma_cm_id* id, ibv_pd* pd, ibv_cq* send_cq,
                                   ibv_cq* recv_cq, ibv_srq* srq, QpCaps* caps);

// Creates a UD QP on `id` (in RDMA_PS_UDP, bound to a device) in `pd`;
// rdma_cm brings it to RTS with its port space's qkey. `caps` as for
// CreateRcQp.
absl::StatusOr<CmQpPtr> CreateUdQp(rdma_cm_id* id, ibv_pd* pd, ibv_cq* send_cq,
                                   ibv_cq* recv_cq, QpCaps* caps);

// Creates an address handle in `pd` (borrowed) for `attr`.
absl::StatusOr<AhPtr> CreateAh(ibv_pd* pd, ibv_ah_attr* attr);

}  // namespace demi::rdma

#endif  // DEMI_RDMA_VERBS_PTR_H_
