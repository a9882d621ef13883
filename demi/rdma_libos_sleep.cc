// How a wait of RdmaLibOs sleeps once spinning stops paying: every CQ armed
// on its device's completion channel, one more pass (no lost wake-up), then
// one epoll_wait on the channels and the rdma_cm channel, bounded by the
// wait's deadline and the next timer.
#include <algorithm>

#include "demi/rdma_libos.h"
#include "rdma/clock.h"

namespace demi {

absl::Time RdmaLibOs::NextTimer(absl::Time now) const {
  absl::Time next = absl::InfiniteFuture();
  bool housekeeping = !closed_.empty() || !datagrams_.empty();
  for (const auto& device : devices_) {
    housekeeping |= device->refill_dry || device->ReceiveWaiting();
    next = std::min(next, device->send_cqs->NextRelease());
  }
  if (housekeeping) next = std::min(next, now + kSleepTimerInterval);
  if (!stranded_.empty()) next = std::min(next, std::max(now, next_stranded_));
  if (keepalive_ != absl::InfiniteDuration() && !conn_by_qpn_.empty()) {
    next = std::min(next, next_tick_);
  }
  // Idle slabs and CQs go back with the timers: a thread that waits for
  // ever on an accept must still wake to give a burst's memory back.
  next = std::min(next, pool_->NextSpareRelease(now));
  return std::min(next, SgaPool::NextDepotRelease());
}

ThreadDevice::ArmedCqs RdmaLibOs::ArmedCqsNow(
    const ThreadDevice& device) const {
  return {device.receives.size(), device.send_cqs->created(), datagrams_made_};
}

void RdmaLibOs::Sleep(absl::Time deadline, absl::FunctionRef<bool()> done) {
  // A pass does that work (credits due, doorbells, disconnects): its
  // caller goes on without one after a sleep, and with no spin budget it
  // would come straight back here, for ever.
  if (HasUrgentWork()) {
    Poll();
    return;
  }
  // A datagram socket's CQs report on its device's channel: they are armed
  // again whenever a device's are.
  bool arm_datagrams = false;
  for (auto& device : devices_) {
    ThreadDevice::ArmedCqs cqs = ArmedCqsNow(*device);
    if (device->armed == cqs) continue;
    bool all = true;
    for (auto& receive : device->receives) all &= IdleSleep::Arm(receive->cq());
    for (size_t i = 0; i < device->send_cqs->size(); ++i) {
      all &= IdleSleep::Arm(device->send_cqs->cq(i));
    }
    // One refused is armed again at the next sleep.
    if (all) device->armed = cqs;
    arm_datagrams = true;
  }
  bool datagrams_armed = true;
  if (arm_datagrams) {
    for (DatagramSocket* socket : datagrams_) {
      datagrams_armed &= socket->ArmCqs();
    }
  }
  if (!datagrams_armed) {
    for (auto& device : devices_) device->armed.reset();
  }
  // What completed between the last pass and the arms raised no event.
  poll_all_sends_ = true;
  Poll();
  poll_all_sends_ = false;
  // What is still in a CQ came before the arm: no event would wake us;
  // nor from a CQ that pass made (a connection set up).
  if (done() || HasUrgentWork() || polled_full_batch_) return;
  for (auto& device : devices_) {
    if (!(device->armed == ArmedCqsNow(*device))) return;
  }
  absl::Time now = rdma::MonotonicNow();
  absl::Time wake = std::min(deadline, NextTimer(now));
  if (wake > now) {
    IdleSleep::Woken woken = sleep_->Sleep(wake - now);
    for (auto& device : devices_) {
      if ((woken.devices >> std::min(device->index, 63) & 1) != 0) {
        device->armed.reset();
      }
    }
    if (woken.cm) {
      ExpectCmEvents();
      PollCmEvents();
    }
  }
  if (rdma::MonotonicNow() >= NextTimer(now)) PollTimers();
  poll_all_sends_ = true;
  Poll();
  poll_all_sends_ = false;
}

}  // namespace demi
