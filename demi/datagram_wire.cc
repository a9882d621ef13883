#include "demi/datagram_wire.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "rdma/status_util.h"

namespace demi {

bool SaysCompact(absl::Span<const std::byte> private_data) {
  return private_data.size() >= sizeof(kCompactCapability) &&
         std::memcmp(private_data.data(), kCompactCapability,
                     sizeof(kCompactCapability)) == 0;
}

std::string EncodeSidrReply(bool compact, uint32_t ud_mtu) {
  std::string reply(kSidrReplySize, '\0');
  std::memcpy(reply.data(), kCompactCapability, sizeof(kCompactCapability));
  if (!compact) reply[3] = 0;
  uint16_t mtu = static_cast<uint16_t>(std::min<uint32_t>(ud_mtu, 0xffff));
  reply[4] = static_cast<char>(kMtuTag >> 8);
  reply[5] = static_cast<char>(kMtuTag & 0xff);
  reply[6] = static_cast<char>(mtu >> 8);
  reply[7] = static_cast<char>(mtu & 0xff);
  return reply;
}

uint32_t SaysMtu(absl::Span<const std::byte> private_data) {
  if (private_data.size() < kSidrReplySize ||
      std::memcmp(private_data.data(), kCompactCapability, 3) != 0) {
    return 0;
  }
  auto byte = [&](size_t i) {
    return std::to_integer<uint32_t>(private_data[i]);
  };
  if ((byte(4) << 8 | byte(5)) != kMtuTag) return 0;
  return byte(6) << 8 | byte(7);
}

const char* ParseFragmentInto(absl::Span<const std::byte> message,
                              Fragment* out) {
  Fragment& fragment = *out;
  if (message.size() < sizeof(DatagramHeader)) {
    return "shorter than a datagram header";
  }
  DatagramHeader& h = fragment.header;
  std::memcpy(&h, message.data(), sizeof(h));
  fragment.payload = message.subspan(sizeof(h));
  uint64_t payload = fragment.payload.size();
  uint64_t end = uint64_t{h.offset} + payload;
  if (h.magic != kDatagramMagic || h.version != kDatagramVersion) {
    return "not a datagram of this version";
  }
  if (h.total_length > kMaxDatagram) {
    return "datagram longer than UDP allows";
  }
  if (h.fragment_count == 0 || h.fragment_count > kMaxFragments ||
      h.fragment_index >= h.fragment_count) {
    return "fragment count or index";
  }
  if (end > h.total_length) {
    return "fragment past the datagram's end";
  }
  if (h.fragment_count == 1) {
    if (h.offset != 0 || payload != h.total_length) {
      return "a single fragment must be the whole datagram";
    }
    fragment.fragment_size = h.total_length;
    return nullptr;
  }
  if (payload == 0) return "empty fragment";
  uint32_t last = h.fragment_count - 1u;
  if (h.fragment_index < last) {
    fragment.fragment_size = static_cast<uint32_t>(payload);
    if (uint64_t{h.fragment_index} * payload != h.offset) {
      return "fragment not where its index puts it";
    }
  } else {
    if (h.offset % last != 0 || end != h.total_length) {
      return "last fragment not at the datagram's end";
    }
    fragment.fragment_size = h.offset / last;
    if (payload > fragment.fragment_size) {
      return "last fragment larger than the others";
    }
  }
  return nullptr;
}

absl::StatusOr<Fragment> ParseFragment(absl::Span<const std::byte> message) {
  Fragment fragment;
  if (const char* wrong = ParseFragmentInto(message, &fragment)) {
    return rdma::ErrnoError(EPROTO, wrong);
  }
  return fragment;
}

}  // namespace demi
