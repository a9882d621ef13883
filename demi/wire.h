// The wire protocol on one RC connection. Every SEND starts with a
// WireHeader; what follows depends on its type:
//   kEager:    the message's bytes (header.length of them).
//   kRndv:     a RndvDescriptor: where the receiver reads the message with
//              RDMA READ (header.length bytes in all).
//   kRndvDone: nothing; header.cookie names the finished rendezvous.
//   kCredit:   nothing; only header.credits matters.
//   kClose:    nothing; the sender will push no more (EOF after this).
// Every header returns `credits` receive buffers to its receiver.
//
// Everything that arrives is checked by ParseMessage before use: a peer
// that sends garbage gets its connection aborted, never memory corrupted.
#ifndef DEMI_DEMI_WIRE_H_
#define DEMI_DEMI_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace demi {

enum class WireType : uint8_t {
  kEager = 1,
  kRndv = 2,
  kRndvDone = 3,
  kCredit = 4,
  kClose = 5,
};

// Fixed-size header, little-endian as both ends are x86-64 or arm64 hosts
// of the same library version (the private data checks the version).
struct WireHeader {
  uint8_t type;
  uint8_t flags;     // Reserved, 0.
  uint16_t credits;  // Receive buffers returned to the receiver of this.
  uint32_t length;   // Message bytes (kEager, kRndv), else 0.
  uint64_t cookie;   // kRndv, kRndvDone: the sender's rendezvous id.
};
static_assert(sizeof(WireHeader) == 16, "the header is 16 bytes on the wire");

// Most segments one rendezvous describes (one per pushed segment).
inline constexpr uint32_t kMaxRndvSegments = 16;

struct RndvSegment {
  uint64_t addr;
  uint32_t rkey;
  uint32_t length;
};
static_assert(sizeof(RndvSegment) == 16, "no padding on the wire");

struct RndvDescriptor {
  uint32_t num_segments;
  uint32_t reserved;
  RndvSegment segments[kMaxRndvSegments];
};

// The size of a kRndv message with `num_segments` segments.
constexpr size_t RndvMessageSize(uint32_t num_segments) {
  return sizeof(WireHeader) + 8 + num_segments * sizeof(RndvSegment);
}

// Private data of rdma_connect and rdma_accept.
struct ConnectData {
  uint32_t magic;       // kConnectMagic.
  uint16_t version;     // kWireVersion.
  uint16_t recv_depth;  // Receive buffers posted: the peer's credits.
  uint32_t eager_size;  // Largest kEager message (header included).
  uint32_t reserved;
};
static_assert(sizeof(ConnectData) <= 56, "fits rdma_cm's private data");

inline constexpr uint32_t kConnectMagic = 0x444d4952;  // "RIMD"
// The most receive buffers, and the largest one, a peer may announce.
// More is refused: credits are trusted up to what the peer says it posted.
inline constexpr uint16_t kMaxPeerRecvDepth = 4096;
inline constexpr uint32_t kMaxPeerEagerSize = 1 << 20;
inline constexpr uint16_t kWireVersion = 1;

// A received message, checked. `payload` points into the receive buffer.
struct ParsedMessage {
  WireType type;
  uint16_t credits;
  uint32_t length;
  uint64_t cookie;
  absl::Span<const std::byte> payload;  // kEager: the message's bytes.
  RndvDescriptor rndv;                  // kRndv: the checked descriptor.
};

// Checks and decodes the `bytes` of one received SEND. `max_message` bounds
// the length a kRndv may announce. EPROTO for anything malformed: short
// buffer, unknown type, lengths that disagree, too many segments.
absl::StatusOr<ParsedMessage> ParseMessage(absl::Span<const std::byte> bytes,
                                           uint32_t max_message);

// This side's connect data: magic, version, and the receive buffers it
// posts (`recv_depth` of `eager_size` bytes), as rdma_cm private data.
std::string EncodeConnectData(uint16_t recv_depth, uint32_t eager_size);

// Checks the peer's connect data (EPROTO if absent or from another
// version, or if it announces no receive buffers, more than
// kMaxPeerRecvDepth of them, or ones larger than kMaxPeerEagerSize).
absl::StatusOr<ConnectData> ParseConnectData(absl::Span<const std::byte> bytes);

}  // namespace demi

#endif  // DEMI_DEMI_WIRE_H_
