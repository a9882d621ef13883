// libFuzzer target: ParseMessage on whatever a peer could SEND, and
// ParseEagerImmInto on the same bytes after 4 bytes of immediate data.
// Beyond "no crash, no sanitizer report", a message it accepts must be
// self-consistent: that is what the data path relies on without checking
// again.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "demi/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr uint32_t kMaxMessage = uint32_t{1} << 24;
  auto bytes =
      absl::MakeConstSpan(reinterpret_cast<const std::byte*>(data), size);
  if (size >= 4) {
    uint32_t imm;
    std::memcpy(&imm, data, sizeof(imm));
    demi::ParsedMessage message;
    if (demi::ParseEagerImmInto(imm, bytes.subspan(4), &message).ok() &&
        (message.type != demi::WireType::kEager || message.length == 0 ||
         message.length != size - 4 ||
         message.payload.data() != bytes.data() + 4 ||
         (message.flags & ~demi::kFlagStarved) != 0)) {
      __builtin_trap();
    }
  }
  absl::StatusOr<demi::ParsedMessage> parsed =
      demi::ParseMessage(bytes, kMaxMessage);
  if (!parsed.ok()) return 0;
  if ((parsed->flags & ~demi::kFlagStarved) != 0) __builtin_trap();
  switch (parsed->type) {
    case demi::WireType::kEager:
      if (parsed->length == 0 || parsed->payload.size() != parsed->length ||
          parsed->payload.data() != bytes.data() + sizeof(demi::WireHeader)) {
        __builtin_trap();
      }
      break;
    case demi::WireType::kRndv: {
      const demi::RndvDescriptor& rndv = parsed->rndv;
      if (rndv.num_segments == 0 ||
          rndv.num_segments > demi::kMaxRndvSegments || parsed->length == 0 ||
          parsed->length > kMaxMessage) {
        __builtin_trap();
      }
      uint64_t total = 0;
      for (uint32_t i = 0; i < rndv.num_segments; ++i) {
        if (rndv.segments[i].length == 0) __builtin_trap();
        total += rndv.segments[i].length;
      }
      if (total != parsed->length) __builtin_trap();
      break;
    }
    default:
      if (parsed->length != 0 || size != sizeof(demi::WireHeader)) {
        __builtin_trap();
      }
  }
  return 0;
}
