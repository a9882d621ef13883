#include "testing/wire_peer.h"

#include <endian.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "rdma/cm_event.h"
#include "rdma/status_util.h"
#include "rdma/wc_status.h"

namespace demi::testing {
namespace {

using rdma::ErrnoError;

// Sends go out of the upper half of the buffer; the one receive RcPeer
// posts lands in the lower half, at offset 0.
constexpr size_t kSendOffset = kRcPeerBufferSize / 2;

// Copies the message a receive completion delivered and posts the receive
// again (always at offset 0, below kSendOffset). A kEager message that came
// with immediate data and no header gets the header it stands for, so that
// what is kept parses like any other message.
absl::StatusOr<std::string> TakeReceive(RcPeer& peer, const ibv_wc& wc) {
  std::string bytes(reinterpret_cast<const char*>(peer.buffer.data()),
                    wc.byte_len);
  DEMI_RETURN_IF_ERROR(PostRecv(peer, 0, kSendOffset));
  if ((wc.wc_flags & IBV_WC_WITH_IMM) == 0) return bytes;
  ParsedMessage parsed = {};
  DEMI_RETURN_IF_ERROR(ParseEagerImmInto(
      be32toh(wc.imm_data),
      absl::MakeConstSpan(reinterpret_cast<const std::byte*>(bytes.data()),
                          bytes.size()),
      &parsed));
  WireHeader header = {};
  header.type = static_cast<uint8_t>(WireType::kEager);
  header.flags = parsed.flags;
  header.credits = parsed.credits;
  header.length = parsed.length;
  return std::string(reinterpret_cast<const char*>(&header), sizeof(header)) +
         bytes;
}

// The next failed completion, or the next successful one of the kind asked
// for. Messages received meanwhile are kept in `peer.received`, never lost.
absl::StatusOr<ibv_wc> PollFor(RcPeer& peer, bool want_recv,
                               absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    DEMI_ASSIGN_OR_RETURN(ibv_wc wc, PollOne(peer, deadline - absl::Now()));
    bool is_recv = (wc.opcode & IBV_WC_RECV) != 0;
    if (wc.status != IBV_WC_SUCCESS || is_recv == want_recv) return wc;
    if (is_recv) {
      DEMI_ASSIGN_OR_RETURN(std::string bytes, TakeReceive(peer, wc));
      peer.received.push_back(std::move(bytes));
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<RcPeer>> ConnectAsDemi(const sockaddr_in& server,
                                                      uint16_t credits,
                                                      absl::Duration timeout) {
  return ConnectRc(server, EncodeConnectData(credits, credits, 8192), timeout);
}

absl::StatusOr<std::unique_ptr<RcPeer>> ConnectAsDemiWithoutRtu(
    const sockaddr_in& server, uint16_t credits, absl::Duration timeout) {
  return ConnectRcWithoutRtu(server, EncodeConnectData(credits, credits, 8192),
                             timeout);
}

absl::Status SendWire(RcPeer& peer, const WireHeader& header,
                      const std::string& body, absl::Duration timeout) {
  std::string bytes(reinterpret_cast<const char*>(&header), sizeof(header));
  return SendBytes(peer, bytes + body, std::nullopt, timeout);
}

absl::Status SendBytes(RcPeer& peer, const std::string& bytes,
                       std::optional<uint32_t> imm, absl::Duration timeout) {
  if (bytes.size() > kRcPeerBufferSize - kSendOffset) {
    return ErrnoError(EINVAL, "message too large for the peer's buffer");
  }
  std::memcpy(peer.buffer.data() + kSendOffset, bytes.data(), bytes.size());
  DEMI_RETURN_IF_ERROR(
      imm.has_value() ? PostSendWithImm(peer, kSendOffset, bytes.size(), *imm)
                      : PostSend(peer, kSendOffset, bytes.size()));
  DEMI_ASSIGN_OR_RETURN(ibv_wc wc, PollFor(peer, /*want_recv=*/false, timeout));
  if (wc.status != IBV_WC_SUCCESS || wc.opcode != IBV_WC_SEND) {
    return ErrnoError(rdma::WcStatusToErrno(wc.status),
                      absl::StrCat("send: ", ibv_wc_status_str(wc.status)));
  }
  return absl::OkStatus();
}

absl::Status SendEager(RcPeer& peer, const std::string& payload,
                       uint16_t credits, absl::Duration timeout) {
  WireHeader header = {};
  header.type = static_cast<uint8_t>(WireType::kEager);
  header.credits = credits;
  header.length = static_cast<uint32_t>(payload.size());
  return SendWire(peer, header, payload, timeout);
}

absl::Status SendRndv(RcPeer& peer, uint64_t addr, uint32_t rkey,
                      uint32_t length, uint64_t cookie,
                      absl::Duration timeout) {
  WireHeader header = {};
  header.type = static_cast<uint8_t>(WireType::kRndv);
  header.length = length;
  header.cookie = cookie;
  RndvDescriptor rndv = {};
  rndv.num_segments = 1;
  rndv.segments[0] = {addr, rkey, length};
  std::string body(reinterpret_cast<const char*>(&rndv),
                   RndvMessageSize(1) - sizeof(WireHeader));
  return SendWire(peer, header, body, timeout);
}

absl::StatusOr<ParsedMessage> ReceiveWire(RcPeer& peer,
                                          absl::Duration timeout) {
  std::string bytes;
  if (!peer.received.empty()) {
    bytes = std::move(peer.received.front());
    peer.received.pop_front();
  } else {
    DEMI_ASSIGN_OR_RETURN(ibv_wc wc,
                          PollFor(peer, /*want_recv=*/true, timeout));
    if (wc.status != IBV_WC_SUCCESS) {
      return ErrnoError(
          rdma::WcStatusToErrno(wc.status),
          absl::StrCat("receive: ", ibv_wc_status_str(wc.status)));
    }
    DEMI_ASSIGN_OR_RETURN(bytes, TakeReceive(peer, wc));
  }
  DEMI_ASSIGN_OR_RETURN(
      ParsedMessage message,
      ParseMessage(
          absl::MakeConstSpan(reinterpret_cast<const std::byte*>(bytes.data()),
                              bytes.size()),
          UINT32_MAX));
  message.payload = {};  // It pointed into `bytes`.
  return message;
}

absl::Status ReadRemote(RcPeer& peer, uint64_t addr, uint32_t rkey,
                        uint32_t length, absl::Duration timeout) {
  if (length > kSendOffset) return ErrnoError(EINVAL, "read too large");
  DEMI_RETURN_IF_ERROR(PostRead(peer, kSendOffset, length, addr, rkey));
  DEMI_ASSIGN_OR_RETURN(ibv_wc wc, PollFor(peer, /*want_recv=*/false, timeout));
  if (wc.status != IBV_WC_SUCCESS || wc.opcode != IBV_WC_RDMA_READ) {
    return ErrnoError(rdma::WcStatusToErrno(wc.status),
                      absl::StrCat("read: ", ibv_wc_status_str(wc.status)));
  }
  return absl::OkStatus();
}

absl::Status WaitDisconnected(RcPeer& peer, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    DEMI_ASSIGN_OR_RETURN(
        rdma::CmEvent event,
        rdma::WaitCmEvent(peer.channel.get(), deadline - absl::Now()));
    if (event.type == RDMA_CM_EVENT_DISCONNECTED) return absl::OkStatus();
  }
}

}  // namespace demi::testing
