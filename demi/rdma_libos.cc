// RdmaLibOs's life (devices, pool, teardown) and the calls on open queues
// that are not setup or close: socket, push, pop, the sga calls, socket
// options. Push and Pop are the per-message path: one table lookup (none
// for the queue of the call before), no Status.
#include "demi/rdma_libos.h"

#include <demi/libos.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "demi/pool_limit.h"
#include "demi/rdma_path.h"
#include "demi/shared_devices.h"
#include "rdma/log.h"
#include "rdma/status_util.h"
#include "rdma/verbs_call.h"

namespace demi {
namespace {

using rdma::ErrnoError;

absl::Duration KeepaliveInterval() {
  const char* text = std::getenv("DEMI_KEEPALIVE_MS");
  int64_t ms = 0;
  if (text != nullptr && absl::SimpleAtoi(text, &ms) && ms >= 0) {
    return ms == 0 ? absl::InfiniteDuration() : absl::Milliseconds(ms);
  }
  return kDefaultKeepalive;
}

// DEMI_SPIN_US: how long a wait spins before it sleeps (-1: forever).
absl::Duration SpinBudget() {
  const char* text = std::getenv("DEMI_SPIN_US");
  int64_t us = 0;
  if (text != nullptr && absl::SimpleAtoi(text, &us)) {
    if (us == -1) return absl::InfiniteDuration();
    if (us >= 0) return absl::Microseconds(us);
  }
  return kDefaultSpin;
}

// DEMI_FULL_BUFFER_CONNECTIONS: connections per device with
// kEagerBufferSize receive buffers (at least 1).
uint32_t FullBufferConnections() {
  const char* text = std::getenv("DEMI_FULL_BUFFER_CONNECTIONS");
  uint32_t n = 0;
  if (text != nullptr && absl::SimpleAtoi(text, &n) && n > 0) return n;
  return kFullBufferConnections;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RdmaLibOs>> RdmaLibOs::Create() {
  std::unique_ptr<RdmaLibOs> libos(new RdmaLibOs());
  DEMI_RETURN_IF_ERROR(libos->Init());
  return libos;
}

absl::Status RdmaLibOs::Init() {
  DEMI_ASSIGN_OR_RETURN(const std::vector<SharedDevice>* shared,
                        SharedDevices());
  DEMI_ASSIGN_OR_RETURN(cm_channel_, rdma::CreateEventChannel(true));
  DEMI_ASSIGN_OR_RETURN(inbox_, ArrivalInbox::Create(cm_channel_.get()));
  std::vector<ibv_context*> contexts;
  for (const SharedDevice& device : *shared) contexts.push_back(device.context);
  DEMI_ASSIGN_OR_RETURN(
      sleep_, IdleSleep::Create(contexts, cm_channel_.get(), inbox_->fd()));
  std::vector<ibv_pd*> pds;
  for (const SharedDevice& shared_device : *shared) {
    auto device = std::make_unique<ThreadDevice>();
    device->context = shared_device.context;
    device->index = shared_device.index;
    device->pd = shared_device.pd;
    device->max_send_sge = shared_device.max_send_sge;
    device->read_depth = shared_device.read_depth;
    device->binds_after_drain = shared_device.binds_after_drain;
    device->send_cqs = std::make_unique<CqPool>(
        device->context, std::min(kCqDepth, shared_device.max_cqe),
        sleep_->channel(device->index), kIdleCqTime);
    pds.push_back(device->pd);
    devices_.push_back(std::move(device));
  }
  pool_ = std::make_unique<SgaPool>(std::move(pds), PoolLimitFromEnv());
  for (auto& device : devices_) {
    DEMI_ASSIGN_OR_RETURN(
        std::unique_ptr<SharedReceive> receive,
        SharedReceive::Create(device->context, sleep_->channel(device->index),
                              device->pd, pool_.get(), device->index,
                              kEagerBufferSize, FullBufferConnections()));
    device->receives.push_back(std::move(receive));
  }
  keepalive_ = KeepaliveInterval();
  if (keepalive_ != absl::InfiniteDuration()) {
    absl::Duration tick = keepalive_ / kKeepaliveTicks;
    stall_ticks_ = std::max<uint32_t>(
        kStallProbeIntervals * kKeepaliveTicks,
        static_cast<uint32_t>(absl::Ceil(kMinStallWait, tick) / tick));
  }
  spin_ = SpinBudget();
  return absl::OkStatus();
}

RdmaLibOs::~RdmaLibOs() {
  // QPs before their CQs and SRQ: the queues go first, whatever their
  // state; then the SRQs, whose buffers go back to the pool before it goes.
  queues_.ForEach([this](Queue& queue) { LeaveShare(queue); });
  queues_.Clear();
  for (auto& device : devices_) device->receives.clear();
  // Pops done but never waited for: their buffers are nobody's now.
  tokens_.ForEachUntakenPop([this](void* handle) {
    if (Buffer* buffer = pool_->Reclaim(handle)) pool_->Unref(buffer);
  });
  // Only the application's holds are left: pieces it may free from another
  // thread later, so the pool outlives this libOS until they come back.
  SgaPool::Retire(std::move(pool_));
  GiveBackTokenRange(token_range_);
}

ThreadDevice* RdmaLibOs::DeviceOf(ibv_context* context) {
  for (auto& device : devices_) {
    if (device->context == context) return device.get();
  }
  return nullptr;
}

absl::StatusOr<SharedReceive*> RdmaLibOs::ReceiveFor(ThreadDevice& device) {
  for (auto& receive : device.receives) {
    if (receive->credits().HasRoom()) return receive.get();
  }
  DEMI_ASSIGN_OR_RETURN(
      std::unique_ptr<SharedReceive> receive,
      SharedReceive::Create(device.context, sleep_->channel(device.index),
                            device.pd, pool_.get(), device.index,
                            kSmallBufferSize, UINT32_MAX));
  device.receives.push_back(std::move(receive));
  return device.receives.back().get();
}

ConnectionEnv RdmaLibOs::EnvFor(ThreadDevice* device, SharedReceive* receive) {
  ConnectionEnv env;
  env.pool = pool_.get();
  env.tokens = &tokens_;
  env.receive = receive;
  env.binds_after_drain = device->binds_after_drain;
  env.credit_due = &credit_due_;
  env.stranded = &stranded_;
  env.aborted = &aborted_;
  env.pd = device->pd;
  env.device = device->index;
  env.signaled_sends = &device->signaled_sends;
  env.doorbell_due = &doorbell_due_;
  env.poll_passes = &poll_passes_;
  env.push_ops = &push_ops_;
  return env;
}

absl::StatusOr<int> RdmaLibOs::Socket(int domain, int type, int protocol) {
  (void)protocol;
  if (domain != AF_INET) return ErrnoError(ENOTSUP, "domain");
  if (type == SOCK_DGRAM) return queues_.Add<DatagramState>()->qd;
  if (type != SOCK_STREAM) return ErrnoError(ENOTSUP, "type");
  return queues_.Add<SocketState>()->qd;
}

absl::StatusOr<demi_qtoken_t> RdmaLibOs::PushTo(int qd,
                                                const demi_sgarray_t& sga,
                                                const sockaddr* addr,
                                                socklen_t size) {
  uint32_t total = 0;
  if (int err = CheckLength(sga, &total); err != 0) {
    return ErrnoError(err, "scatter-gather array");
  }
  if (size != sizeof(sockaddr_in)) return ErrnoError(EINVAL, "address size");
  sockaddr_in dest;
  std::memcpy(&dest, addr, sizeof(dest));
  DEMI_ASSIGN_OR_RETURN(Queue * queue, queues_.Find(qd));
  if (queue->datagram() == nullptr) {
    return ErrnoError(ENOTSUP, "pushto needs a datagram socket");
  }
  if (dest.sin_family != AF_INET) return ErrnoError(ENOTSUP, "family");
  if (dest.sin_port == 0 || dest.sin_addr.s_addr == htonl(INADDR_ANY)) {
    return ErrnoError(EINVAL, "destination");
  }
  demi_qtoken_t qt = 0;
  if (int err = PushDatagram(*queue, sga, total, &dest, &qt); err != 0) {
    return ErrnoError(err, "demi_pushto");
  }
  return qt;
}

demi_sgarray_t RdmaLibOs::SgaAlloc(size_t size) {
  demi_sgarray_t sga;
  std::memset(&sga, 0, sizeof(sga));
  if (size == 0 || size > kMaxMessageSize) return sga;
  // A thread that only allocates (its buffers freed by workers) must see
  // them back without running its progress engine.
  pool_->DrainOtherThreadFrees();
  absl::StatusOr<Buffer*> buffer = pool_->Allocate(size);
  if (!buffer.ok()) return sga;
  sga.sga_buf = pool_->Lend(*buffer);
  sga.sga_numsegs = 1;
  sga.sga_segs[0].sgaseg_buf = (*buffer)->data;
  sga.sga_segs[0].sgaseg_len = static_cast<uint32_t>(size);
  return sga;
}

namespace {

// The zero-length sga of a pop at the end of a stream (EOF): it holds
// nothing, and a program that frees every popped sga frees it too.
bool IsEndOfStream(const demi_sgarray_t& sga) {
  return sga.sga_buf == nullptr && sga.sga_numsegs == 1 &&
         sga.sga_segs[0].sgaseg_buf == nullptr &&
         sga.sga_segs[0].sgaseg_len == 0;
}

}  // namespace

int RdmaLibOs::SgaFreeOtherThread(const demi_sgarray_t& sga) {
  // Another thread's (popped there, handed to this one): it goes back to
  // its owner, which takes it in at its next pass.
  SgaPool* owner = SgaPool::OwnerOf(sga.sga_buf);
  if (owner == nullptr || owner == pool_.get()) {
    // Not an array the application holds.
    return IsEndOfStream(sga) ? 0 : EINVAL;
  }
  return owner->FreeFromOtherThread(sga.sga_buf);
}

int RdmaLibOs::SgaFreeWithoutLibOs(const demi_sgarray_t& sga, bool forked) {
  if (IsEndOfStream(sga)) return 0;
  SgaPool* owner = nullptr;
  if (!forked && sga.sga_numsegs != 0 &&
      sga.sga_numsegs <= DEMI_SGARRAY_MAXSIZE) {
    owner = SgaPool::OwnerOf(sga.sga_buf);
  }
  return owner == nullptr ? ENOSYS : owner->FreeFromOtherThread(sga.sga_buf);
}

absl::Status RdmaLibOs::SetSockOpt(int qd, int level, int optname,
                                   const void* optval, socklen_t optlen) {
  DEMI_ASSIGN_OR_RETURN(Queue * queue, queues_.Find(qd));
  if (level != SOL_SOCKET) return ErrnoError(ENOTSUP, "level");
  if (optname == SO_REUSEPORT) {
    if (queue->datagram() != nullptr) {
      return ErrnoError(ENOPROTOOPT, "SO_REUSEPORT on a datagram socket");
    }
    if (optval == nullptr || optlen < sizeof(int)) {
      return ErrnoError(EINVAL, "option value");
    }
    // As in Linux, it counts at the bind: set after it, it changes nothing.
    queue->reuse_port = *static_cast<const int*>(optval) != 0;
    return absl::OkStatus();
  }
  if (optname != SO_LINGER) return ErrnoError(ENOPROTOOPT, "option");
  if (optval == nullptr || optlen != sizeof(struct linger)) {
    return ErrnoError(EINVAL, "option value");
  }
  struct linger linger;
  std::memcpy(&linger, optval, sizeof(linger));
  // A negative time would put the close's deadline in the past: the flush
  // would end at once with ETIMEDOUT and reset the peer.
  if (linger.l_onoff != 0 && linger.l_linger < 0) {
    return ErrnoError(EINVAL, "negative linger time");
  }
  queue->linger = linger;
  return absl::OkStatus();
}

absl::Status RdmaLibOs::GetSockOpt(int qd, int level, int optname, void* optval,
                                   socklen_t* optlen) {
  DEMI_ASSIGN_OR_RETURN(Queue * queue, queues_.Find(qd));
  if (level != SOL_SOCKET) return ErrnoError(ENOTSUP, "level");
  if (optname == DEMI_SO_DATAGRAM_STATS && queue->datagram() != nullptr) {
    return GetDatagramStats(*queue, optval, optlen);
  }
  if (optname == DEMI_SO_RDMA_PATH) return GetRdmaPath(*queue, optval, optlen);
  if (optname == SO_REUSEPORT && queue->datagram() == nullptr) {
    if (optval == nullptr || optlen == nullptr || *optlen < sizeof(int)) {
      return ErrnoError(EINVAL, "option buffer");
    }
    int on = queue->reuse_port ? 1 : 0;
    std::memcpy(optval, &on, sizeof(on));
    *optlen = sizeof(on);
    return absl::OkStatus();
  }
  if (optname != SO_LINGER) return ErrnoError(ENOPROTOOPT, "option");
  if (optval == nullptr || optlen == nullptr ||
      *optlen < sizeof(struct linger)) {
    return ErrnoError(EINVAL, "option buffer");
  }
  std::memcpy(optval, &queue->linger, sizeof(queue->linger));
  *optlen = sizeof(struct linger);
  return absl::OkStatus();
}

absl::Status RdmaLibOs::GetRdmaPath(const Queue& queue, void* optval,
                                    socklen_t* optlen) {
  if (optval == nullptr || optlen == nullptr ||
      *optlen < sizeof(demi_rdma_path_t)) {
    return ErrnoError(EINVAL, "option buffer");
  }
  absl::StatusOr<demi_rdma_path_t> path;
  if (queue.datagram() != nullptr) {
    if (queue.dgram() == nullptr) return ErrnoError(ENOTCONN, "not bound");
    path = QueryDatagramPath(queue.id.get());
  } else {
    const ConnectionState* connection = queue.connection();
    if (connection == nullptr || !connection->connected() ||
        connection->qp == nullptr) {
      return ErrnoError(ENOTCONN, "not connected");
    }
    path = QueryConnectionPath(connection->qp.get());
  }
  if (!path.ok()) return path.status();
  std::memcpy(optval, &*path, sizeof(demi_rdma_path_t));
  *optlen = sizeof(demi_rdma_path_t);
  return absl::OkStatus();
}

absl::Status RdmaLibOs::GetPeerName(int qd, sockaddr* addr,
                                    socklen_t* addrlen) {
  if (addr == nullptr || addrlen == nullptr ||
      *addrlen != sizeof(sockaddr_in)) {
    return ErrnoError(EINVAL, "address buffer");
  }
  DEMI_ASSIGN_OR_RETURN(Queue * queue, queues_.Find(qd));
  if (queue->datagram() != nullptr) {
    DatagramSocket* dgram = queue->dgram();
    if (dgram == nullptr || !dgram->has_peer) {
      return ErrnoError(ENOTCONN, "no default destination");
    }
    std::memcpy(addr, &dgram->peer, sizeof(sockaddr_in));
    return absl::OkStatus();
  }
  ConnectionState* connection = queue->connected();
  if (connection == nullptr) return ErrnoError(ENOTCONN, "not connected");
  std::memcpy(addr, &connection->conn->peer_addr, sizeof(sockaddr_in));
  return absl::OkStatus();
}

}  // namespace demi
