// The receive half of DatagramSocket: receive buffers in slots indexed by
// wr_id, checks of what arrives, reassembly, and pops.
#include <endian.h>

#include <cstdint>
#include <cstring>

#include "absl/base/attributes.h"
#include "demi/datagram_socket.h"
#include "rdma/clock.h"
#include "rdma/log.h"

namespace demi {
namespace {

constexpr uint32_t kHeaderSize = sizeof(DatagramHeader);

bool Ipv4ChecksumOk(const uint8_t* header) {
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) sum += (header[i] << 8) | header[i + 1];
  while ((sum >> 16) != 0) sum = (sum & 0xffff) + (sum >> 16);
  return sum == 0xffff;
}

// The sender's IPv4 address as the packet's own network header gives it,
// or 0 where it gives none. RoCE v2 over IPv4 puts the IPv4 header in the
// last 20 bytes of the GRH space. A true GRH (InfiniBand, RoCE v1, RoCE v2
// over IPv6) carries the source GID, which names an IPv4 address only when
// it is IPv4-mapped (::ffff:a.b.c.d, as the RoCE GID of an IPv4 address
// is); a GID made from a port GUID or MAC names none. When both version
// fields fit, the IPv4 checksum decides, as in ibv_init_ah_from_wc.
uint32_t GrhSourceAddr(const std::byte* grh) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(grh);
  const uint8_t* ip4 = bytes + 20;
  bool ip6 = (bytes[0] >> 4) == 6;
  uint32_t addr = 0;
  if ((ip4[0] >> 4) == 4 &&
      (!ip6 || ((ip4[0] & 0xf) == 5 && Ipv4ChecksumOk(ip4)))) {
    std::memcpy(&addr, ip4 + 12, sizeof(addr));
    return addr;
  }
  constexpr uint8_t kIpv4Mapped[12] = {0, 0, 0, 0, 0,    0,
                                       0, 0, 0, 0, 0xff, 0xff};
  const uint8_t* sgid = bytes + 8;
  if (!ip6 || std::memcmp(sgid, kIpv4Mapped, sizeof(kIpv4Mapped)) != 0) {
    return 0;
  }
  std::memcpy(&addr, sgid + 12, sizeof(addr));
  return addr;
}

}  // namespace

ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool DatagramSocket::Admit(
    const sockaddr_in& from, uint32_t src_qp) {
  // The port is only a claim: another process on the sender's host may
  // make it. What can be checked is whether the QP it came from is the one
  // the claimed port resolves to.
  if (routes_.Seen(from, src_qp)) return true;
  Refuse();
  return false;
}

void DatagramSocket::Refuse() {
  ++stats_.malformed;
  // Resolving `from` again may wait for the sends to it to complete: a
  // mark behind them, if nothing signalled is (ResolveDrained then).
  if (routes_.waiting_to_resolve()) PostMark();
}

// Inline in every arrival's path; Enqueue for the rest.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void DatagramSocket::Deliver(
    BufferRef buffer, std::byte* data, uint32_t length,
    const sockaddr_in& from) {
  if (closing_) return;                       // Nobody will pop it.
  if (incoming_.empty() && !pops_.empty()) {  // A pop waits for it.
    ++stats_.received;
    Lend(std::move(buffer), data, length, from);
    return;
  }
  Enqueue(std::move(buffer), data, length, from);
}

void DatagramSocket::Enqueue(BufferRef buffer, std::byte* data, uint32_t length,
                             const sockaddr_in& from) {
  if (incoming_.size() >= kMaxQueuedDatagrams) {
    ++stats_.queue_full;
    return;
  }
  ++stats_.received;
  incoming_.push_back({std::move(buffer), data, length, from});
  DeliverPops();
}

// Inline in OnRecvCompletion: most datagrams are compact.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void DatagramSocket::OnCompactDatagram(
    const ibv_wc& wc, BufferRef buffer) {
  // The source's address is the packet's own; a packet that names none
  // cannot say who sent it.
  uint16_t port = 0;
  uint32_t addr =
      (wc.wc_flags & IBV_WC_GRH) != 0 ? GrhSourceAddr(buffer->data) : 0;
  if (!ParseCompactImm(be32toh(wc.imm_data), &port) || addr == 0) {
    ++stats_.malformed;
    return;
  }
  sockaddr_in from = {};
  from.sin_family = AF_INET;
  from.sin_port = port;
  from.sin_addr.s_addr = addr;
  if (!Admit(from, wc.src_qp)) return;
  std::byte* data = buffer->data + kGrhSize;
  Deliver(std::move(buffer), data, wc.byte_len - kGrhSize, from);
}

