#include "demi/wire.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "rdma/status_util.h"

namespace demi {
namespace {

absl::Status Malformed(absl::string_view what) {
  return rdma::ErrnoError(EPROTO, absl::StrCat("malformed message: ", what));
}

}  // namespace

absl::Status ParseMessageInto(absl::Span<const std::byte> bytes,
                              uint32_t max_message, ParsedMessage* out) {
  if (bytes.size() < sizeof(WireHeader)) return Malformed("short header");
  WireHeader header;
  std::memcpy(&header, bytes.data(), sizeof(header));
  absl::Span<const std::byte> body = bytes.subspan(sizeof(WireHeader));
  // Not zeroed whole: the descriptor's 256 bytes of segments are written
  // only for kRndv, on every message's path.
  ParsedMessage& message = *out;
  message.rndv.num_segments = 0;
  if ((header.flags & ~kFlagStarved) != 0) return Malformed("unknown flags");
  message.flags = header.flags;
  message.credits = header.credits;
  message.length = header.length;
  message.cookie = header.cookie;
  switch (static_cast<WireType>(header.type)) {
    case WireType::kEager:
      if (header.length != body.size()) return Malformed("eager length");
      // An empty message would pop as EOF; pushes are never empty.
      if (header.length == 0) return Malformed("empty eager message");
      message.type = WireType::kEager;
      message.payload = body;
      return absl::OkStatus();
    case WireType::kRndv: {
      message.type = WireType::kRndv;
      if (body.size() < 8) return Malformed("short rendezvous");
      uint32_t count;
      std::memcpy(&count, body.data(), sizeof(count));
      if (count == 0 || count > kMaxRndvSegments) {
        return Malformed("rendezvous segment count");
      }
      if (bytes.size() != RndvMessageSize(count)) {
        return Malformed("rendezvous size");
      }
      if (header.length == 0 || header.length > max_message) {
        return Malformed("rendezvous length");
      }
      message.rndv.num_segments = count;
      std::memcpy(message.rndv.segments, body.data() + 8,
                  count * sizeof(RndvSegment));
      uint64_t total = 0;
      for (uint32_t i = 0; i < count; ++i) {
        if (message.rndv.segments[i].length == 0) {
          return Malformed("empty rendezvous segment");
        }
        total += message.rndv.segments[i].length;
      }
      if (total != header.length) return Malformed("rendezvous total");
      return absl::OkStatus();
    }
    case WireType::kRndvDone:
    case WireType::kCredit:
    case WireType::kClose:
      if (!body.empty() || header.length != 0) {
        return Malformed("control message with a body");
      }
      message.type = static_cast<WireType>(header.type);
      return absl::OkStatus();
  }
  return Malformed(absl::StrCat("type ", header.type));
}

absl::Status MalformedEagerImm(uint32_t imm, size_t size) {
  if (imm >> 24 != static_cast<uint8_t>(WireType::kEager)) {
    return Malformed(absl::StrCat("immediate type ", imm >> 24));
  }
  if (size == 0) return Malformed("empty eager message");
  return Malformed("unknown flags");
}

absl::StatusOr<ParsedMessage> ParseMessage(absl::Span<const std::byte> bytes,
                                           uint32_t max_message) {
  ParsedMessage message;
  DEMI_RETURN_IF_ERROR(ParseMessageInto(bytes, max_message, &message));
  return message;
}

std::string EncodeConnectData(uint16_t initial_credits, uint16_t max_credits,
                              uint32_t eager_size) {
  ConnectData data = {};
  data.magic = kConnectMagic;
  data.version = kWireVersion;
  data.max_credits = max_credits;
  data.eager_size = eager_size;
  data.initial_credits = initial_credits;
  return std::string(reinterpret_cast<const char*>(&data), sizeof(data));
}

absl::StatusOr<ConnectData> ParseConnectData(
    absl::Span<const std::byte> bytes) {
  if (bytes.size() < sizeof(ConnectData)) {
    return rdma::ErrnoError(EPROTO, "connect data missing");
  }
  ConnectData data;
  std::memcpy(&data, bytes.data(), sizeof(data));
  if (data.magic != kConnectMagic || data.version != kWireVersion) {
    return rdma::ErrnoError(EPROTO, "peer speaks another protocol");
  }
  if (data.initial_credits < kMinPeerCredits ||
      data.eager_size < sizeof(WireHeader)) {
    return rdma::ErrnoError(EPROTO, "peer announces too few receive buffers");
  }
  // Its buffers must hold what this side sends without asking: a
  // rendezvous announcement.
  if (data.eager_size < RndvMessageSize(kMaxRndvSegments)) {
    return rdma::ErrnoError(EPROTO, "peer announces buffers too small");
  }
  if (data.max_credits > kMaxPeerCredits ||
      data.initial_credits > data.max_credits ||
      data.eager_size > kMaxPeerEagerSize) {
    return rdma::ErrnoError(EPROTO, "peer announces implausible buffers");
  }
  return data;
}

}  // namespace demi
