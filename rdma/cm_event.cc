#include "rdma/cm_event.h"

#include <poll.h>

#include <cerrno>

#include "rdma/clock.h"
#include "rdma/status_util.h"
#include "rdma/verbs_call.h"
#include "rdma/verbs_ptr.h"

namespace demi::rdma {
namespace {

CmEvent CopyAndAck(CmEventPtr event) {
  CmEvent copy;
  copy.type = event->event;
  copy.status = event->status;
  copy.id = event->id;
  copy.listen_id = event->listen_id;
  const void* data = event->param.conn.private_data;
  size_t size = event->param.conn.private_data_len;
  if (event->id != nullptr && event->id->ps == RDMA_PS_UDP) {
    const rdma_ud_param& ud = event->param.ud;
    data = ud.private_data;
    size = ud.private_data_len;
    copy.ah_attr = ud.ah_attr;
    copy.remote_qpn = ud.qp_num;
    copy.remote_qkey = ud.qkey;
  }
  if (data != nullptr && size > 0) {
    copy.private_data.assign(static_cast<const char*>(data), size);
  }
  return copy;  // `event` is acked here.
}

}  // namespace

absl::StatusOr<absl::optional<CmEvent>> PollCmEvent(
    rdma_event_channel* channel) {
  rdma_cm_event* event = nullptr;
  if (rdma_get_cm_event(channel, &event) != 0) {
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return absl::nullopt;
    return ErrnoError(err, "rdma_get_cm_event");
  }
  return CopyAndAck(CmEventPtr(event));
}

absl::StatusOr<CmEvent> WaitCmEvent(rdma_event_channel* channel,
                                    absl::Duration timeout) {
  absl::Time deadline = MonotonicNow() + timeout;
  while (true) {
    pollfd pfd = {channel->fd, POLLIN, 0};
    int64_t ms = absl::ToInt64Milliseconds(deadline - MonotonicNow());
    if (ms < 0) ms = 0;
    int n = poll(&pfd, 1, static_cast<int>(ms));
    if (n < 0 && errno != EINTR) return ErrnoError(errno, "poll");
    if (n > 0) {
      rdma_cm_event* event = nullptr;
      if (rdma_get_cm_event(channel, &event) == 0) {
        return CopyAndAck(CmEventPtr(event));
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        return ErrnoError(errno, "rdma_get_cm_event");
      }
    }
    if (MonotonicNow() >= deadline) {
      return ErrnoError(ETIMEDOUT, "no rdma_cm event in time");
    }
  }
}

}  // namespace demi::rdma