void DatagramSocket::OnRecvCompletion(const ibv_wc& wc) {
  uint32_t slot = static_cast<uint32_t>(wc.wr_id);
  if (slot >= recv_slots_.size() || !recv_slots_[slot]) return;
  BufferRef buffer = std::move(recv_slots_[slot]);
  empty_slots_.push_back(slot);
  if (wc.status != IBV_WC_SUCCESS || wc.byte_len <= kGrhSize) {
    // No bytes at all: a sender's mark (PostMark), not a datagram.
    bool mark = wc.status == IBV_WC_SUCCESS && wc.byte_len == kGrhSize;
    if (wc.status != IBV_WC_WR_FLUSH_ERR && !mark) ++stats_.malformed;
    return;
  }
  if ((wc.wc_flags & IBV_WC_WITH_IMM) != 0) {
    OnCompactDatagram(wc, std::move(buffer));
    return;
  }
  auto message =
      absl::MakeConstSpan(buffer->data + kGrhSize, wc.byte_len - kGrhSize);
  Fragment fragment;
  bool parsed = ParseFragmentInto(message, &fragment) == nullptr;
  // A source that the packet's own IP header contradicts is spoofed.
  uint32_t grh_addr =
      (wc.wc_flags & IBV_WC_GRH) != 0 ? GrhSourceAddr(buffer->data) : 0;
  if (!parsed || fragment.header.total_length == 0 ||
      (grh_addr != 0 && grh_addr != fragment.header.src_addr)) {
    ++stats_.malformed;
    return;
  }
  const DatagramHeader& h = fragment.header;
  sockaddr_in from = {};
  from.sin_family = AF_INET;
  from.sin_port = h.src_port;
  from.sin_addr.s_addr = h.src_addr;
  if (!Admit(from, wc.src_qp)) return;
  if (h.fragment_count == 1) {
    std::byte* data = buffer->data + kGrhSize + kHeaderSize;
    Deliver(std::move(buffer), data, h.total_length, from);
    return;
  }
  if (batch_now_ == absl::InfinitePast()) batch_now_ = rdma::MonotonicNow();
  // Copied into the datagram's own piece: `buffer` goes back at once.
  absl::optional<Reassembled> whole =
      reassembly_.Add(fragment, wc.src_qp, batch_now_);
  if (whole.has_value()) {
    std::byte* data = whole->buffer->data;
    Deliver(std::move(whole->buffer), data, whole->length, from);
  }
}

void DatagramSocket::DeliverPops() {
  while (!pops_.empty() && !incoming_.empty()) {
    Incoming& in = incoming_.front();
    Lend(std::move(in.buffer), in.data, in.length, in.from);
    incoming_.pop_front();
  }
  if (recv_error_ != 0) FailPops(recv_error_);
}

void DatagramSocket::FailPops(int err) {
  while (!pops_.empty()) {
    env_.tokens->Fail(pops_.front(), err);
    pops_.pop_front();
  }
}

void DatagramSocket::Refill() {
  ibv_recv_wr wrs[kPollBatch];
  ibv_sge sges[kPollBatch];
  const int size_class = SizeClassOf(kGrhSize + ud_mtu_);
  while (!empty_slots_.empty()) {
    int n = 0;
    while (n < kPollBatch && !empty_slots_.empty()) {
      // A free piece first: Allocate's size and limit checks are for growing.
      Buffer* buffer = env_.pool->TakeFree(size_class);
      if (buffer == nullptr) {
        absl::StatusOr<Buffer*> grown = env_.pool->Allocate(kGrhSize + ud_mtu_);
        if (!grown.ok()) {
          refill_dry_ = true;
          break;
        }
        buffer = *grown;
      }
      uint32_t slot = empty_slots_.back();
      empty_slots_.pop_back();
      recv_slots_[slot].reset(buffer);
      sges[n] = {reinterpret_cast<uintptr_t>(buffer->data), kGrhSize + ud_mtu_,
                 SgaPool::Lkey(buffer, env_.device)};
      // Every field set, none zeroed first (the chain's end below).
      wrs[n].wr_id = slot;
      wrs[n].next = &wrs[n + 1];
      wrs[n].sg_list = &sges[n];
      wrs[n].num_sge = 1;
      ++n;
    }
    if (n == 0) return;
    wrs[n - 1].next = nullptr;
    ibv_recv_wr* bad = nullptr;
    if (int rc = ibv_post_recv(qp_->qp, wrs, &bad); rc != 0) {
      DEMI_LOG(ERROR) << "ibv_post_recv (UD): " << std::strerror(rc);
      // What was not posted goes back to be tried again.
      for (ibv_recv_wr* wr = bad; wr != nullptr; wr = wr->next) {
        uint32_t slot = static_cast<uint32_t>(wr->wr_id);
        recv_slots_[slot].reset();
        empty_slots_.push_back(slot);
      }
      return;
    }
    if (refill_dry_) return;
  }
}

}  // namespace demi
