#include "protocol.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace kv {

bool ValidKey(absl::string_view key) {
  return !key.empty() && key.size() <= kMaxKeySize;
}

bool ValidValue(absl::string_view value) {
  return value.size() <= kMaxValueSize;
}

size_t RequestSize(absl::string_view key, absl::string_view value) {
  return sizeof(RequestHeader) + key.size() + value.size();
}

void WriteRequest(Op op, uint64_t id, absl::string_view key,
                  absl::string_view value, char* out) {
  RequestHeader header = {};
  header.op = static_cast<uint8_t>(op);
  header.key_size = static_cast<uint16_t>(key.size());
  header.value_size = static_cast<uint32_t>(value.size());
  header.id = id;
  std::memcpy(out, &header, sizeof(header));
  std::memcpy(out + sizeof(header), key.data(), key.size());
  if (!value.empty()) {
    std::memcpy(out + sizeof(header) + key.size(), value.data(), value.size());
  }
}

absl::StatusOr<std::string> EncodeRequest(Op op, uint64_t id,
                                          absl::string_view key,
                                          absl::string_view value) {
  if (!ValidKey(key)) {
    return absl::InvalidArgumentError(
        absl::StrCat("key of ", key.size(), " bytes (1 to ", kMaxKeySize, ")"));
  }
  if (!ValidValue(value)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "value of ", value.size(), " bytes (at most ", kMaxValueSize, ")"));
  }
  std::string message(RequestSize(key, value), '\0');
  WriteRequest(op, id, key, value, message.data());
  return message;
}

absl::StatusOr<Request> ParseRequest(absl::string_view message) {
  if (message.size() < sizeof(RequestHeader)) {
    return absl::InvalidArgumentError("request shorter than its header");
  }
  RequestHeader header;
  std::memcpy(&header, message.data(), sizeof(header));
  Request request;
  request.id = header.id;
  switch (static_cast<Op>(header.op)) {
    case Op::kGet:
    case Op::kPut:
    case Op::kDelete:
      request.op = static_cast<Op>(header.op);
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown operation ", header.op));
  }
  // 64-bit sums: the fields cannot wrap around.
  uint64_t expected =
      uint64_t{sizeof(header)} + header.key_size + uint64_t{header.value_size};
  if (expected != message.size()) {
    return absl::InvalidArgumentError(absl::StrCat("request sizes add up to ",
                                                   expected, ", message has ",
                                                   message.size()));
  }
  request.key = message.substr(sizeof(header), header.key_size);
  request.value =
      message.substr(sizeof(header) + header.key_size, header.value_size);
  if (!ValidKey(request.key) || !ValidValue(request.value)) {
    return absl::InvalidArgumentError("key or value size out of bounds");
  }
  if (request.op != Op::kPut && !request.value.empty()) {
    return absl::InvalidArgumentError("only PUT carries a value");
  }
  return request;
}

size_t ResponseSize(absl::string_view value) {
  return sizeof(ResponseHeader) + value.size();
}

void WriteResponse(Code code, uint64_t id, absl::string_view value, char* out) {
  ResponseHeader header = {};
  header.code = static_cast<uint8_t>(code);
  header.value_size = static_cast<uint32_t>(value.size());
  header.id = id;
  std::memcpy(out, &header, sizeof(header));
  if (!value.empty()) {
    std::memcpy(out + sizeof(header), value.data(), value.size());
  }
}

absl::StatusOr<Response> ParseResponse(absl::string_view message) {
  if (message.size() < sizeof(ResponseHeader)) {
    return absl::DataLossError("response shorter than its header");
  }
  ResponseHeader header;
  std::memcpy(&header, message.data(), sizeof(header));
  if (header.code > static_cast<uint8_t>(Code::kOutOfSpace)) {
    return absl::DataLossError(absl::StrCat("unknown code ", header.code));
  }
  if (uint64_t{sizeof(header)} + header.value_size != message.size()) {
    return absl::DataLossError("response size does not match its header");
  }
  return Response{static_cast<Code>(header.code), header.id,
                  message.substr(sizeof(header))};
}

}  // namespace kv
