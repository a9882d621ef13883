// What a wait sleeps on once spinning no longer pays: one epoll set that
// holds each device's completion channel (every CQ of the libOS reports
// there once armed) and the rdma_cm event channel.
#ifndef DEMI_DEMI_IDLE_SLEEP_H_
#define DEMI_DEMI_IDLE_SLEEP_H_

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rdma/verbs_ptr.h"

namespace demi {

class IdleSleep {
 public:
  // A completion channel for each of `contexts` (borrowed, in device
  // order), and `cm` (borrowed).
  static absl::StatusOr<std::unique_ptr<IdleSleep>> Create(
      const std::vector<ibv_context*>& contexts, rdma_event_channel* cm);
  ~IdleSleep();
  IdleSleep(const IdleSleep&) = delete;
  IdleSleep& operator=(const IdleSleep&) = delete;

  // The channel CQs of device `device` are created with.
  ibv_comp_channel* channel(int device) const {
    return channels_[device].get();
  }

  // Asks for an event at `cq`'s next completion. Arm every CQ, then poll
  // them once more before Sleep: a completion that came between the last
  // poll and the arm raises no event.
  static void Arm(ibv_cq* cq) { ibv_req_notify_cq(cq, 0); }

  struct Woken {
    bool completions = false;  // An armed CQ has a completion.
    bool cm = false;           // The rdma_cm channel has an event.
  };
  // Blocks until an armed CQ completes, an rdma_cm event comes, or
  // `timeout` passes (InfiniteDuration: no bound). Takes and acks the
  // completion events, so the CQs can be armed again.
  Woken Sleep(absl::Duration timeout);

 private:
  IdleSleep() = default;

  int epoll_fd_ = -1;
  std::vector<rdma::CompChannelPtr> channels_;
};

}  // namespace demi

#endif  // DEMI_DEMI_IDLE_SLEEP_H_
