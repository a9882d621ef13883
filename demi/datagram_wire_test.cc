#include "demi/datagram_wire.h"

#include <cerrno>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "rdma/status_util.h"

namespace demi {
namespace {

// A fragment of a datagram of `total` bytes cut into `size`-byte pieces.
std::vector<std::byte> Message(uint32_t total, uint32_t size, uint16_t index,
                               uint32_t payload) {
  DatagramHeader h = {};
  h.magic = kDatagramMagic;
  h.version = kDatagramVersion;
  h.fragment_count = static_cast<uint16_t>(FragmentCount(total, size));
  h.fragment_index = index;
  h.total_length = total;
  h.offset = index * size;
  std::vector<std::byte> bytes(sizeof(h) + payload);
  std::memcpy(bytes.data(), &h, sizeof(h));
  return bytes;
}

DatagramHeader& HeaderOf(std::vector<std::byte>& bytes) {
  return *reinterpret_cast<DatagramHeader*>(bytes.data());
}

int ErrnoOfParse(const std::vector<std::byte>& bytes) {
  return rdma::ErrnoOf(ParseFragment(bytes).status());
}

TEST(DatagramWireTest, FragmentCountRoundsUp) {
  EXPECT_EQ(FragmentCount(0, 1000), 1u);
  EXPECT_EQ(FragmentCount(1000, 1000), 1u);
  EXPECT_EQ(FragmentCount(1001, 1000), 2u);
  EXPECT_EQ(FragmentCount(kMaxDatagram, FragmentPayload(256)),
            (kMaxDatagram + 227) / 228);
  EXPECT_LE(FragmentCount(kMaxDatagram, FragmentPayload(256)), kMaxFragments);
}

TEST(DatagramWireTest, WholeDatagramsAndEveryFragmentParse) {
  auto one = Message(100, 100, 0, 100);
  absl::StatusOr<Fragment> parsed = ParseFragment(one);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->payload.size(), 100u);
  EXPECT_EQ(ErrnoOfParse(Message(0, 1000, 0, 0)), 0);  // Empty datagram.
  // 2,500 bytes in 1,000-byte fragments: 1,000 + 1,000 + 500.
  for (uint16_t i = 0; i < 3; ++i) {
    auto bytes = Message(2500, 1000, i, i < 2 ? 1000 : 500);
    parsed = ParseFragment(bytes);
    ASSERT_TRUE(parsed.ok()) << i << ": " << parsed.status();
    EXPECT_EQ(parsed->fragment_size, 1000u);
  }
}

TEST(DatagramWireTest, MalformedFragmentsAreEproto) {
  EXPECT_EQ(ErrnoOfParse(std::vector<std::byte>(10)), EPROTO);
  auto bad_magic = Message(10, 10, 0, 10);
  HeaderOf(bad_magic).magic = 0;
  EXPECT_EQ(ErrnoOfParse(bad_magic), EPROTO);
  auto bad_version = Message(10, 10, 0, 10);
  HeaderOf(bad_version).version = 9;
  EXPECT_EQ(ErrnoOfParse(bad_version), EPROTO);
  // Shorter or longer than the header says.
  EXPECT_EQ(ErrnoOfParse(Message(10, 10, 0, 9)), EPROTO);
  EXPECT_EQ(ErrnoOfParse(Message(10, 10, 0, 11)), EPROTO);
  auto too_long = Message(kMaxDatagram + 1, 1000, 0, 1000);
  EXPECT_EQ(ErrnoOfParse(too_long), EPROTO);
  auto index_out = Message(2500, 1000, 2, 500);
  HeaderOf(index_out).fragment_index = 3;
  EXPECT_EQ(ErrnoOfParse(index_out), EPROTO);
  auto no_count = Message(10, 10, 0, 10);
  HeaderOf(no_count).fragment_count = 0;
  EXPECT_EQ(ErrnoOfParse(no_count), EPROTO);
  // A middle fragment not at index x size, a last one short of the end,
  // a last one longer than the others, an empty middle one.
  auto misplaced = Message(2500, 1000, 1, 1000);
  HeaderOf(misplaced).offset = 999;
  EXPECT_EQ(ErrnoOfParse(misplaced), EPROTO);
  EXPECT_EQ(ErrnoOfParse(Message(2500, 1000, 2, 499)), EPROTO);
  auto big_last = Message(2100, 1000, 2, 100);
  HeaderOf(big_last).offset = 900;
  HeaderOf(big_last).total_length = 2100;
  EXPECT_EQ(ErrnoOfParse(big_last), EPROTO);
  EXPECT_EQ(ErrnoOfParse(Message(2500, 1000, 1, 0)), EPROTO);
}

TEST(DatagramWireTest, CompactImmediateDataCarriesThePort) {
  for (uint16_t port : {uint16_t{0}, uint16_t{0x1234}, uint16_t{0xffff}}) {
    uint16_t parsed = 1;
    EXPECT_TRUE(ParseCompactImm(CompactImm(port), &parsed));
    EXPECT_EQ(parsed, port);
  }
  uint16_t parsed = 0;
  EXPECT_FALSE(ParseCompactImm(0, &parsed));
  EXPECT_FALSE(ParseCompactImm(0xd6a70001, &parsed));  // The header's magic.
  EXPECT_FALSE(ParseCompactImm(CompactImm(7) ^ 0x80000000, &parsed));
}

TEST(DatagramWireTest, OnlyTheCapabilitySaysCompact) {
  std::vector<std::byte> data(kCompactCapability,
                              kCompactCapability + sizeof(kCompactCapability));
  EXPECT_TRUE(SaysCompact(data));
  data.resize(136);  // SIDR pads private data with zeros.
  EXPECT_TRUE(SaysCompact(data));
  EXPECT_FALSE(SaysCompact(std::vector<std::byte>(136)));  // An older peer.
  EXPECT_FALSE(SaysCompact(absl::MakeConstSpan(kCompactCapability, 3)));
  EXPECT_FALSE(SaysCompact({}));
  data[2] = std::byte{kDatagramVersion + 1};
  EXPECT_FALSE(SaysCompact(data));
}

TEST(DatagramWireTest, ASidrReplySaysItsMtuAndWhetherCompact) {
  for (bool compact : {true, false}) {
    std::string reply = EncodeSidrReply(compact, 4096);
    auto bytes = [](const std::string& s) {
      return absl::MakeConstSpan(reinterpret_cast<const std::byte*>(s.data()),
                                 s.size());
    };
    EXPECT_EQ(reply.size(), kSidrReplySize);
    EXPECT_EQ(SaysCompact(bytes(reply)), compact);
    EXPECT_EQ(SaysMtu(bytes(reply)), 4096u);
    reply.resize(136);  // Padded by the transport.
    EXPECT_EQ(SaysMtu(bytes(reply)), 4096u);
    EXPECT_EQ(SaysCompact(bytes(reply)), compact);
  }
  auto raw = [](std::vector<std::byte> v) { return SaysMtu(v); };
  std::vector<std::byte> capability(
      kCompactCapability, kCompactCapability + sizeof(kCompactCapability));
  EXPECT_EQ(raw(capability), 0u);  // An older socket: the capability alone,
  capability.resize(136);          // padded,
  EXPECT_EQ(raw(capability), 0u);
  EXPECT_EQ(raw(std::vector<std::byte>(136)), 0u);  // or nothing at all.
  EXPECT_EQ(raw({}), 0u);
  std::string reply = EncodeSidrReply(false, 1024);
  reply[4] = 'X';  // No tag.
  EXPECT_EQ(SaysMtu(absl::MakeConstSpan(
                reinterpret_cast<const std::byte*>(reply.data()), 8)),
            0u);
  EXPECT_EQ(
      SaysMtu(absl::MakeConstSpan(reinterpret_cast<const std::byte*>(
                                      EncodeSidrReply(false, 1 << 20).data()),
                                  8)),
      0xffffu);  // Capped at what two bytes hold.
}

}  // namespace
}  // namespace demi
