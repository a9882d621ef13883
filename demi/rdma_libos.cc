#include "demi/rdma_libos.h"

#include <demi/libos.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
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

size_t PoolLimit() {
  const char* text = std::getenv("DEMI_POOL_LIMIT_MB");
  size_t mb = 0;
  if (text != nullptr && absl::SimpleAtoi(text, &mb) && mb > 0) {
    return mb << 20;
  }
  return kDefaultPoolLimit;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RdmaLibOs>> RdmaLibOs::Create() {
  std::unique_ptr<RdmaLibOs> libos(new RdmaLibOs());
  DEMI_RETURN_IF_ERROR(libos->Init());
  return libos;
}

absl::Status RdmaLibOs::Init() {
  int count = 0;
  device_list_.reset(rdma_get_devices(&count));
  if (device_list_ == nullptr || count == 0) {
    return ErrnoError(ENODEV, "no RDMA device");
  }
  DEMI_ASSIGN_OR_RETURN(cm_channel_, rdma::CreateEventChannel(true));
  DEMI_ASSIGN_OR_RETURN(
      sleep_,
      IdleSleep::Create(std::vector<ibv_context*>(device_list_.get(),
                                                  device_list_.get() + count),
                        cm_channel_.get()));
  std::vector<ibv_pd*> pds;
  for (int i = 0; i < count; ++i) {
    auto device = std::make_unique<Device>();
    device->context = device_list_.get()[i];
    device->index = i;
    ibv_device_attr attr = {};
    DEMI_RETURN_IF_ERROR(rdma::CheckRc(ibv_query_device(device->context, &attr),
                                       "ibv_query_device"));
    device->max_send_sge =
        static_cast<uint32_t>(std::min(attr.max_sge, DEMI_SGARRAY_MAXSIZE + 1));
    DEMI_ASSIGN_OR_RETURN(device->pd, rdma::AllocPd(device->context));
    device->send_cqs = std::make_unique<CqPool>(
        device->context, std::min(kCqDepth, attr.max_cqe), sleep_->channel(i));
    pds.push_back(device->pd.get());
    devices_.push_back(std::move(device));
  }
  pool_ = std::make_unique<SgaPool>(std::move(pds), PoolLimit());
  for (auto& device : devices_) {
    DEMI_ASSIGN_OR_RETURN(
        device->receive,
        SharedReceive::Create(device->context, sleep_->channel(device->index),
                              device->pd.get(), pool_.get(), device->index,
                              kEagerBufferSize));
  }
  keepalive_ = KeepaliveInterval();
  spin_ = SpinBudget();
  return absl::OkStatus();
}

RdmaLibOs::~RdmaLibOs() {
  // QPs before their CQs and SRQ: the queues go first, whatever their
  // state; then the SRQs, whose buffers go back to the pool before it goes.
  queues_.clear();
  for (auto& device : devices_) device->receive.reset();
}

RdmaLibOs::Device* RdmaLibOs::DeviceOf(ibv_context* context) {
  for (auto& device : devices_) {
    if (device->context == context) return device.get();
  }
  return nullptr;
}

ConnectionEnv RdmaLibOs::EnvFor(Device* device) {
  ConnectionEnv env;
  env.pool = pool_.get();
  env.tokens = &tokens_;
  env.receive = device->receive.get();
  env.credit_due = &credit_due_;
  env.aborted = &aborted_;
  env.pd = device->pd.get();
  env.device = device->index;
  env.signaled_sends = &device->signaled_sends;
  env.doorbell_due = &doorbell_due_;
  env.poll_passes = &poll_passes_;
  env.push_ops = &push_ops_;
  return env;
}

bool RdmaLibOs::Remember(int qd) {
  auto it = queues_.find(qd);
  if (it == queues_.end()) return false;
  found_qd_ = qd;
  found_ = it->second.get();
  return true;
}

absl::StatusOr<RdmaLibOs::Queue*> RdmaLibOs::Find(int qd) {
  Queue* queue = OpenQueue(qd);
  if (queue == nullptr) return ErrnoError(EBADF, "not an open queue");
  return queue;
}

RdmaLibOs::Queue* RdmaLibOs::NewQueue(Queue::Kind kind) {
  auto queue = std::make_unique<Queue>();
  queue->kind = kind;
  queue->qd = qds_.Next([this](int qd) { return queues_.contains(qd); });
  Queue* raw = queue.get();
  queues_.emplace(raw->qd, std::move(queue));
  return raw;
}

absl::StatusOr<int> RdmaLibOs::Socket(int domain, int type, int protocol) {
  (void)protocol;
  if (domain != AF_INET) return ErrnoError(ENOTSUP, "domain");
  if (type == SOCK_DGRAM) return NewQueue(Queue::Kind::kDatagram)->qd;
  if (type != SOCK_STREAM) return ErrnoError(ENOTSUP, "type");
  return NewQueue(Queue::Kind::kSocket)->qd;
}

absl::Status RdmaLibOs::Bind(int qd, const sockaddr* addr, socklen_t size) {
  DEMI_ASSIGN_OR_RETURN(Queue * queue, Find(qd));
  if (size != sizeof(sockaddr_in)) return ErrnoError(EINVAL, "address size");
  sockaddr_in local;
  std::memcpy(&local, addr, sizeof(local));
  if (local.sin_family != AF_INET) return ErrnoError(ENOTSUP, "family");
  if (queue->kind == Queue::Kind::kDatagram) return BindDatagram(*queue, local);
  if (queue->kind != Queue::Kind::kSocket || queue->bound ||
      queue->id != nullptr) {
    return ErrnoError(EINVAL, "already bound or in use");
  }
  if (local.sin_port == 0) return ErrnoError(ENOTSUP, "port 0");
  DEMI_ASSIGN_OR_RETURN(
      rdma::CmIdPtr id,
      rdma::CreateCmId(cm_channel_.get(),
                       reinterpret_cast<void*>(static_cast<intptr_t>(qd))));
  if (rdma_bind_addr(id.get(), reinterpret_cast<sockaddr*>(&local)) != 0) {
    int err = errno;
    return ErrnoError(err == ENODEV ? EADDRNOTAVAIL : err, "rdma_bind_addr");
  }
  queue->id = std::move(id);
  queue->bound = true;
  queue->local = local;
  return absl::OkStatus();
}

absl::Status RdmaLibOs::Listen(int qd, int backlog) {
  ExpectCmEvents();
  DEMI_ASSIGN_OR_RETURN(Queue * queue, Find(qd));
  if (backlog < 1 || backlog > SOMAXCONN) {
    return ErrnoError(EINVAL, "backlog");
  }
  if (queue->kind == Queue::Kind::kListener) {
    return ErrnoError(EADDRINUSE, "already listening");
  }
  if (queue->kind == Queue::Kind::kDatagram) {
    return ErrnoError(EOPNOTSUPP, "a datagram socket");
  }
  if (queue->kind == Queue::Kind::kConnection) {
    return ErrnoError(queue->connect_qt != 0 ? EADDRINUSE : EISCONN,
                      "a connection");
  }
  if (!queue->bound) return ErrnoError(EDESTADDRREQ, "not bound");
  DEMI_RETURN_IF_ERROR(
      rdma::CheckCm(rdma_listen(queue->id.get(), backlog), "rdma_listen"));
  queue->kind = Queue::Kind::kListener;
  queue->backlog = backlog;
  return absl::OkStatus();
}

absl::StatusOr<demi_qtoken_t> RdmaLibOs::Accept(int qd) {
  ExpectCmEvents();
  DEMI_ASSIGN_OR_RETURN(Queue * queue, Find(qd));
  if (queue->kind != Queue::Kind::kListener) {
    return ErrnoError(EINVAL, "not listening");
  }
  demi_qtoken_t qt = tokens_.Add(qd, DEMI_OPC_ACCEPT);
  queue->accepts.push_back(qt);
  MatchAccepts(*queue);
  return qt;
}

void RdmaLibOs::MatchAccepts(Queue& listener) {
  while (!listener.accepts.empty() && !listener.ready.empty()) {
    int qd = listener.ready.front();
    listener.ready.pop_front();
    auto it = queues_.find(qd);
    if (it == queues_.end()) continue;
    Queue& queue = *it->second;
    queue.listener = -1;  // Now the application's.
    tokens_.CompleteAccept(listener.accepts.front(), qd, queue.conn->peer_addr);
    listener.accepts.pop_front();
  }
}

int RdmaLibOs::CheckLength(const demi_sgarray_t& sga, uint32_t* total) {
  // EINVAL: no segments or too many, an empty one, or more than a piece.
  if (sga.sga_numsegs == 0 || sga.sga_numsegs > DEMI_SGARRAY_MAXSIZE) {
    return EINVAL;
  }
  uint64_t sum = 0;
  for (uint32_t i = 0; i < sga.sga_numsegs; ++i) {
    if (sga.sga_segs[i].sgaseg_buf == nullptr ||
        sga.sga_segs[i].sgaseg_len == 0) {
      return EINVAL;
    }
    sum += sga.sga_segs[i].sgaseg_len;
  }
  if (sum > kMaxMessageSize) return EINVAL;
  *total = static_cast<uint32_t>(sum);
  return 0;
}

int RdmaLibOs::Push(int qd, const demi_sgarray_t& sga, demi_qtoken_t* qt_out) {
  uint32_t total = 0;
  if (int err = CheckLength(sga, &total); err != 0) return err;
  Queue* queue = OpenQueue(qd);
  if (queue == nullptr) return EBADF;
  if (queue->kind == Queue::Kind::kDatagram) {
    return rdma::ErrnoOrOutput(PushDatagram(*queue, sga, total, nullptr),
                               qt_out);
  }
  if (!Connected(*queue)) {
    return ENOTCONN;
  }
  demi_qtoken_t qt = tokens_.Add(qd, DEMI_OPC_PUSH);
  if (int err = queue->conn->Push(qt, sga, total); err != 0) {
    tokens_.Erase(qt);
    return err == ENOMEM ? EAGAIN : err;
  }
  *qt_out = qt;
  return 0;
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
  DEMI_ASSIGN_OR_RETURN(Queue * queue, Find(qd));
  if (queue->kind != Queue::Kind::kDatagram) {
    return ErrnoError(ENOTSUP, "pushto needs a datagram socket");
  }
  if (dest.sin_family != AF_INET) return ErrnoError(ENOTSUP, "family");
  if (dest.sin_port == 0 || dest.sin_addr.s_addr == htonl(INADDR_ANY)) {
    return ErrnoError(EINVAL, "destination");
  }
  return PushDatagram(*queue, sga, total, &dest);
}

int RdmaLibOs::Pop(int qd, demi_qtoken_t* qt_out) {
  Queue* queue = OpenQueue(qd);
  if (queue == nullptr) return EBADF;
  if (queue->kind == Queue::Kind::kDatagram) {
    return rdma::ErrnoOrOutput(PopDatagram(*queue), qt_out);
  }
  if (!Connected(*queue)) {
    return ENOTCONN;
  }
  demi_qtoken_t qt = tokens_.Add(qd, DEMI_OPC_POP);
  queue->conn->Pop(qt);
  *qt_out = qt;
  return 0;
}

demi_sgarray_t RdmaLibOs::SgaAlloc(size_t size) {
  demi_sgarray_t sga;
  std::memset(&sga, 0, sizeof(sga));
  if (size == 0 || size > kMaxMessageSize) return sga;
  absl::StatusOr<Buffer*> buffer = pool_->Allocate(size);
  if (!buffer.ok()) return sga;
  sga.sga_buf = pool_->Lend(*buffer);
  sga.sga_numsegs = 1;
  sga.sga_segs[0].sgaseg_buf = (*buffer)->data;
  sga.sga_segs[0].sgaseg_len = static_cast<uint32_t>(size);
  return sga;
}

int RdmaLibOs::SgaFree(const demi_sgarray_t& sga) {
  if (sga.sga_numsegs == 0 || sga.sga_numsegs > DEMI_SGARRAY_MAXSIZE) {
    return EINVAL;
  }
  Buffer* buffer = pool_->Reclaim(sga.sga_buf);
  if (buffer == nullptr) return EINVAL;  // Not an array the application holds.
  pool_->Unref(buffer);
  return 0;
}

absl::Status RdmaLibOs::SetSockOpt(int qd, int level, int optname,
                                   const void* optval, socklen_t optlen) {
  DEMI_ASSIGN_OR_RETURN(Queue * queue, Find(qd));
  if (level != SOL_SOCKET) return ErrnoError(ENOTSUP, "level");
  if (optname != SO_LINGER) return ErrnoError(ENOPROTOOPT, "option");
  if (optval == nullptr || optlen != sizeof(struct linger)) {
    return ErrnoError(EINVAL, "option value");
  }
  std::memcpy(&queue->linger, optval, sizeof(queue->linger));
  return absl::OkStatus();
}

absl::Status RdmaLibOs::GetSockOpt(int qd, int level, int optname, void* optval,
                                   socklen_t* optlen) {
  DEMI_ASSIGN_OR_RETURN(Queue * queue, Find(qd));
  if (level != SOL_SOCKET) return ErrnoError(ENOTSUP, "level");
  if (optname == DEMI_SO_DATAGRAM_STATS &&
      queue->kind == Queue::Kind::kDatagram) {
    return GetDatagramStats(*queue, optval, optlen);
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

absl::Status RdmaLibOs::GetPeerName(int qd, sockaddr* addr,
                                    socklen_t* addrlen) {
  if (addr == nullptr || addrlen == nullptr ||
      *addrlen != sizeof(sockaddr_in)) {
    return ErrnoError(EINVAL, "address buffer");
  }
  DEMI_ASSIGN_OR_RETURN(Queue * queue, Find(qd));
  if (queue->kind == Queue::Kind::kDatagram) {
    if (queue->dgram == nullptr || !queue->dgram->has_peer) {
      return ErrnoError(ENOTCONN, "no default destination");
    }
    std::memcpy(addr, &queue->dgram->peer, sizeof(sockaddr_in));
    return absl::OkStatus();
  }
  if (!Connected(*queue)) {
    return ErrnoError(ENOTCONN, "not connected");
  }
  std::memcpy(addr, &queue->conn->peer_addr, sizeof(sockaddr_in));
  return absl::OkStatus();
}

void RdmaLibOs::Destroy(int qd) {
  closed_.erase(qd);
  auto it = queues_.find(qd);
  if (it == queues_.end()) return;
  Queue& queue = *it->second;
  if (queue.dgram != nullptr) {
    datagrams_.erase(
        std::find(datagrams_.begin(), datagrams_.end(), queue.dgram.get()));
  }
  Device* device = queue.device;
  bool queue_had_qp = queue.qp != nullptr;
  if (queue.qp != nullptr) {
    conn_by_qpn_.erase(queue.qp->qp->qp_num);
    last_conn_ = nullptr;
  }
  if (queue.send_cq != nullptr) {
    device->send_cqs->Release(queue.send_cq, kSendDepth);
  }
  queues_.erase(it);
  if (qd == found_qd_) found_ = nullptr;
  // Messages the QP took in before it went may still wait in the shared
  // receive CQ under its number, which a new QP could get: handle them
  // now, while the number is nobody's.
  if (device != nullptr && queue_had_qp) {
    while (PollCompletions(*device)) {
    }
  }
}

}  // namespace demi
