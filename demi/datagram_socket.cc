#include "demi/datagram_socket.h"

#include <arpa/inet.h>
#include <endian.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <utility>

#include "absl/base/attributes.h"
#include "demi/push_builder.h"
#include "demi/staged_chain.h"
#include "rdma/log.h"
#include "rdma/status_util.h"
#include "rdma/verbs_call.h"
#include "rdma/wc_status.h"

namespace demi {
namespace {

constexpr uint32_t kHeaderSize = sizeof(DatagramHeader);
// The inline data a UD send may carry, asked for (devices may give less).
constexpr uint32_t kWantInline = 128;

// The sges covering [offset, offset + length) of the bytes that `segs`
// describe, written to `out`; returns how many.
int SliceSges(const ibv_sge* segs, uint32_t num_segs, uint32_t offset,
              uint32_t length, ibv_sge* out) {
  int n = 0;
  for (uint32_t i = 0; i < num_segs && length > 0; ++i) {
    if (offset >= segs[i].length) {
      offset -= segs[i].length;
      continue;
    }
    uint32_t take = std::min(segs[i].length - offset, length);
    out[n++] = {segs[i].addr + offset, take, segs[i].lkey};
    length -= take;
    offset = 0;
  }
  return n;
}

uint64_t Mix(uint64_t x) {  // SplitMix64's finalizer.
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9u;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebu;
  return x ^ (x >> 31);
}

// A keyed permutation of 32-bit numbers: a four-round Feistel network over
// 16-bit halves, a bijection whatever the round function. Not cryptography:
// it only has to keep ids unpredictable from outside.
uint32_t PermuteId(const uint64_t key[2], uint32_t n) {
  uint32_t left = n >> 16;
  uint32_t right = n & 0xffff;
  for (uint64_t round = 0; round < 4; ++round) {
    uint64_t f = Mix(key[round & 1] + (round << 32) + right);
    uint32_t next = (left ^ static_cast<uint32_t>(f >> 48)) & 0xffff;
    left = right;
    right = next;
  }
  return (left << 16) | right;
}

}  // namespace

DatagramSocket::DatagramSocket(DatagramEnv env, rdma_cm_id* id,
                               const sockaddr_in& local)
    : env_(env),
      id_(id),
      local_(local),
      routes_(env.cm_channel,
              reinterpret_cast<void*>(static_cast<intptr_t>(env.qd)), env.pd,
              local, kMaxRoutes),
      reassembly_(env.pool, ReassemblyLimits{}) {
  // The first datagram goes at once.
  if (env.poll_passes != nullptr) posted_pass_ = *env.poll_passes - 1;
  std::random_device random;
  for (uint64_t& k : id_key_) k = (uint64_t{random()} << 32) | random();
  next_id_ = static_cast<uint32_t>(Mix(id_key_[0] ^ id_key_[1]));
}

absl::StatusOr<std::unique_ptr<DatagramSocket>> DatagramSocket::Create(
    DatagramEnv env, rdma_cm_id* id, const sockaddr_in& local) {
  std::unique_ptr<DatagramSocket> socket(new DatagramSocket(env, id, local));
  DEMI_RETURN_IF_ERROR(socket->Init(id->verbs));
  return socket;
}

absl::Status DatagramSocket::Init(ibv_context* context) {
  ibv_port_attr port = {};
  DEMI_RETURN_IF_ERROR(rdma::CheckRc(
      ibv_query_port(context, id_->port_num, &port), "ibv_query_port"));
  ud_mtu_ = 128u << port.active_mtu;  // IBV_MTU_256 is 1.
  // RoCE packets name their source's IPv4 address (datagram_wire.h).
  takes_compact_ = port.link_layer == IBV_LINK_LAYER_ETHERNET;
  sidr_reply_ = EncodeSidrReply(takes_compact_, ud_mtu_);
  ibv_device_attr attr = {};
  DEMI_RETURN_IF_ERROR(
      rdma::CheckRc(ibv_query_device(context, &attr), "ibv_query_device"));
  DEMI_ASSIGN_OR_RETURN(
      send_cq_, rdma::CreateCq(context, kDatagramSendDepth, env_.channel));
  DEMI_ASSIGN_OR_RETURN(
      recv_cq_, rdma::CreateCq(context, kDatagramRecvDepth, env_.channel));
  rdma::QpCaps caps;
  caps.max_send_wr = kDatagramSendDepth;
  caps.max_recv_wr = kDatagramRecvDepth;
  caps.max_send_sge =
      static_cast<uint32_t>(std::min(attr.max_sge, DEMI_SGARRAY_MAXSIZE + 1));
  caps.max_recv_sge = 1;
  caps.max_inline_data = kWantInline;
  absl::StatusOr<rdma::CmQpPtr> qp =
      rdma::CreateUdQp(id_, env_.pd, send_cq_.get(), recv_cq_.get(), &caps);
  if (!qp.ok()) {
    caps.max_inline_data = 0;
    qp = rdma::CreateUdQp(id_, env_.pd, send_cq_.get(), recv_cq_.get(), &caps);
  }
  if (!qp.ok()) return qp.status();
  qp_ = std::move(qp).value();
  max_inline_ = caps.max_inline_data;
  max_send_sge_ = caps.max_send_sge;
  headers_.resize(kDatagramSendDepth);
  DEMI_ASSIGN_OR_RETURN(
      headers_mr_,
      rdma::RegisterMr(
          env_.pd,
          absl::MakeSpan(reinterpret_cast<std::byte*>(headers_.data()),
                         headers_.size() * kHeaderSize),
          IBV_ACCESS_LOCAL_WRITE));
  send_slots_.resize(kDatagramSendDepth);
  send_wr_.opcode = IBV_WR_SEND;
  recv_slots_.resize(kDatagramRecvDepth);
  for (uint32_t i = 0; i < kDatagramRecvDepth; ++i) empty_slots_.push_back(i);
  Refill();
  // Some buffers are enough: the rest are posted on timers as memory comes
  // back (refill_dry_), and meanwhile a full queue drops datagrams, as UDP
  // may. None would be a socket that cannot receive at all.
  if (empty_slots_.size() == kDatagramRecvDepth) {
    return rdma::ErrnoError(ENOMEM, "no memory for receive buffers");
  }
  // Peers resolve this socket with SIDR requests on its id.
  DEMI_RETURN_IF_ERROR(
      rdma::CheckCm(rdma_listen(id_, SOMAXCONN), "rdma_listen (UDP)"));
  return absl::OkStatus();
}

DatagramSocket::~DatagramSocket() {
  DatagramStats s = stats();
  DEMI_LOG(INFO) << "datagram socket " << inet_ntoa(local_.sin_addr) << ":"
                 << ntohs(local_.sin_port) << ": sent " << s.sent
                 << ", received " << s.received << "; dropped: malformed "
                 << s.malformed << ", queue full " << s.queue_full
                 << ", reassembly timed out " << s.reassembly.timed_out
                 << ", evicted " << s.reassembly.evicted << ", inconsistent "
                 << s.reassembly.inconsistent << ", no memory "
                 << s.reassembly.no_memory;
  // First: with the QP gone nothing is posted, so the buffers that
  // recv_slots_ and incoming_ hold may go back to the pool with them.
  qp_.reset();
  DropStaged(0, EBADF);
  for (auto* ops : {&backlog_, &in_flight_}) {
    for (auto& op : *ops) {
      if (op->error == 0) op->error = EBADF;
      FinishPush(*op);
    }
  }
  FailPops(EBADF);
}

DatagramStats DatagramSocket::stats() const {
  DatagramStats s = stats_;
  s.reassembly = reassembly_.drops();
  return s;
}

int DatagramSocket::PushNotInline(const demi_sgarray_t& sga, uint32_t length,
                                  const sockaddr_in& dest,
                                  demi_qtoken_t* qt_out) {
  if (length > kMaxDatagram) return EMSGSIZE;
  if (error_ != 0) {
    *qt_out = env_.tokens->AddFailed(env_.qd, DEMI_OPC_PUSH, error_);
    return 0;
  }
  std::unique_ptr<PushOp> owned;
  if (spare_ops_.empty()) {
    owned = std::make_unique<PushOp>();
  } else {
    owned = std::move(spare_ops_.back());
    spare_ops_.pop_back();
  }
  // What FinishPush left as it is.
  PushOp& op = *owned;
  op.next_fragment = 0;
  op.sges.clear();
  op.error = 0;
  op.dest = dest;
  op.route_key = RouteKey(dest);
  op.length = length;
  // Registered memory goes as it is; anything else is copied, all of it
  // into one piece if a fragment cannot gather so many segments.
  PushMemory memory = {env_.pool, env_.pd, env_.device, max_send_sge_};
  if (!PrepareBytes(memory, sga, length, op.sges, op.holds).ok()) {
    op.holds.clear();
    Recycle(std::move(owned));
    return EAGAIN;  // No memory to copy into.
  }
  // The token once nothing can fail: no Erase.
  op.qt = env_.tokens->Add(env_.qd, DEMI_OPC_PUSH);
  *qt_out = op.qt;
  backlog_.push_back(std::move(owned));
  Service();
  return 0;
}

void DatagramSocket::Service() {
  for (auto it = backlog_.begin(); it != backlog_.end();) {
    if (send_head_ - send_tail_ >= kDatagramSendDepth) return;
    PushOp& op = **it;
    if (!op.routed) {
      absl::StatusOr<const Route*> route = routes_.Find(op.dest);
      int err = !route.ok()                     ? rdma::ErrnoOf(route.status())
                : *route == nullptr && closing_ ? EBADF  // Nobody will wait.
                                                : 0;
      if (err != 0) {
        op.error = err;
        FinishPush(op);
        Recycle(std::move(*it));
        it = backlog_.erase(it);
        continue;
      }
      if (*route == nullptr) {  // Being resolved: later pushes may go.
        ++it;
        continue;
      }
      op.route = **route;
      op.routed = true;
      routes_.Hold(op.route_key);
      // Cut at the smaller MTU of the two ports (the destination's, if it
      // said one that can be), so that its receive buffers hold each.
      uint32_t mtu = ud_mtu_;
      if (op.route.mtu >= kMinUdMtu) mtu = std::min(mtu, op.route.mtu);
      op.fragment_size = FragmentPayload(mtu);
      op.fragment_count = FragmentCount(op.length, op.fragment_size);
      // Only reassembly reads the id: a datagram of one fragment is
      // delivered as it comes, and needs none.
      op.id = op.fragment_count > 1 ? PermuteId(id_key_, next_id_++) : 0;
    }
    while (op.next_fragment < op.fragment_count &&
           send_head_ - send_tail_ < kDatagramSendDepth && error_ == 0) {
      PostFragment(op);
    }
    if (op.next_fragment < op.fragment_count && error_ == 0) return;
    in_flight_.push_back(std::move(*it));
    it = backlog_.erase(it);
  }
}

DatagramHeader* DatagramSocket::NextHeader(uint32_t id, uint32_t length,
                                           uint32_t count, uint32_t index,
                                           uint32_t offset) {
  DatagramHeader& h = headers_[send_head_ % kDatagramSendDepth];
  h = {};
  h.magic = kDatagramMagic;
  h.version = kDatagramVersion;
  h.src_port = local_.sin_port;
  h.src_addr = local_.sin_addr.s_addr;
  h.fragment_count = static_cast<uint16_t>(count);
  h.fragment_index = static_cast<uint16_t>(index);
  h.id = id;
  h.total_length = length;
  h.offset = offset;
  return &h;
}

// Inline in its callers: the inline push's path is every small datagram's.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool DatagramSocket::PostSend(
    ibv_sge* sges, int num_sge, uint32_t bytes, const Route& route,
    SendSlot slot, bool must_signal, bool compact) {
  uint64_t seq = send_head_;
  // Every push's last fragment is signalled: its completion ends the push.
  // An inline push is done when posted, and its slot (with its route hold)
  // is retired by a later signalled send, as the staged ones are: at worst
  // a mark (PostMark). The staged datagrams posted ahead of it count in
  // the run, so that a full ring always holds a signalled send.
  unsignaled_run_ += num_staged_;
  bool signal =
      must_signal || slot.last || ++unsignaled_run_ >= kDatagramSignalInterval;
  if (signal) unsignaled_run_ = 0;
  // Built once (no next): only what changes is set.
  ibv_send_wr& wr = send_wr_;
  wr.wr_id = seq;
  wr.sg_list = sges;
  wr.num_sge = num_sge;
  wr.send_flags = signal ? IBV_SEND_SIGNALED : 0;
  wr.opcode = compact ? IBV_WR_SEND_WITH_IMM : IBV_WR_SEND;
  wr.imm_data = compact ? htobe32(CompactImm(local_.sin_port)) : 0;
  if (bytes != 0 && bytes <= max_inline_) wr.send_flags |= IBV_SEND_INLINE;
  wr.wr.ud.ah = route.ah;
  wr.wr.ud.remote_qpn = route.qpn;
  wr.wr.ud.remote_qkey = route.qkey;
  int rc;
  if (num_staged_ > 0) {
    rc = PostChain(&wr);  // Behind the staged datagrams, in one post.
  } else {
    if (env_.poll_passes != nullptr) posted_pass_ = *env_.poll_passes;
    ibv_send_wr* bad = nullptr;
    rc = ibv_post_send(qp_->qp, &wr, &bad);
    if (rc < 0) rc = EIO;  // Not an errno: report one all the same.
  }
  if (rc != 0) {
    // The QP is broken: fail everything now; what was posted keeps its
    // memory until the socket goes.
    DEMI_LOG(ERROR) << "ibv_post_send (UD): " << std::strerror(rc);
    FailAll(rc);
    return false;
  }
  send_slots_[seq % kDatagramSendDepth] = slot;
  ++send_head_;
  if (signal) signaled_end_ = send_head_;
  return true;
}

