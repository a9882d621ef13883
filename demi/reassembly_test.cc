#include "demi/reassembly.h"

#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace demi {
namespace {

constexpr uint32_t kSize = 1000;  // Fragment payload in these tests.
constexpr uint32_t kQp = 0x1234;  // The QP the fragments come from.

// The fragments of datagram `id` from `port`: `total` bytes, byte i is
// (i * 7 + id) % 251.
struct Datagram {
  std::vector<std::byte> bytes;
  std::vector<Fragment> fragments;
};

Datagram Make(uint32_t id, uint16_t port, uint32_t total) {
  Datagram d;
  d.bytes.resize(total);
  for (uint32_t i = 0; i < total; ++i) {
    d.bytes[i] = static_cast<std::byte>((i * 7 + id) % 251);
  }
  uint32_t count = FragmentCount(total, kSize);
  for (uint32_t i = 0; i < count; ++i) {
    Fragment f;
    f.header.src_addr = 0x0100007f;
    f.header.src_port = port;
    f.header.id = id;
    f.header.total_length = total;
    f.header.fragment_count = static_cast<uint16_t>(count);
    f.header.fragment_index = static_cast<uint16_t>(i);
    f.header.offset = i * kSize;
    uint32_t len = std::min(kSize, total - i * kSize);
    f.payload = absl::MakeConstSpan(d.bytes.data() + i * kSize, len);
    f.fragment_size = kSize;
    d.fragments.push_back(f);
  }
  return d;
}

class ReassemblyTest : public ::testing::Test {
 protected:
  // A pool with no device: plain memory, enough for these tests.
  SgaPool pool_{{}, size_t{64} << 20};
  absl::Time now_ = absl::UnixEpoch();

