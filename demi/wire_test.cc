#include "demi/wire.h"

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "rdma/status_util.h"

namespace demi {
namespace {

constexpr uint32_t kMax = 1 << 24;

std::vector<std::byte> Message(WireHeader header, size_t body_size) {
  std::vector<std::byte> bytes(sizeof(header) + body_size);
  std::memcpy(bytes.data(), &header, sizeof(header));
  return bytes;
}

std::vector<std::byte> Rndv(uint32_t count, uint32_t seg_length,
                            uint32_t total) {
  WireHeader header = {};
  header.type = static_cast<uint8_t>(WireType::kRndv);
  header.length = total;
  header.cookie = 9;
  std::vector<std::byte> bytes =
      Message(header, RndvMessageSize(count) - sizeof(header));
  std::memcpy(bytes.data() + sizeof(header), &count, sizeof(count));
  for (uint32_t i = 0; i < count; ++i) {
    RndvSegment seg = {0x1000u * (i + 1), 7, seg_length};
    std::memcpy(bytes.data() + sizeof(header) + 8 + i * sizeof(seg), &seg,
                sizeof(seg));
  }
  return bytes;
}

int ErrnoOfParse(const std::vector<std::byte>& bytes) {
  return rdma::ErrnoOf(ParseMessage(bytes, kMax).status());
}

TEST(WireTest, EagerCarriesItsPayload) {
  WireHeader header = {};
  header.type = static_cast<uint8_t>(WireType::kEager);
  header.credits = 5;
  header.length = 3;
  std::vector<std::byte> bytes = Message(header, 3);
  bytes[16] = std::byte{'a'};
  absl::StatusOr<ParsedMessage> parsed = ParseMessage(bytes, kMax);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->type, WireType::kEager);
  EXPECT_EQ(parsed->credits, 5);
  ASSERT_EQ(parsed->payload.size(), 3u);
  EXPECT_EQ(parsed->payload[0], std::byte{'a'});
}

TEST(WireTest, EagerLengthMustMatchTheBytesReceived) {
  WireHeader header = {};
  header.type = static_cast<uint8_t>(WireType::kEager);
  header.length = 100;
  EXPECT_EQ(ErrnoOfParse(Message(header, 3)), EPROTO);
}

TEST(WireTest, ShortOrUnknownMessagesAreEproto) {
  EXPECT_EQ(ErrnoOfParse(std::vector<std::byte>(15)), EPROTO);
  WireHeader header = {};
  header.type = 99;
  EXPECT_EQ(ErrnoOfParse(Message(header, 0)), EPROTO);
  header.type = 0;
  EXPECT_EQ(ErrnoOfParse(Message(header, 0)), EPROTO);
}

TEST(WireTest, RendezvousIsDecodedAndChecked) {
  absl::StatusOr<ParsedMessage> parsed =
      ParseMessage(Rndv(3, 1000, 3000), kMax);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->type, WireType::kRndv);
  EXPECT_EQ(parsed->cookie, 9u);
  EXPECT_EQ(parsed->rndv.num_segments, 3u);
  EXPECT_EQ(parsed->rndv.segments[2].addr, 0x3000u);
  EXPECT_EQ(parsed->rndv.segments[1].length, 1000u);
}

TEST(WireTest, BadRendezvousIsEproto) {
  EXPECT_EQ(ErrnoOfParse(Rndv(3, 1000, 2999)), EPROTO);          // Sum.
  EXPECT_EQ(ErrnoOfParse(Rndv(0, 1000, 0)), EPROTO);             // No segment.
  EXPECT_EQ(ErrnoOfParse(Rndv(17, 1, 17)), EPROTO);              // Too many.
  EXPECT_EQ(ErrnoOfParse(Rndv(2, 0, 0)), EPROTO);                // Empty.
  EXPECT_EQ(ErrnoOfParse(Rndv(1, kMax + 1, kMax + 1)), EPROTO);  // Too big.
  std::vector<std::byte> truncated = Rndv(2, 10, 20);
  truncated.pop_back();
  EXPECT_EQ(ErrnoOfParse(truncated), EPROTO);
}

TEST(WireTest, ControlMessagesCarryNoBody) {
  for (WireType type :
       {WireType::kRndvDone, WireType::kCredit, WireType::kClose}) {
    WireHeader header = {};
    header.type = static_cast<uint8_t>(type);
    header.credits = 2;
    absl::StatusOr<ParsedMessage> parsed =
        ParseMessage(Message(header, 0), kMax);
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(parsed->type, type);
    EXPECT_EQ(ErrnoOfParse(Message(header, 1)), EPROTO);
  }
}

TEST(WireTest, ConnectDataIsChecked) {
  ConnectData data = {kConnectMagic, kWireVersion, 64, 8192, 2, 0};
  std::vector<std::byte> bytes(sizeof(data) + 8);  // Transports pad.
  std::memcpy(bytes.data(), &data, sizeof(data));
  absl::StatusOr<ConnectData> parsed = ParseConnectData(bytes);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->max_credits, 64);
  EXPECT_EQ(parsed->initial_credits, 2);
  data.version = kWireVersion + 1;
  std::memcpy(bytes.data(), &data, sizeof(data));
  EXPECT_EQ(rdma::ErrnoOf(ParseConnectData(bytes).status()), EPROTO);
  EXPECT_EQ(rdma::ErrnoOf(ParseConnectData({}).status()), EPROTO);
}