bool DatagramSocket::TryPushInline(const demi_sgarray_t& sga, uint32_t length,
                                   const sockaddr_in& dest,
                                   demi_qtoken_t* qt_out) {
  if (!backlog_.empty() || length > max_inline_ ||
      length > FragmentPayload(ud_mtu_) || sga.sga_numsegs > max_send_sge_ ||
      send_head_ - send_tail_ >= kDatagramSendDepth) {
    return false;
  }
  // Unknown or being resolved: the PushOp path resolves it, or waits.
  const Route* route = routes_.Known(dest);
  if (route == nullptr) return false;
  // Without a header where the destination takes that (datagram_wire.h).
  bool compact = route->compact && length > 0;
  if (!compact && (kHeaderSize + length > max_inline_ ||
                   sga.sga_numsegs + 1 > max_send_sge_)) {
    return false;
  }
  // A device may inline more than the destination's MTU holds (its port
  // may take less than ours): the PushOp path cuts fragments to fit.
  if (route->mtu >= kMinUdMtu &&
      (compact ? 0 : kHeaderSize) + length > route->mtu) {
    return false;
  }
  const DatagramHeader* header =
      compact ? nullptr : NextHeader(0, length, 1, 0, 0);
  SendSlot slot;
  slot.holds_route = true;
  slot.route_key = RouteKey(dest);
  if (WouldStage(length)) {
    *qt_out = env_.tokens->Add(env_.qd, DEMI_OPC_PUSH);
    Stage(header, sga, length, *route, slot, *qt_out);
    return true;
  }
  ibv_sge sges[DEMI_SGARRAY_MAXSIZE + 1];
  int num_sge = 0;
  if (!compact) {
    sges[num_sge++] = {reinterpret_cast<uintptr_t>(header), kHeaderSize,
                       headers_mr_->lkey};
  }
  // Copied when posted: no keys, no references.
  for (uint32_t i = 0; i < sga.sga_numsegs; ++i) {
    sges[num_sge++] = {reinterpret_cast<uintptr_t>(sga.sga_segs[i].sgaseg_buf),
                       sga.sga_segs[i].sgaseg_len, 0};
  }
  if (!PostSend(sges, num_sge, (compact ? 0 : kHeaderSize) + length, *route,
                slot, /*must_signal=*/false, compact)) {
    *qt_out = env_.tokens->AddFailed(env_.qd, DEMI_OPC_PUSH, error_);
    return true;
  }
  routes_.Hold(slot.route_key);
  ++stats_.sent;
  // After the post: the staged pushes it reported come first in the done
  // order.
  *qt_out = env_.tokens->AddDone(env_.qd, DEMI_OPC_PUSH);
  return true;
}

