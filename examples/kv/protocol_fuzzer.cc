// libFuzzer target: the KV server's request parser on any message a client
// could push. An accepted request must be within the protocol's bounds, its
// views inside the message, and its fields encode to a request that parses.
#include <cstddef>
#include <cstdint>
#include <string>

#include "protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view message(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<kv::Request> request = kv::ParseRequest(message);
  if (!request.ok()) return 0;
  auto inside = [&](absl::string_view part) {
    return part.empty() ||
           (part.data() >= message.data() &&
            part.data() + part.size() <= message.data() + message.size());
  };
  if (!kv::ValidKey(request->key) || !kv::ValidValue(request->value) ||
      !inside(request->key) || !inside(request->value)) {
    __builtin_trap();
  }
  absl::StatusOr<std::string> again =
      kv::EncodeRequest(request->op, request->id, request->key, request->value);
  if (!again.ok() ||
      kv::ParseRequest(*again).status().code() != absl::StatusCode::kOk) {
    __builtin_trap();
  }
  return 0;
}
