#include "protocol.h"

#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace kv {
namespace {

TEST(ProtocolTest, RequestRoundTrip) {
  absl::StatusOr<std::string> message =
      EncodeRequest(Op::kPut, 42, "key", "value");
  ASSERT_TRUE(message.ok());
  absl::StatusOr<Request> request = ParseRequest(*message);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->op, Op::kPut);
  EXPECT_EQ(request->id, 42u);
  EXPECT_EQ(request->key, "key");
  EXPECT_EQ(request->value, "value");
}

TEST(ProtocolTest, KeyAndValueBounds) {
  EXPECT_TRUE(EncodeRequest(Op::kGet, 1, std::string(250, 'k'), "").ok());
  EXPECT_FALSE(EncodeRequest(Op::kGet, 1, std::string(251, 'k'), "").ok());
  EXPECT_FALSE(EncodeRequest(Op::kGet, 1, "", "").ok());
  EXPECT_TRUE(
      EncodeRequest(Op::kPut, 1, "k", std::string(kMaxValueSize, 'v')).ok());
  EXPECT_FALSE(
      EncodeRequest(Op::kPut, 1, "k", std::string(kMaxValueSize + 1, 'v'))
          .ok());
}

TEST(ProtocolTest, RejectsMalformedRequests) {
  std::string good = *EncodeRequest(Op::kPut, 7, "key", "value");
  EXPECT_FALSE(ParseRequest(good.substr(0, 15)).ok());  // Short header.
  EXPECT_FALSE(ParseRequest(good.substr(0, 20)).ok());  // Truncated.
  EXPECT_FALSE(ParseRequest(good + "x").ok());          // Trailing bytes.
  std::string bad_op = good;
  bad_op[0] = 9;
  EXPECT_FALSE(ParseRequest(bad_op).ok());
  // Sizes that would wrap a 32-bit sum.
  std::string huge = good;
  uint32_t value_size = 0xFFFFFFFFu;
  std::memcpy(&huge[4], &value_size, sizeof(value_size));
  EXPECT_FALSE(ParseRequest(huge).ok());
  // GET with a value.
  std::string get = *EncodeRequest(Op::kPut, 7, "key", "v");
  get[0] = static_cast<char>(Op::kGet);
  EXPECT_FALSE(ParseRequest(get).ok());
  // A key longer than the limit, consistently sized.
  std::string long_key(sizeof(RequestHeader) + 251, 'k');
  RequestHeader header = {};
  header.op = static_cast<uint8_t>(Op::kGet);
  header.key_size = 251;
  std::memcpy(long_key.data(), &header, sizeof(header));
  EXPECT_FALSE(ParseRequest(long_key).ok());
}

TEST(ProtocolTest, ResponseRoundTrip) {
  std::string message(ResponseSize("hello"), '\0');
  WriteResponse(Code::kOk, 9, "hello", message.data());
  absl::StatusOr<Response> response = ParseResponse(message);
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->code, Code::kOk);
  EXPECT_EQ(response->id, 9u);
  EXPECT_EQ(response->value, "hello");
  EXPECT_FALSE(ParseResponse(message.substr(0, 18)).ok());
  message[0] = 7;
  EXPECT_FALSE(ParseResponse(message).ok());
}

}  // namespace
}  // namespace kv