static_assert(kDatagramSignalInterval + kDoorbellBatch <= kDatagramSendDepth,
              "a full send ring holds a signalled send");

void DatagramSocket::PostMark() {
  // A full ring holds a signalled send (one in kDatagramSignalInterval
  // plus a stage).
  if (error_ != 0 || signaled_end_ == send_head_ ||
      send_head_ - send_tail_ >= kDatagramSendDepth) {
    return;
  }
  // On the newest send's route, which that send holds until it is retired
  // (a PushOp's fragment: its PushOp does); the mark holds it too.
  SendSlot slot;
  slot.holds_route = true;
  slot.route_key = send_slots_[(send_head_ - 1) % kDatagramSendDepth].route_key;
  const Route* route = routes_.Held(slot.route_key);
  if (route == nullptr) return;
  // Not a post of the application's: the next push is not staged behind
  // it (WouldStage).
  uint32_t posted_pass = posted_pass_;
  if (PostSend(nullptr, 0, 0, *route, slot, /*must_signal=*/true)) {
    routes_.Hold(slot.route_key);
  }
  posted_pass_ = posted_pass;
}

void DatagramSocket::Stage(const DatagramHeader* header,
                           const demi_sgarray_t& sga, uint32_t length,
                           const Route& route, const SendSlot& slot,
                           demi_qtoken_t qt) {
  if (staged_.empty()) staged_.resize(kDoorbellBatch);
  StagedSend& staged = staged_[num_staged_++];
  // Copied now, as a post would: the application's bytes are not read
  // again.
  uint32_t copied = 0;
  for (uint32_t i = 0; i < sga.sga_numsegs; ++i) {
    std::memcpy(staged.bytes + copied, sga.sga_segs[i].sgaseg_buf,
                sga.sga_segs[i].sgaseg_len);
    copied += sga.sga_segs[i].sgaseg_len;
  }
  staged.qt = qt;
  staged.wr = send_wr_;
  staged.wr.wr_id = send_head_;
  staged.wr.next = nullptr;
  staged.wr.sg_list = staged.sges;
  ibv_sge bytes = {reinterpret_cast<uintptr_t>(staged.bytes), length, 0};
  if (header != nullptr) {
    staged.sges[0] = {reinterpret_cast<uintptr_t>(header), kHeaderSize,
                      headers_mr_->lkey};
    staged.sges[1] = bytes;
    staged.wr.num_sge = 2;
    staged.wr.opcode = IBV_WR_SEND;
    staged.wr.imm_data = 0;
  } else {
    staged.sges[0] = bytes;
    staged.wr.num_sge = 1;
    staged.wr.opcode = IBV_WR_SEND_WITH_IMM;
    staged.wr.imm_data = htobe32(CompactImm(local_.sin_port));
  }
  // Unsignalled, as most sends are: a later signalled one retires it (the
  // chain's last when a pass posts the stage, or at worst a mark).
  staged.wr.send_flags = IBV_SEND_INLINE;
  staged.wr.wr.ud.ah = route.ah;
  staged.wr.wr.ud.remote_qpn = route.qpn;
  staged.wr.wr.ud.remote_qkey = route.qkey;
  send_slots_[send_head_ % kDatagramSendDepth] = slot;
  ++send_head_;
  routes_.Hold(slot.route_key);
}