TEST(WireTest, ConnectDataRoundTripsAndImplausibleBuffersAreRefused) {
  auto parse = [](const std::string& bytes) {
    return ParseConnectData(absl::MakeConstSpan(
        reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()));
  };
  absl::StatusOr<ConnectData> ours = parse(EncodeConnectData(2, 64, 8192));
  ASSERT_TRUE(ours.ok()) << ours.status();
  EXPECT_EQ(ours->initial_credits, 2);
  EXPECT_EQ(ours->max_credits, 64);
  EXPECT_EQ(ours->eager_size, 8192u);
  EXPECT_TRUE(parse(EncodeConnectData(kMaxPeerCredits, kMaxPeerCredits,
                                      kMaxPeerEagerSize))
                  .ok());
  for (const std::string& bad :
       {EncodeConnectData(2, kMaxPeerCredits + 1, 8192),
        EncodeConnectData(2, 64, kMaxPeerEagerSize + 1),
        EncodeConnectData(0, 64, 8192), EncodeConnectData(1, 64, 8192),
        EncodeConnectData(1, 1, 8192), EncodeConnectData(65, 64, 8192),
        EncodeConnectData(2, 64, 15),
        EncodeConnectData(2, 64, RndvMessageSize(kMaxRndvSegments) - 1)}) {
    EXPECT_EQ(rdma::ErrnoOf(parse(bad).status()), EPROTO);
  }
}

TEST(WireTest, FlagsOtherThanStarvedAreRejected) {
  WireHeader header = {};
  header.type = static_cast<uint8_t>(WireType::kCredit);
  header.flags = kFlagStarved;
  absl::StatusOr<ParsedMessage> parsed = ParseMessage(Message(header, 0), kMax);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->flags, kFlagStarved);
  header.flags = 2;
  EXPECT_EQ(ErrnoOfParse(Message(header, 0)), EPROTO);
}

TEST(WireTest, EmptyEagerMessageIsRejected) {
  WireHeader header = {};
  header.type = static_cast<uint8_t>(WireType::kEager);
  header.length = 0;
  // Empty would pop as EOF: only CLOSE may mean that.
  EXPECT_EQ(ErrnoOfParse(Message(header, 0)), EPROTO);
}

// Every truncation and every single-byte corruption of valid messages is
// either accepted consistently or rejected with EPROTO; never a crash.
TEST(WireTest, EagerWithImmediateDataCarriesCreditsFlagsAndEveryByte) {
  std::vector<std::byte> bytes(4096, std::byte{7});
  ParsedMessage parsed;
  ASSERT_TRUE(
      ParseEagerImmInto(EagerImm(kFlagStarved, 513), bytes, &parsed).ok());
  EXPECT_EQ(parsed.type, WireType::kEager);
  EXPECT_EQ(parsed.flags, kFlagStarved);
  EXPECT_EQ(parsed.credits, 513);
  EXPECT_EQ(parsed.length, 4096u);
  EXPECT_EQ(parsed.payload.data(), bytes.data());
  EXPECT_EQ(parsed.payload.size(), 4096u);
  EXPECT_EQ(EagerImm(0, 0xffff) & 0xffff, 0xffffu);
}

TEST(WireTest, BadImmediateDataIsEproto) {
  std::vector<std::byte> bytes(10);
  ParsedMessage parsed;
  auto errno_of = [&](uint32_t imm, absl::Span<const std::byte> body) {
    return rdma::ErrnoOf(ParseEagerImmInto(imm, body, &parsed));
  };
  EXPECT_EQ(errno_of(EagerImm(0, 1), bytes), 0);
  // Only kEager comes this way; the others always have a header.
  for (WireType type : {WireType::kRndv, WireType::kRndvDone, WireType::kCredit,
                        WireType::kClose}) {
    uint32_t imm = uint32_t{static_cast<uint8_t>(type)} << 24 | 1;
    EXPECT_EQ(errno_of(imm, bytes), EPROTO);
  }
  EXPECT_EQ(errno_of(0, bytes), EPROTO);
  EXPECT_EQ(errno_of(EagerImm(2, 1), bytes), EPROTO);  // Unknown flag.
  EXPECT_EQ(errno_of(EagerImm(0, 1), {}), EPROTO);     // Would pop as EOF.
}

TEST(WireTest, CorruptedMessagesNeverCrash) {
  std::vector<std::vector<std::byte>> seeds = {Rndv(4, 100, 400)};
  WireHeader header = {};
  header.type = static_cast<uint8_t>(WireType::kEager);
  header.length = 8;
  seeds.push_back(Message(header, 8));
  for (const auto& seed : seeds) {
    for (size_t cut = 0; cut <= seed.size(); ++cut) {
      std::vector<std::byte> bytes(seed.begin(), seed.begin() + cut);
      absl::StatusOr<ParsedMessage> parsed = ParseMessage(bytes, kMax);
      if (!parsed.ok()) {
        EXPECT_EQ(rdma::ErrnoOf(parsed.status()), EPROTO);
      }
    }
    for (size_t i = 0; i < seed.size(); ++i) {
      for (int v : {0x00, 0x01, 0x7f, 0x80, 0xff}) {
        std::vector<std::byte> bytes = seed;
        bytes[i] = static_cast<std::byte>(v);
        absl::StatusOr<ParsedMessage> parsed = ParseMessage(bytes, kMax);
        if (parsed.ok() && parsed->type == WireType::kRndv) {
          uint64_t total = 0;
          for (uint32_t s = 0; s < parsed->rndv.num_segments; ++s) {
            total += parsed->rndv.segments[s].length;
          }
          EXPECT_EQ(total, parsed->length);
          EXPECT_LE(parsed->length, kMax);
        }
      }
    }
  }
}

}  // namespace
}  // namespace demi
