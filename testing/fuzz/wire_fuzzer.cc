// libFuzzer target: ParseMessage on whatever a peer could SEND. Beyond "no
// crash, no sanitizer report", a message it accepts must be self-consistent:
// that is what the data path relies on without checking again.
#include <cstddef>
#include <cstdint>

#include "demi/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr uint32_t kMaxMessage = uint32_t{1} << 24;
  auto bytes =
      absl::MakeConstSpan(reinterpret_cast<const std::byte*>(data), size);
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
