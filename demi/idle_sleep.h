// What a wait sleeps on once spinning no longer pays: one epoll set that
// holds each device's completion channel (every CQ of the libOS reports
// there once armed), the rdma_cm event channel, and what connection setup
// shares with other threads (their arrivals, shared listeners).
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
  // order), `cm` (borrowed), and `setup_fd`: readable when another thread
  // handed this one a connection (ArrivalInbox).
  static absl::StatusOr<std::unique_ptr<IdleSleep>> Create(
      const std::vector<ibv_context*>& contexts, rdma_event_channel* cm,
      int setup_fd);
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
  // False if the device refused (then no event will come).
  static bool Arm(ibv_cq* cq) { return ibv_req_notify_cq(cq, 0) == 0; }

  // Wakes the sleep when `fd` is readable, as an rdma_cm event would (a
  // shared listener's channel); Unwatch before `fd` closes.
  absl::Status Watch(int fd);
  void Unwatch(int fd);

  struct Woken {
    bool completions = false;  // An armed CQ has a completion.
    // Bit d: device d's channel had completion events, so some of its CQs
    // are no longer armed (bit 63 stands for every device from 63 on).
    uint64_t devices = 0;
    // The rdma_cm channel has an event, or a watched fd is readable.
    bool cm = false;
  };
  // Blocks until an armed CQ completes, an rdma_cm event comes, or
  // `timeout` passes (InfiniteDuration: no bound). Takes and acks the
  // completion events, so the CQs can be armed again.
  Woken Sleep(absl::Duration timeout);

 private:
  IdleSleep() = default;
  // Wakes a sleep with `tag` (a device index, or the cm tag) when `fd` is
  // readable.
  absl::Status Add(int fd, uint32_t tag);

  int epoll_fd_ = -1;
  std::vector<rdma::CompChannelPtr> channels_;
};

}  // namespace demi

#endif  // DEMI_DEMI_IDLE_SLEEP_H_