int DatagramSocket::PostChain(ibv_send_wr* wr) {
  uint32_t n = num_staged_;
  ibv_send_wr* first = wr;
  if (n > 0) {
    for (uint32_t i = 0; i + 1 < n; ++i)
      staged_[i].wr.next = &staged_[i + 1].wr;
    StagedSend& last = staged_[n - 1];
    last.wr.next = wr;
    if (wr == nullptr) {
      last.wr.send_flags |= IBV_SEND_SIGNALED;
      unsignaled_run_ = 0;
    }
    first = &staged_[0].wr;
  }
  posted_pass_ = env_.poll_passes != nullptr ? *env_.poll_passes : 0;
  ibv_send_wr* bad = nullptr;
  int rc = ibv_post_send(qp_->qp, first, &bad);
  if (rc < 0) rc = EIO;  // Not an errno: report one all the same.
  uint32_t posted = StagedPosted(rc, bad, staged_.data(), n, wr);
  if (wr == nullptr && n > 0 && posted == n) signaled_end_ = send_head_;
  for (uint32_t i = 0; i < posted; ++i) {
    ++stats_.sent;
    env_.tokens->Succeed(staged_[i].qt, DEMI_OPC_PUSH);
  }
  DropStaged(posted, rc);
  return rc;
}

void DatagramSocket::FlushStaged() {
  if (int rc = PostChain(nullptr); rc != 0) {
    DEMI_LOG(ERROR) << "ibv_post_send (UD): " << std::strerror(rc);
    FailAll(rc);
  }
}

