// The wire format of datagrams on UD queue pairs. Every UD SEND carries one
// fragment: a DatagramHeader, then `payload` bytes of the datagram starting
// at `offset`. A datagram that fits one UD message is one fragment; larger
// ones (up to kMaxDatagram, UDP's limit) are split at the smaller of the
// two ports' MTUs (the receiver says its own: SaysMtu) and put
// back together by the receiver (reassembly.h).
//
// The sender's IPv4 address and port travel in the header because a UD
// completion names only the sending QP; the receiver checks the address
// against the packet's own network header where it names one, and the
// sending QP against what the claimed port resolves to, where it has
// resolved it (docs/design.md says what the claim is worth).
//
// A datagram of one fragment may go without the header instead (compact):
// a SEND with immediate data holding kCompactMagic and the sender's port,
// its bytes alone as the message. The receiver takes the sender's address
// from the packet's network header (the GRH space of a RoCE packet) and the
// length from the message. 28 bytes fewer on the wire per datagram. A
// sender sends it only to a socket whose SIDR reply said it takes them
// (kCompactCapability), which a socket says only over RoCE, where every
// packet names its source's IPv4 address.
#ifndef DEMI_DEMI_DATAGRAM_WIRE_H_
#define DEMI_DEMI_DATAGRAM_WIRE_H_

#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace demi {

// UDP's largest payload over IPv4: 65,535 - 8 (UDP) - 20 (IP).
inline constexpr uint32_t kMaxDatagram = 65507;
// Most fragments of one datagram: enough for kMaxDatagram at the smallest
// UD MTU (256 B).
inline constexpr uint32_t kMaxFragments = 512;
inline constexpr uint16_t kDatagramMagic = 0xd6a7;
inline constexpr uint8_t kDatagramVersion = 1;

struct DatagramHeader {
  uint16_t magic;
  uint8_t version;
  uint8_t reserved;
  uint16_t src_port;        // Network byte order, as in sockaddr_in.
  uint16_t fragment_count;  // 1 for an unfragmented datagram.
  uint16_t fragment_index;  // 0 .. fragment_count - 1.
  uint16_t reserved2;
  uint32_t src_addr;      // Network byte order.
  uint32_t id;            // The sender's datagram number.
  uint32_t total_length;  // Bytes of the whole datagram.
  uint32_t offset;        // fragment_index x the fragment size.
};
static_assert(sizeof(DatagramHeader) == 28, "no padding on the wire");

// Payload bytes of each fragment when a UD message holds `ud_mtu` bytes.
inline uint32_t FragmentPayload(uint32_t ud_mtu) {
  return ud_mtu - static_cast<uint32_t>(sizeof(DatagramHeader));
}

// Fragments of a datagram of `length` bytes (at least 1: an empty datagram
// is one empty fragment).
inline uint32_t FragmentCount(uint32_t length, uint32_t fragment_payload) {
  return length == 0 ? 1 : (length + fragment_payload - 1) / fragment_payload;
}

// A fragment as received: the header, where its payload lies, and the
// fragment size its sender used (every fragment but the last has that many
// bytes).
struct Fragment {
  DatagramHeader header;
  absl::Span<const std::byte> payload;
  uint32_t fragment_size = 0;
};

// The top half of a compact datagram's immediate data (host order).
inline constexpr uint16_t kCompactMagic = 0xd6a8;
// What a socket that takes compact datagrams puts first in its SIDR
// replies' private data: kDatagramMagic, kDatagramVersion, then 1.
inline constexpr std::byte kCompactCapability[4] = {
    std::byte{kDatagramMagic >> 8}, std::byte{kDatagramMagic & 0xff},
    std::byte{kDatagramVersion}, std::byte{1}};

// The immediate data (host order; htobe32 before posting, so the wire
// reads the magic, then the port, each big-endian) of a compact datagram
// from port `src_port` (network order, as in sockaddr_in).
inline uint32_t CompactImm(uint16_t src_port) {
  return uint32_t{kCompactMagic} << 16 | ntohs(src_port);
}
// Whether `imm` (host order) is a compact datagram's; its port (network
// order) goes to `src_port`.
inline bool ParseCompactImm(uint32_t imm, uint16_t* src_port) {
  *src_port = htons(static_cast<uint16_t>(imm & 0xffff));
  return imm >> 16 == kCompactMagic;
}
// Whether a SIDR reply's private data (maybe padded by the transport) says
// the socket takes compact datagrams.
bool SaysCompact(absl::Span<const std::byte> private_data);

// A socket's SIDR replies also say the largest UD message it receives (its
// port's MTU), so that a sender whose port takes larger ones cuts
// fragments the receiver can hold: after the 4 bytes above (the compact
// capability, or kDatagramMagic, kDatagramVersion, 0), kMtuTag, then the
// MTU, each 2 bytes big-endian. An older socket's reply says none.
inline constexpr uint16_t kMtuTag = 0x4d54;  // "MT"
inline constexpr size_t kSidrReplySize = 8;
// The smallest UD MTU (IBV_MTU_256): a smaller one said is not believed.
inline constexpr uint32_t kMinUdMtu = 256;
std::string EncodeSidrReply(bool compact, uint32_t ud_mtu);
// The MTU a SIDR reply says, or 0 if it says none.
uint32_t SaysMtu(absl::Span<const std::byte> private_data);

// Checks a received UD message (without its GRH) and splits it. EPROTO for
// anything malformed: wrong magic or version, lengths past kMaxDatagram or
// the message, a fragment outside its datagram or not where its index puts
// it, a count that cannot be.
absl::StatusOr<Fragment> ParseFragment(absl::Span<const std::byte> message);
// As ParseFragment, without a Status (once per datagram received): null if
// `message` is a fragment, written to `out`; otherwise what is wrong.
const char* ParseFragmentInto(absl::Span<const std::byte> message,
                              Fragment* out);

}  // namespace demi

#endif  // DEMI_DEMI_DATAGRAM_WIRE_H_
