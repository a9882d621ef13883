// The wire protocol on one RC connection. Every SEND starts with a
// WireHeader (but see kEager below); what follows depends on its type:
//   kEager:    the message's bytes (header.length of them).
//   kRndv:     a RndvDescriptor: where the receiver reads the message with
//              RDMA READ (header.length bytes in all).
//   kRndvDone: nothing; header.cookie names the finished rendezvous.
//   kCredit:   nothing; only header.credits matters.
//   kClose:    nothing; the sender will push no more (EOF after this).
// Every header returns `credits` receive buffers to its receiver, and may
// set kFlagStarved: the sender has pushes waiting for credits.
//
// This library sends kEager messages without a header: a SEND with
// immediate data (EagerImm), all of whose bytes are the message. A 4 KiB
// message is then four 1 KiB packets, not five. A kEager with a header is
// still understood.
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
  uint8_t flags;     // kFlag* bits.
  uint16_t credits;  // Receive buffers returned to the receiver of this.
  uint32_t length;   // Message bytes (kEager, kRndv), else 0.
  uint64_t cookie;   // kRndv, kRndvDone: the sender's rendezvous id.
};
static_assert(sizeof(WireHeader) == 16, "the header is 16 bytes on the wire");

// The sender ran out of credits with pushes still queued: its receiver may
// give it a larger share of its receive buffers.
inline constexpr uint8_t kFlagStarved = 1;

// The immediate data (host order) of a kEager message sent without a
// header: the type in bits 24-31, the flags in 16-23, the credits in 0-15.
constexpr uint32_t EagerImm(uint8_t flags, uint16_t credits) {
  return uint32_t{static_cast<uint8_t>(WireType::kEager)} << 24 |
         uint32_t{flags} << 16 | credits;
}

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
  uint32_t magic;            // kConnectMagic.
  uint16_t version;          // kWireVersion.
  uint16_t max_credits;      // The most credits the peer will ever hold.
  uint32_t eager_size;       // Largest kEager message (header included).
  uint16_t initial_credits;  // Credits the peer starts with.
  uint16_t reserved;
};
static_assert(sizeof(ConnectData) <= 56, "fits rdma_cm's private data");

inline constexpr uint32_t kConnectMagic = 0x444d4952;  // "RIMD"
// The most credits, and the largest receive buffer, a peer may announce.
// More is refused: credits are trusted up to what the peer announced.
inline constexpr uint16_t kMaxPeerCredits = 4096;
inline constexpr uint32_t kMaxPeerEagerSize = 1 << 20;
// The fewest credits a peer may announce: data keeps one in reserve (for
// the control messages that return credits), so a peer granting fewer
// than two could never be sent data, and pushes to it would wait forever.
inline constexpr uint16_t kMinPeerCredits = 2;
// 2: credits start at initial_credits and may grow up to max_credits.
// 3: kEager messages may come as a SEND with immediate data (EagerImm).
inline constexpr uint16_t kWireVersion = 3;

// A received message, checked. `payload` points into the receive buffer.
struct ParsedMessage {
  WireType type;
  uint8_t flags;
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
// The same, written into `out` (also on failure, partly): the data path's
// form, without a copy of the ~300-byte result.
absl::Status ParseMessageInto(absl::Span<const std::byte> bytes,
                              uint32_t max_message, ParsedMessage* out);

// EPROTO for a bad immediate value or an empty message (ParseEagerImmInto).
absl::Status MalformedEagerImm(uint32_t imm, size_t size);

// Checks and decodes a SEND with immediate data `imm` (host order) whose
// `bytes` are a kEager message (EagerImm): EPROTO for another type,
// unknown flags or no bytes. Inline: it runs for every message.
inline absl::Status ParseEagerImmInto(uint32_t imm,
                                      absl::Span<const std::byte> bytes,
                                      ParsedMessage* out) {
  uint8_t flags = static_cast<uint8_t>(imm >> 16);
  // An empty message would pop as EOF; pushes are never empty.
  if (imm >> 24 != static_cast<uint8_t>(WireType::kEager) ||
      (flags & ~kFlagStarved) != 0 || bytes.empty()) {
    return MalformedEagerImm(imm, bytes.size());
  }
  out->type = WireType::kEager;
  out->flags = flags;
  out->credits = static_cast<uint16_t>(imm);
  out->length = static_cast<uint32_t>(bytes.size());
  out->cookie = 0;
  out->payload = bytes;
  out->rndv.num_segments = 0;
  return absl::OkStatus();
}

// This side's connect data, as rdma_cm private data: magic, version, the
// credits the peer starts with and the most it will ever get, the size of
// a receive buffer.
std::string EncodeConnectData(uint16_t initial_credits, uint16_t max_credits,
                              uint32_t eager_size);

// Checks the peer's connect data (EPROTO if absent or from another
// version, or if it announces no credits, more than kMaxPeerCredits,
// initial credits above the maximum, or buffers larger than
// kMaxPeerEagerSize).
absl::StatusOr<ConnectData> ParseConnectData(absl::Span<const std::byte> bytes);

}  // namespace demi

#endif  // DEMI_DEMI_WIRE_H_