void DatagramSocket::DropStaged(uint32_t from, int err) {
  // The staged datagrams hold the newest slots: the first one never posted
  // is where the ring's head goes back to.
  if (from < num_staged_) send_head_ = staged_[from].wr.wr_id;
  for (uint32_t i = from; i < num_staged_; ++i) {
    SendSlot& slot = send_slots_[staged_[i].wr.wr_id % kDatagramSendDepth];
    routes_.Release(slot.route_key);
    slot = SendSlot();
    env_.tokens->Fail(staged_[i].qt, err);
  }
  num_staged_ = 0;
}

void DatagramSocket::PostFragment(PushOp& op) {
  uint32_t offset = op.next_fragment * op.fragment_size;
  uint32_t length = std::min(op.fragment_size, op.length - offset);
  DatagramHeader* h =
      NextHeader(op.id, op.length, op.fragment_count, op.next_fragment, offset);
  ibv_sge sges[DEMI_SGARRAY_MAXSIZE + 1];
  sges[0] = {reinterpret_cast<uintptr_t>(h), kHeaderSize, headers_mr_->lkey};
  int n = 1 + SliceSges(op.sges.data(), static_cast<uint32_t>(op.sges.size()),
                        offset, length, sges + 1);
  SendSlot slot;
  slot.last = op.next_fragment + 1 == op.fragment_count;
  slot.route_key = op.route_key;
  if (PostSend(sges, n, kHeaderSize + length, op.route, slot)) {
    ++op.next_fragment;
  }
}

