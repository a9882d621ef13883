// libFuzzer target: ParseConnectData on rdma_cm private data from any peer.
// Accepted data must announce what the library is prepared to trust.
#include <cstddef>
#include <cstdint>

#include "demi/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<demi::ConnectData> parsed = demi::ParseConnectData(
      absl::MakeConstSpan(reinterpret_cast<const std::byte*>(data), size));
  if (!parsed.ok()) return 0;
  if (parsed->magic != demi::kConnectMagic ||
      parsed->version != demi::kWireVersion ||
      parsed->initial_credits < demi::kMinPeerCredits ||
      parsed->initial_credits > parsed->max_credits ||
      parsed->max_credits > demi::kMaxPeerCredits ||
      parsed->eager_size < sizeof(demi::WireHeader) ||
      parsed->eager_size > demi::kMaxPeerEagerSize) {
    __builtin_trap();
  }
  return 0;
}
