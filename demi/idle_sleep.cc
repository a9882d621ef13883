#include "demi/idle_sleep.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>

#include "rdma/log.h"
#include "rdma/status_util.h"

namespace demi {
namespace {

// The epoll tag of the rdma_cm channel; devices are tagged by index.
constexpr uint32_t kCmTag = UINT32_MAX;

// epoll_wait's milliseconds, rounded up: a wait's timeout is never cut
// short.
int TimeoutMs(absl::Duration timeout) {
  if (timeout == absl::InfiniteDuration()) return -1;
  if (timeout <= absl::ZeroDuration()) return 0;
  int64_t ms = absl::ToInt64Milliseconds(timeout + absl::Milliseconds(1) -
                                         absl::Nanoseconds(1));
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

}  // namespace

absl::StatusOr<std::unique_ptr<IdleSleep>> IdleSleep::Create(
    const std::vector<ibv_context*>& contexts, rdma_event_channel* cm,
    int setup_fd) {
  std::unique_ptr<IdleSleep> sleep(new IdleSleep());
  sleep->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (sleep->epoll_fd_ < 0) return rdma::ErrnoError(errno, "epoll_create1");
  for (size_t i = 0; i < contexts.size(); ++i) {
    DEMI_ASSIGN_OR_RETURN(rdma::CompChannelPtr channel,
                          rdma::CreateCompChannel(contexts[i]));
    DEMI_RETURN_IF_ERROR(sleep->Add(channel->fd, static_cast<uint32_t>(i)));
    sleep->channels_.push_back(std::move(channel));
  }
  DEMI_RETURN_IF_ERROR(sleep->Add(cm->fd, kCmTag));
  DEMI_RETURN_IF_ERROR(sleep->Add(setup_fd, kCmTag));
  return sleep;
}

absl::Status IdleSleep::Watch(int fd) { return Add(fd, kCmTag); }

absl::Status IdleSleep::Add(int fd, uint32_t tag) {
  epoll_event event = {};
  event.events = EPOLLIN;
  event.data.u32 = tag;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
    return rdma::ErrnoError(errno, "epoll_ctl");
  }
  return absl::OkStatus();
}

void IdleSleep::Unwatch(int fd) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

IdleSleep::~IdleSleep() {
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

IdleSleep::Woken IdleSleep::Sleep(absl::Duration timeout) {
  Woken woken;
  epoll_event events[8];
  int n = epoll_wait(epoll_fd_, events, 8, TimeoutMs(timeout));
  if (n < 0 && errno != EINTR) {
    DEMI_LOG(ERROR) << "epoll_wait: " << errno;
  }
  for (int i = 0; i < n; ++i) {
    if (events[i].data.u32 == kCmTag) {
      woken.cm = true;
      continue;
    }
    uint32_t device = events[i].data.u32;
    ibv_comp_channel* channel = channels_[device].get();
    ibv_cq* cq = nullptr;
    void* context = nullptr;
    // The fd does not block: every event there is taken, then none.
    while (ibv_get_cq_event(channel, &cq, &context) == 0) {
      ibv_ack_cq_events(cq, 1);
      woken.completions = true;
      woken.devices |= uint64_t{1} << std::min(device, 63u);
    }
  }
  return woken;
}

}  // namespace demi