void DatagramSocket::StartClose() {
  closing_ = true;
  if (num_staged_ > 0) FlushStaged();
  FailPops(EBADF);
  Service();
  PostMark();  // Drained() once every send is retired.
}

void DatagramSocket::FailAll(int err) {
  if (error_ == 0) error_ = err;
  DropStaged(0, error_);
  for (auto* ops : {&backlog_, &in_flight_}) {
    for (auto& op : *ops) {
      if (op->qt != 0) env_.tokens->Fail(op->qt, error_);
      op->qt = 0;
      if (op->error == 0) op->error = error_;
    }
  }
}

void DatagramSocket::FailCompletions(int err) {
  if (recv_error_ == 0) {
    DEMI_LOG(ERROR) << "ibv_poll_cq (UD) failed: the socket's pushes and "
                       "pops fail with "
                    << std::strerror(err);
    recv_error_ = err;
  }
  FailAll(err);
  DeliverPops();
}

void DatagramSocket::FinishPush(PushOp& op) {
  if (op.qt != 0) {
    if (op.error != 0) {
      env_.tokens->Fail(op.qt, op.error);
    } else {
      env_.tokens->Succeed(op.qt, DEMI_OPC_PUSH);
      ++stats_.sent;
    }
    op.qt = 0;
  }
  op.holds.clear();
  if (op.routed) routes_.Release(op.route_key);
  op.routed = false;
}

void DatagramSocket::Recycle(std::unique_ptr<PushOp> op) {
  // As many as the send ring can have in flight: a burst's worth.
  if (spare_ops_.size() < kDatagramSendDepth) {
    spare_ops_.push_back(std::move(op));
  }
}

void DatagramSocket::OnSendCompletion(const ibv_wc& wc) {
  if (wc.status != IBV_WC_SUCCESS) FailAll(rdma::WcStatusToErrno(wc.status));
  // Sends complete in order: this one retires every slot up to it.
  while (send_tail_ <= wc.wr_id && send_tail_ < send_head_) {
    SendSlot& slot = send_slots_[send_tail_ % kDatagramSendDepth];
    ++send_tail_;
    if (slot.holds_route) routes_.Release(slot.route_key);
    if (!slot.last || in_flight_.empty()) continue;
    FinishPush(*in_flight_.front());
    Recycle(std::move(in_flight_.front()));
    in_flight_.pop_front();
  }
  if (routes_.waiting_to_resolve()) routes_.ResolveDrained();
  Service();
  if (closing_) PostMark();  // StartClose's, if the ring was full then.
}

