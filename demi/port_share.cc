#include "demi/port_share.h"

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "rdma/cm_connection.h"
#include "rdma/cm_event.h"
#include "rdma/log.h"
#include "rdma/status_util.h"
#include "rdma/verbs_call.h"

namespace demi {
namespace {

using rdma::ErrnoError;

std::mutex registry_mutex;
// Guarded by registry_mutex. Address and port to its listener, while a
// socket holds it. Never destroyed: listeners may go during the process's
// exit.
absl::flat_hash_map<uint64_t, std::weak_ptr<SharedListener>>* registry =
    nullptr;

uint64_t KeyOf(const sockaddr_in& addr) {
  return uint64_t{addr.sin_addr.s_addr} << 16 | addr.sin_port;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ArrivalInbox>> ArrivalInbox::Create(
    rdma_event_channel* channel) {
  std::unique_ptr<ArrivalInbox> inbox(new ArrivalInbox());
  inbox->channel_ = channel;
  inbox->event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (inbox->event_fd_ < 0) return ErrnoError(errno, "eventfd");
  return inbox;
}

ArrivalInbox::~ArrivalInbox() {
  // Ids never taken are destroyed with their arrivals: the peer sees its
  // connect fail.
  if (event_fd_ >= 0) close(event_fd_);
}

void ArrivalInbox::Deliver(Arrival arrival) {
  if (rdma_migrate_id(arrival.id.get(), channel_) != 0) {
    DEMI_LOG(WARNING) << "rdma_migrate_id: " << errno;
    rdma::Reject(arrival.id.get()).IgnoreError();
    return;
  }
  // The list, the count and the eventfd change together, under the lock:
  // an eventfd left readable with nothing queued would wake every sleep
  // of the owner at once.
  std::lock_guard<std::mutex> lock(mutex_);
  arrivals_.push_back(std::move(arrival));
  queued_.fetch_add(1, std::memory_order_release);
  uint64_t one = 1;
  if (write(event_fd_, &one, sizeof(one)) < 0 && errno != EAGAIN) {
    DEMI_LOG(WARNING) << "eventfd write: " << errno;
  }
}

std::vector<Arrival> ArrivalInbox::TakeAll() {
  std::vector<Arrival> taken;
  std::lock_guard<std::mutex> lock(mutex_);
  uint64_t count = 0;
  if (read(event_fd_, &count, sizeof(count)) < 0 && errno != EAGAIN) {
    DEMI_LOG(WARNING) << "eventfd read: " << errno;
  }
  taken.swap(arrivals_);
  queued_.fetch_sub(static_cast<int>(taken.size()), std::memory_order_relaxed);
  return taken;
}

absl::StatusOr<std::shared_ptr<SharedListener>> SharedListener::Bind(
    const sockaddr_in& addr) {
  std::unique_lock<std::mutex> lock(registry_mutex);
  if (registry == nullptr) {
    registry =
        new absl::flat_hash_map<uint64_t, std::weak_ptr<SharedListener>>();
  }
  uint64_t key = KeyOf(addr);
  for (auto it = registry->find(key); it != registry->end();
       it = registry->find(key)) {
    if (std::shared_ptr<SharedListener> listener = it->second.lock()) {
      return listener;
    }
    // Its last socket just went, and its destructor is on the way: it
    // frees the port, then drops the entry. Binding before that would
    // find the port taken.
    lock.unlock();
    std::this_thread::yield();
    lock.lock();
  }
  std::shared_ptr<SharedListener> listener(new SharedListener());
  listener->key_ = key;
  listener->addr_ = addr;
  DEMI_ASSIGN_OR_RETURN(listener->channel_, rdma::CreateEventChannel(true));
  DEMI_ASSIGN_OR_RETURN(listener->id_,
                        rdma::CreateCmId(listener->channel_.get(), nullptr));
  sockaddr_in local = addr;
  if (rdma_bind_addr(listener->id_.get(),
                     reinterpret_cast<sockaddr*>(&local)) != 0) {
    int err = errno;
    return ErrnoError(err == ENODEV ? EADDRNOTAVAIL : err, "rdma_bind_addr");
  }
  (*registry)[key] = listener;
  listener->registered_ = true;
  return listener;
}

SharedListener::~SharedListener() {
  // One that failed to bind goes under Bind's lock, never registered.
  if (!registered_) {
    id_.reset();
    return;
  }
  // The port, then the entry, under the lock: a Bind that finds the entry
  // waits until both are gone (and none can register another meanwhile).
  std::lock_guard<std::mutex> lock(registry_mutex);
  id_.reset();
  auto it = registry->find(key_);
  if (it != registry->end() && it->second.expired()) registry->erase(it);
}

absl::Status SharedListener::Join(ArrivalInbox* inbox, int qd, int backlog,
                                  const std::atomic<int>* load) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (id_ == nullptr) return ErrnoError(EADDRINUSE, "port lost");
  if (!listening_) {
    // rdma_cm's own queue holds requests until a member polls: as deep as
    // the kernel allows; each member's backlog is enforced by the member.
    DEMI_RETURN_IF_ERROR(
        rdma::CheckCm(rdma_listen(id_.get(), SOMAXCONN), "rdma_listen"));
    listening_ = true;
  }
  members_.push_back(Member{inbox, qd, backlog, load});
  return absl::OkStatus();
}

void SharedListener::Leave(ArrivalInbox* inbox, int qd) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t i = 0; i < members_.size(); ++i) {
    if (members_[i].inbox == inbox && members_[i].qd == qd) {
      members_.erase(members_.begin() + static_cast<ptrdiff_t>(i));
      break;
    }
  }
  if (members_.empty() && listening_) StopListening();
}

void SharedListener::StopListening() {
  // rdma_cm cannot stop a listen: with nobody left to take requests, the
  // id goes (its queued requests are rejected with it) and a new one holds
  // the port for the sockets still bound, as a bound TCP socket refuses
  // connections.
  listening_ = false;
  sockaddr_in local = addr_;
  id_.reset();
  absl::StatusOr<rdma::CmIdPtr> id = rdma::CreateCmId(channel_.get(), nullptr);
  if (id.ok() &&
      rdma_bind_addr(id->get(), reinterpret_cast<sockaddr*>(&local)) == 0) {
    id_ = std::move(id).value();
  } else {
    DEMI_LOG(WARNING) << "shared listener: could not bind again";
  }
}

SharedListener::Member* SharedListener::Pick() {
  for (size_t tried = 0; tried < members_.size(); ++tried) {
    Member& member = members_[next_++ % members_.size()];
    int waiting =
        member.load->load(std::memory_order_relaxed) + member.inbox->queued();
    if (waiting < member.backlog) return &member;
  }
  return nullptr;
}

bool SharedListener::Poll() {
  std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock()) return false;  // Another member is at it.
  bool any = false;
  while (true) {
    absl::StatusOr<absl::optional<rdma::CmEvent>> event =
        rdma::PollCmEvent(channel_.get());
    if (!event.ok()) {
      DEMI_LOG(ERROR) << event.status();
      break;
    }
    if (!event->has_value()) break;
    any = true;
    if ((*event)->type != RDMA_CM_EVENT_CONNECT_REQUEST) continue;
    rdma::CmIdPtr id((*event)->id);  // Ours: handed on or rejected.
    Member* member = Pick();
    if (member == nullptr) {
      rdma::Reject(id.get()).IgnoreError();
      continue;
    }
    member->inbox->Deliver(
        Arrival{member->qd, std::move(id), std::move((*event)->private_data)});
  }
  return any;
}

}  // namespace demi
