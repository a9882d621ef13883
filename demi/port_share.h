// SO_REUSEPORT for rdma_cm, which has no port sharing of its own: the
// threads of a process that listen on one address and port share one
// rdma_cm listener. Whichever of them polls it first takes its connection
// requests and hands each to one listening thread, round-robin among those
// with room in their backlog: the request's cm id moves to that thread's
// event channel (rdma_migrate_id) and lands in its inbox, which the thread's
// progress engine empties like its own connection requests.
#ifndef DEMI_DEMI_PORT_SHARE_H_
#define DEMI_DEMI_PORT_SHARE_H_

#include <netinet/in.h>
#include <rdma/rdma_cma.h>

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rdma/verbs_ptr.h"

namespace demi {

// A connection request handed to a listening thread.
struct Arrival {
  int listener_qd = -1;  // The listening queue it is for.
  rdma::CmIdPtr id;      // On the receiving thread's channel already.
  std::string private_data;
};

// A thread's mailbox for arrivals: filled by whichever thread polls a
// shared listener, emptied by its owner. An eventfd wakes the owner when it
// sleeps.
class ArrivalInbox {
 public:
  // The ids of arrivals move to `channel` (borrowed): the owner's.
  static absl::StatusOr<std::unique_ptr<ArrivalInbox>> Create(
      rdma_event_channel* channel);
  ~ArrivalInbox();
  ArrivalInbox(const ArrivalInbox&) = delete;
  ArrivalInbox& operator=(const ArrivalInbox&) = delete;

  // Any thread. Moves `arrival.id` to the owner's channel first.
  void Deliver(Arrival arrival);
  // The owner: one load, for the progress engine to look cheaply.
  bool MayHaveArrivals() const {
    return queued_.load(std::memory_order_acquire) > 0;
  }
  // The owner: every arrival delivered so far.
  std::vector<Arrival> TakeAll();
  // Arrivals delivered and not yet taken (racy; for spreading requests).
  int queued() const { return queued_.load(std::memory_order_relaxed); }
  // Readable while arrivals wait: for the owner's epoll set.
  int fd() const { return event_fd_; }

 private:
  ArrivalInbox() = default;

  rdma_event_channel* channel_ = nullptr;
  int event_fd_ = -1;
  std::atomic<int> queued_{0};
  // std::mutex, not absl::Mutex: ThreadSanitizer sees it.
  std::mutex mutex_;
  std::vector<Arrival> arrivals_;  // Guarded by mutex_.
};

class SharedListener {
 public:
  // The shared listener on `addr`, bound by the first caller; EADDRINUSE if
  // the port is taken otherwise (a socket without SO_REUSEPORT, another
  // process). Each bound socket holds a reference; the last one unbinds.
  static absl::StatusOr<std::shared_ptr<SharedListener>> Bind(
      const sockaddr_in& addr);
  ~SharedListener();
  SharedListener(const SharedListener&) = delete;
  SharedListener& operator=(const SharedListener&) = delete;

  // The listening queue `qd` of the thread whose inbox is `inbox` takes
  // connections from now on, up to `backlog` waiting at a time (`load`:
  // how many wait now, kept by the thread, read here to spread requests).
  absl::Status Join(ArrivalInbox* inbox, int qd, int backlog,
                    const std::atomic<int>* load);
  // It takes none from now on (closed, or its thread is ending).
  void Leave(ArrivalInbox* inbox, int qd);

  // Takes the waiting connection requests, unless another thread is at it,
  // and hands each to a member (rejecting it if every backlog is full).
  // Returns whether there was one.
  bool Poll();
  // Readable while requests wait: for each member's epoll set.
  int fd() const { return channel_->fd; }

 private:
  struct Member {
    ArrivalInbox* inbox;
    int qd;
    int backlog;
    const std::atomic<int>* load;
  };

  SharedListener() = default;
  // The member to give the next request to, or null if none has room.
  Member* Pick();  // With mutex_ held.
  // The last member left: no more listening (with mutex_ held).
  void StopListening();

  uint64_t key_ = 0;
  sockaddr_in addr_ = {};
  bool registered_ = false;  // In the registry under key_.
  rdma::EventChannelPtr channel_;
  rdma::CmIdPtr id_;
  std::mutex mutex_;  // Guards the three below.
  bool listening_ = false;
  std::vector<Member> members_;
  size_t next_ = 0;
};

}  // namespace demi

#endif  // DEMI_DEMI_PORT_SHARE_H_