bool DatagramSocket::Poll() {
  // What the application pushed since the last pass goes first.
  if (num_staged_ > 0) FlushStaged();
  ibv_wc wcs[kPollBatch];
  int received = ibv_poll_cq(recv_cq_.get(), kPollBatch, wcs);
  if (received < 0) FailCompletions(EIO);
  batch_now_ = absl::InfinitePast();
  for (int i = 0; i < received; ++i) OnRecvCompletion(wcs[i]);
  // Only a signalled send completes (a failed one too, but that fails the
  // QP, and the next signalled send then fails as well).
  int sent = signaled_end_ > send_tail_
                 ? ibv_poll_cq(send_cq_.get(), kPollBatch, wcs)
                 : 0;
  if (sent < 0) FailCompletions(EIO);
  for (int i = 0; i < sent; ++i) OnSendCompletion(wcs[i]);
  if (empty_slots_.size() >= kDatagramRefillBatch && !refill_dry_) Refill();
  return received == kPollBatch || sent == kPollBatch;
}

void DatagramSocket::PollTimers(absl::Time now) {
  if (routes_.resolving()) {
    route_failures_.clear();
    routes_.PollTimers(now, route_failures_);
    for (const auto& outcome : route_failures_) OnRouteOutcome(outcome);
  }
  // Two looks at the same oldest slot, far enough apart: measured between
  // passes, so a process that did not poll for a while is not judged on
  // completions it has not looked for yet.
  bool signaled_out = signaled_end_ > send_tail_;
  if (send_tail_ == send_head_ || error_ != 0) {
    watched_tail_ = UINT64_MAX;
  } else if (send_tail_ != watched_tail_ || signaled_out != watched_signaled_) {
    // A new oldest send, or a signalled one out behind it since the last
    // look (a socket left alone for long must not be judged on a send it
    // has just posted): the clock starts now.
    watched_tail_ = send_tail_;
    watched_since_ = now;
    watched_signaled_ = signaled_out;
  } else if (!signaled_out) {
    // Only unsignalled sends are out: nothing retires them but a later
    // signalled one, which a quiet socket may never post.
    if (now - watched_since_ >= kDatagramMarkAfter) PostMark();
  } else if (now - watched_since_ >= kDatagramSendTimeout) {
    DEMI_LOG(ERROR) << "a UD send has not completed in "
                    << absl::FormatDuration(kDatagramSendTimeout)
                    << ": the socket's pushes fail with ETIMEDOUT";
    FailAll(ETIMEDOUT);
  }
  if (reassembly_.entries() > 0) reassembly_.Expire(now);
  if (refill_dry_ || !empty_slots_.empty()) {
    refill_dry_ = false;
    Refill();
  }
}

void DatagramSocket::OnCmEvent(const rdma::CmEvent& event) {
  absl::optional<DatagramRoutes::Outcome> outcome = routes_.OnCmEvent(event);
  if (outcome.has_value()) OnRouteOutcome(*outcome);
}

void DatagramSocket::OnRouteOutcome(const DatagramRoutes::Outcome& outcome) {
  if (outcome.error != 0) {
    // Every push waiting for that route fails; the rest go on.
    for (auto it = backlog_.begin(); it != backlog_.end();) {
      PushOp& op = **it;
      if (op.routed || op.route_key != outcome.key) {
        ++it;
        continue;
      }
      op.error = outcome.error;
      FinishPush(op);
      Recycle(std::move(*it));
      it = backlog_.erase(it);
    }
  }
  Service();
}

void DatagramSocket::AnswerResolve(rdma::CmIdPtr request) {
  rdma_conn_param param = {};
  param.qp_num = qp_->qp->qp_num;  // The qkey is the port space's.
  param.private_data = sidr_reply_.data();
  param.private_data_len = static_cast<uint8_t>(sidr_reply_.size());
  if (rdma_accept(request.get(), &param) != 0) {
    DEMI_LOG(WARNING) << "answering a datagram resolve: "
                      << std::strerror(errno);
  }
}

}  // namespace demi
