// libFuzzer target: what a UD peer could send to a datagram socket, as a
// sequence of messages (each: a 2-byte little-endian length, then that many
// bytes), through ParseFragment and into a small Reassembly table. Beyond
// "no crash, no sanitizer report": an accepted fragment lies inside its
// datagram, the table stays within its limits, and a datagram it completes
// has exactly the length every fragment announced.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "demi/datagram_wire.h"
#include "demi/reassembly.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  demi::SgaPool pool({}, size_t{64} << 20);
  demi::ReassemblyLimits limits;
  limits.max_entries = 4;
  limits.max_bytes = 128 * 1024;
  limits.timeout = absl::Milliseconds(50);
  demi::Reassembly table(&pool, limits);
  absl::Time now = absl::UnixEpoch();
  while (size >= 2) {
    size_t length = std::min<size_t>(data[0] | (data[1] << 8), size - 2);
    auto message = absl::MakeConstSpan(
        reinterpret_cast<const std::byte*>(data + 2), length);
    data += 2 + length;
    size -= 2 + length;
    now += absl::Milliseconds(10);
    table.Expire(now);
    absl::StatusOr<demi::Fragment> fragment = demi::ParseFragment(message);
    if (!fragment.ok()) continue;
    const demi::DatagramHeader& h = fragment->header;
    if (h.total_length > demi::kMaxDatagram ||
        uint64_t{h.offset} + fragment->payload.size() > h.total_length ||
        fragment->payload.data() < message.data() ||
        fragment->payload.end() > message.end()) {
      __builtin_trap();
    }
    if (h.fragment_count == 1 || h.total_length == 0) continue;
    absl::optional<demi::Reassembled> whole = table.Add(*fragment, now);
    if (table.entries() > limits.max_entries ||
        table.bytes() > limits.max_bytes) {
      __builtin_trap();
    }
    if (whole.has_value() && whole->length != h.total_length) {
      __builtin_trap();
    }
  }
  return 0;
}
