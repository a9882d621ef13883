// The key-value wire format: one request or response per Demikernel
// message (a message is never split, so no framing beyond the header).
//
//   request:  RequestHeader, key bytes, value bytes (PUT only)
//   response: ResponseHeader, value bytes (GET hit only)
#ifndef KV_PROTOCOL_H_
#define KV_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kv {

inline constexpr size_t kMaxKeySize = 250;
inline constexpr size_t kMaxValueSize = size_t{1} << 20;

enum class Op : uint8_t { kGet = 1, kPut = 2, kDelete = 3 };

enum class Code : uint8_t {
  kOk = 0,
  kNotFound = 1,
  kBadRequest = 2,  // Malformed, or key/value size out of bounds.
  kOutOfSpace = 3,  // A PUT the table has no room for (--max_bytes/keys).
};

struct RequestHeader {
  uint8_t op;
  uint8_t reserved;
  uint16_t key_size;
  uint32_t value_size;
  uint64_t id;  // Echoed in the response.
};
static_assert(sizeof(RequestHeader) == 16, "wire layout");

struct ResponseHeader {
  uint8_t code;
  uint8_t reserved[3];
  uint32_t value_size;
  uint64_t id;
};
static_assert(sizeof(ResponseHeader) == 16, "wire layout");

// A request as read from a message; the views point into that message.
struct Request {
  Op op;
  uint64_t id;
  absl::string_view key;
  absl::string_view value;
};

struct Response {
  Code code;
  uint64_t id;
  absl::string_view value;
};

// The whole request message; INVALID_ARGUMENT if a size is out of bounds.
absl::StatusOr<std::string> EncodeRequest(Op op, uint64_t id,
                                          absl::string_view key,
                                          absl::string_view value);
size_t RequestSize(absl::string_view key, absl::string_view value);
// Writes the request into `out` (RequestSize bytes); sizes already checked.
void WriteRequest(Op op, uint64_t id, absl::string_view key,
                  absl::string_view value, char* out);

// Checks every field against the message size and the bounds: an
// untrusted peer's message cannot make the server read out of bounds.
absl::StatusOr<Request> ParseRequest(absl::string_view message);

size_t ResponseSize(absl::string_view value);
void WriteResponse(Code code, uint64_t id, absl::string_view value, char* out);
absl::StatusOr<Response> ParseResponse(absl::string_view message);

// Whether `key` and `value` are within the protocol's bounds.
bool ValidKey(absl::string_view key);
bool ValidValue(absl::string_view value);

}  // namespace kv

#endif  // KV_PROTOCOL_H_