  void ExpectWhole(const absl::optional<Reassembled>& got, const Datagram& d) {
    ASSERT_TRUE(got.has_value());
    ASSERT_EQ(got->length, d.bytes.size());
    EXPECT_EQ(std::memcmp(got->buffer->data, d.bytes.data(), got->length), 0);
  }
};

TEST_F(ReassemblyTest, FragmentsInAnyOrderMakeTheDatagram) {
  Reassembly table(&pool_, {});
  Datagram d = Make(1, 5, kMaxDatagram);
  ASSERT_EQ(d.fragments.size(), 66u);
  for (size_t i = d.fragments.size(); i-- > 1;) {
    EXPECT_FALSE(table.Add(d.fragments[i], kQp, now_).has_value());
  }
  ExpectWhole(table.Add(d.fragments[0], kQp, now_), d);
  EXPECT_EQ(table.entries(), 0u);
  EXPECT_EQ(table.bytes(), 0u);
}

TEST_F(ReassemblyTest, InterleavedSendersStayApart) {
  Reassembly table(&pool_, {});
  // Same datagram number from two ports, and two numbers from one port.
  Datagram a = Make(7, 1, 3500);
  Datagram b = Make(7, 2, 2500);
  Datagram c = Make(8, 1, 1500);
  std::vector<const Datagram*> all = {&a, &b, &c};
  int done = 0;
  for (size_t i = 0; i < 4; ++i) {
    for (const Datagram* d : all) {
      if (i >= d->fragments.size()) continue;
      absl::optional<Reassembled> got = table.Add(d->fragments[i], kQp, now_);
      if (i + 1 == d->fragments.size()) {
        ExpectWhole(got, *d);
        ++done;
      } else {
        EXPECT_FALSE(got.has_value());
      }
    }
  }
  EXPECT_EQ(done, 3);
}

TEST_F(ReassemblyTest, DuplicatesAreIgnored) {
  Reassembly table(&pool_, {});
  Datagram d = Make(1, 5, 2500);
  EXPECT_FALSE(table.Add(d.fragments[0], kQp, now_).has_value());
  EXPECT_FALSE(table.Add(d.fragments[0], kQp, now_).has_value());
  EXPECT_FALSE(table.Add(d.fragments[1], kQp, now_).has_value());
  ExpectWhole(table.Add(d.fragments[2], kQp, now_), d);
  EXPECT_EQ(table.drops().duplicates, 1u);
}

TEST_F(ReassemblyTest, IncompleteDatagramsTimeOut) {
  ReassemblyLimits limits;
  limits.timeout = absl::Milliseconds(100);
  Reassembly table(&pool_, limits);
  Datagram d = Make(1, 5, 2500);
  table.Add(d.fragments[0], kQp, now_);
  table.Expire(now_ + absl::Milliseconds(99));
  EXPECT_EQ(table.entries(), 1u);
  table.Expire(now_ + absl::Milliseconds(100));
  EXPECT_EQ(table.entries(), 0u);
  EXPECT_EQ(table.bytes(), 0u);
  EXPECT_EQ(table.drops().timed_out, 1u);
  // A late fragment starts over; it can no longer complete the old one.
  EXPECT_FALSE(table.Add(d.fragments[1], kQp, now_).has_value());
  EXPECT_FALSE(table.Add(d.fragments[2], kQp, now_).has_value());
  EXPECT_EQ(table.entries(), 1u);
}

TEST_F(ReassemblyTest, AFloodOfFirstFragmentsStaysWithinTheLimits) {
  ReassemblyLimits limits;
  limits.max_entries = 16;
  limits.max_bytes = 256 * 1024;  // Three 65,507-byte datagrams.
  Reassembly table(&pool_, limits);
  size_t pieces_before = pool_.registered_bytes();
  for (uint32_t id = 0; id < 10000; ++id) {
    Datagram d = Make(id, 9, id % 2 == 0 ? kMaxDatagram : 2000);
    EXPECT_FALSE(table.Add(d.fragments[0], kQp, now_).has_value());
    ASSERT_LE(table.entries(), limits.max_entries);
    ASSERT_LE(table.bytes(), limits.max_bytes);
  }
  EXPECT_GE(table.drops().evicted, 10000u - limits.max_entries);
  // The newest datagram still completes: the flood did not wedge the table.
  Datagram last = Make(20000, 9, 2500);
  table.Add(last.fragments[0], kQp, now_);
  table.Add(last.fragments[1], kQp, now_);
  ExpectWhole(table.Add(last.fragments[2], kQp, now_), last);
  // Memory stays what the limits allow (a few slabs), not what was sent.
  EXPECT_LE(pool_.registered_bytes() - pieces_before, size_t{8} << 20);
}

TEST_F(ReassemblyTest, AFragmentThatDisagreesDropsTheDatagram) {
  Reassembly table(&pool_, {});
  Datagram d = Make(1, 5, 2500);
  table.Add(d.fragments[0], kQp, now_);
  Fragment liar = d.fragments[1];
  liar.header.total_length = 2600;
  EXPECT_FALSE(table.Add(liar, kQp, now_).has_value());
  EXPECT_EQ(table.drops().inconsistent, 1u);
  EXPECT_EQ(table.entries(), 0u);
}

TEST_F(ReassemblyTest, FragmentsFromAnotherQpNeverJoinTheDatagram) {
  Reassembly table(&pool_, {});
  Datagram d = Make(1, 5, 2500);
  // Same address, port and id, other bytes and shape, from another QP: it
  // neither fills in a fragment nor makes the real one disagree.
  Datagram forged = Make(2, 5, 2600);
  for (Fragment& f : forged.fragments) f.header.id = 1;
  EXPECT_FALSE(table.Add(forged.fragments[0], kQp + 1, now_).has_value());
  EXPECT_FALSE(table.Add(d.fragments[1], kQp, now_).has_value());
  EXPECT_FALSE(table.Add(forged.fragments[2], kQp + 1, now_).has_value());
  EXPECT_FALSE(table.Add(d.fragments[0], kQp, now_).has_value());
  ExpectWhole(table.Add(d.fragments[2], kQp, now_), d);
  EXPECT_EQ(table.drops().inconsistent, 0u);
  EXPECT_EQ(table.drops().duplicates, 0u);
  EXPECT_EQ(table.entries(), 1u);  // The forgery's, until it times out.
}

TEST_F(ReassemblyTest, NoMemoryDropsAndCounts) {
  SgaPool tiny({}, 0);  // Can register nothing.
  Reassembly table(&tiny, {});
  Datagram d = Make(1, 5, 2500);
  EXPECT_FALSE(table.Add(d.fragments[0], kQp, now_).has_value());
  EXPECT_EQ(table.drops().no_memory, 1u);
  EXPECT_EQ(table.entries(), 0u);
}

}  // namespace
}  // namespace demi
