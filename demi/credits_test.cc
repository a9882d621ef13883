#include "demi/credits.h"

#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace demi {
namespace {

// Stands in for SharedReceive: the SRQ posts up to the allotments, and a
// message that arrives takes one posted buffer.
class Srq {
 public:
  explicit Srq(uint32_t capacity = 1024, uint32_t growth_limit = 256) {
    pool.capacity = capacity;
    pool.growth_limit = growth_limit;
  }
  void Refill() { pool.posted += pool.deficit(); }
  // A message from the peer of `c`, as the data path handles it.
  bool Arrive(ConnectionCredits& c, bool starved = false) {
    if (pool.posted == 0) return false;  // RNR: never with honest credits.
    --pool.posted;
    return c.OnArrival(starved);
  }
  void CheckInvariant() const { EXPECT_LE(pool.promised, pool.posted); }

  CreditPool pool;
};

std::unique_ptr<ConnectionCredits> Open(Srq& srq) {
  auto c = std::make_unique<ConnectionCredits>(&srq.pool);
  EXPECT_TRUE(c->Reserve());
  srq.Refill();
  EXPECT_TRUE(c->GrantInitial());
  return c;
}

TEST(CreditsTest, BaseCreditsNeedPostedBuffersAndAFreeSlot) {
  Srq srq(/*capacity=*/2 * kBaseCredits - 1);
  ConnectionCredits a(&srq.pool);
  ASSERT_TRUE(a.Reserve());
  EXPECT_FALSE(a.GrantInitial()) << "nothing posted yet";
  srq.Refill();
  ASSERT_TRUE(a.GrantInitial());
  EXPECT_EQ(a.peer_credits(), kBaseCredits);
  ConnectionCredits b(&srq.pool);
  EXPECT_FALSE(b.Reserve()) << "two base allotments exceed the capacity";
  srq.CheckInvariant();
}

TEST(CreditsTest, ConnectionsBeyondTheCapFindNoRoomUntilOneCloses) {
  Srq srq;
  srq.pool.max_connections = 2;
  auto a = Open(srq);
  auto b = Open(srq);
  EXPECT_FALSE(srq.pool.HasRoom());
  ConnectionCredits c(&srq.pool);
  EXPECT_FALSE(c.Reserve()) << "two connections are the cap";
  b->Close();
  EXPECT_TRUE(srq.pool.HasRoom());
  EXPECT_TRUE(c.Reserve());
  EXPECT_EQ(srq.pool.connections, 2u);
  c.Close();
  c.Close();  // Idempotent: counted once.
  EXPECT_EQ(srq.pool.connections, 1u);
}

TEST(CreditsTest, AMessageWithoutACreditIsRefused) {
  Srq srq;
  auto c = Open(srq);
  for (uint32_t i = 0; i < kBaseCredits; ++i) EXPECT_TRUE(srq.Arrive(*c));
  EXPECT_FALSE(c->OnArrival(false));
}

TEST(CreditsTest, ConsumedCreditsGoBackOnlyWithABufferBehindThem) {
  Srq srq;
  auto c = Open(srq);
  ASSERT_TRUE(srq.Arrive(*c));
  c->OnConsumed();
  EXPECT_TRUE(c->Back()) << "the SRQ has not been refilled yet";
  EXPECT_EQ(c->owed(), 0u);
  srq.Refill();
  EXPECT_FALSE(c->Back());
  EXPECT_EQ(c->owed(), 1u);
  EXPECT_EQ(c->TakeReturn(), 1);
  EXPECT_EQ(c->peer_credits(), kBaseCredits);
  srq.CheckInvariant();
}

TEST(CreditsTest, APeerThatCannotSendDataGetsItsCreditsSoon) {
  Srq srq;
  auto c = Open(srq);
  ASSERT_TRUE(srq.Arrive(*c));
  c->OnConsumed();
  srq.Refill();
  c->Back();
  // One owed: a reply carries it; a CREDIT message for one would cost as
  // much as it returns.
  EXPECT_FALSE(c->ReturnSoon());
  EXPECT_FALSE(c->ReturnNow());
  ASSERT_TRUE(srq.Arrive(*c));
  c->OnConsumed();
  srq.Refill();
  c->Back();
  // The peer holds one credit: enough for control messages, not for data.
  EXPECT_TRUE(c->ReturnSoon());
  EXPECT_FALSE(c->ReturnNow()) << "a reply may still carry them";
}

TEST(CreditsTest, ASingleCreditNeverGoesBackAlone) {
  Srq srq;
  auto c = Open(srq);
  for (uint32_t i = 0; i < kBaseCredits; ++i) ASSERT_TRUE(srq.Arrive(*c));
  c->OnConsumed();
  srq.Refill();
  c->Back();
  ASSERT_EQ(c->peer_credits(), 0u);
  EXPECT_FALSE(c->ReturnSoon());
  c->OnConsumed();
  srq.Refill();
  c->Back();
  EXPECT_TRUE(c->ReturnSoon());
}

TEST(CreditsTest, AStarvedPeerGrowsByDoublingUpToTheMaximum) {
  Srq srq;
  auto c = Open(srq);
  std::vector<uint32_t> seen;
  for (int round = 0; round < 10; ++round) {
    // The peer sends all but one credit, saying it is starved.
    uint32_t n = c->peer_credits();
    for (uint32_t i = 0; i < n; ++i) {
      ASSERT_TRUE(srq.Arrive(*c, /*starved=*/i + 1 == n));
    }
    for (uint32_t i = 0; i < n; ++i) c->OnConsumed();
    srq.Refill();
    EXPECT_FALSE(c->Back());
    EXPECT_EQ(c->ReturnNow(), c->owed() >= kMinCreditReturn);
    c->TakeReturn();
    srq.CheckInvariant();
    seen.push_back(c->allotment());
  }
  EXPECT_EQ(seen[0], 2 * kBaseCredits);
  EXPECT_EQ(seen[1], 4 * kBaseCredits);
  EXPECT_EQ(seen.back(), kMaxConnCredits);
  EXPECT_EQ(c->peer_credits(), kMaxConnCredits);
  EXPECT_EQ(srq.pool.grown, kMaxConnCredits - kBaseCredits);
}

// A peer that pushes as fast as its credits allow, to a receiver that pops
// each message on arrival; `delay` passes on the wire each way.
struct Stream {
  explicit Stream(int delay) : delay(delay) {
    srq.pool.spare = kSpareReceives;
    c = Open(srq);
    sender = c->peer_credits();
  }
  void Return(int now) {
    wire_back.push_back({now + delay, c->TakeReturn()});
    ++credit_messages;
  }
  // One pass of each side: the sender posts up to `send` pushes, the
  // receiver handles up to `take` arrivals.
  void Pass(int now, int send, int take) {
    while (!wire_back.empty() && wire_back.front().first <= now) {
      sender += wire_back.front().second;
      wire_back.pop_front();
    }
    // As Connection: data keeps a credit in reserve, and a push sent with
    // at most two left says the pushes queued behind it are starved.
    for (int i = 0; i < send && sender >= 2; ++i) {
      wire.push_back({now + delay, sender <= 2});
      --sender;
      ++data_messages;
    }
    for (int i = 0; i < take && !wire.empty() && wire.front().first <= now;
         ++i) {
      ASSERT_TRUE(srq.Arrive(*c, wire.front().second));
      wire.pop_front();
      c->OnConsumed();
      srq.Refill();
      c->Back();
      if (c->ReturnNow()) Return(now);
    }
    if (c->ReturnSoon()) Return(now);  // The progress engine's next pass.
    srq.CheckInvariant();
  }

  int delay;
  Srq srq;
  std::unique_ptr<ConnectionCredits> c;
  uint32_t sender;  // The credits the peer holds, by its own count.
  std::deque<std::pair<int, bool>> wire;  // Arrival pass, starved flag.
  std::deque<std::pair<int, uint16_t>> wire_back;  // Arrival pass, credits.
  int data_messages = 0;
  int credit_messages = 0;
};

TEST(CreditsTest, AStreamingPeerGetsItsCreditsBackInFewMessages) {
  // Within a round trip that the largest allotment covers.
  for (int delay : {1, 2, 4}) {
    SCOPED_TRACE(testing::Message() << "delay " << delay);
    // A sender faster than its receiver is starved again and again: its
    // allotment grows to the maximum and stays there, and every credit
    // message returns half of it.
    Stream fast(delay);
    int now = 0;
    while (fast.data_messages < 20000) fast.Pass(now++, /*send=*/8, /*take=*/4);
    EXPECT_EQ(fast.c->allotment(), kMaxConnCredits);
    EXPECT_LE(fast.credit_messages * (kMaxConnCredits / 2),
              fast.data_messages + 64 * 8);
    // A slower one keeps what it needs not to stall, and its credits still
    // come back in few messages: each one is a packet the device carries.
    Stream slow(delay);
    now = 0;
    while (slow.data_messages < 20000) slow.Pass(now++, /*send=*/4, /*take=*/8);
    EXPECT_GE(slow.data_messages, 4 * now * 95 / 100) << "passes " << now;
    EXPECT_LE(slow.credit_messages * 8, slow.data_messages);
  }
}

TEST(CreditsTest, GrowthStopsAtTheDeviceBudget) {
  Srq srq(/*capacity=*/1024, /*growth_limit=*/10);
  auto a = Open(srq);
  auto b = Open(srq);
  for (int round = 0; round < 4; ++round) {
    for (ConnectionCredits* c : {a.get(), b.get()}) {
      ASSERT_TRUE(srq.Arrive(*c, /*starved=*/true));
      c->OnConsumed();
    }
    srq.Refill();
    a->Back();
    b->Back();
    a->TakeReturn();
    b->TakeReturn();
  }
  EXPECT_EQ(srq.pool.grown, 10u);
  EXPECT_EQ(a->allotment() + b->allotment(), 2 * kBaseCredits + 10);
  srq.CheckInvariant();
}

TEST(CreditsTest, AnAllotmentThePeerLeavesUnusedShrinksBackToTheBase) {
  Srq srq;
  auto c = Open(srq);
  ASSERT_TRUE(srq.Arrive(*c, /*starved=*/true));
  c->OnConsumed();
  srq.Refill();
  c->Back();
  c->TakeReturn();
  ASSERT_EQ(c->allotment(), 2 * kBaseCredits);
  // Now one message at a time, each popped before the next (ping-pong).
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(srq.Arrive(*c));
    c->OnConsumed();
    srq.Refill();
    c->Back();
    c->TakeReturn();
  }
  EXPECT_EQ(c->allotment(), kBaseCredits);
  EXPECT_EQ(srq.pool.grown, 0u);
  srq.CheckInvariant();
}

TEST(CreditsTest, BuffersAFlooderTookLeaveNoHeadroom) {
  Srq srq;
  auto honest = Open(srq);
  auto flooder = Open(srq);
  ASSERT_TRUE(srq.Arrive(*honest));
  honest->OnConsumed();
  // The flooder's messages beyond its credits take posted buffers that
  // were promised to others (its connection is aborted a pass later).
  srq.pool.posted -= 3;
  ASSERT_LT(srq.pool.posted, srq.pool.promised);
  EXPECT_EQ(srq.pool.headroom(), 0u);
  EXPECT_TRUE(honest->Back()) << "no credit may go back unbacked";
  EXPECT_EQ(honest->owed(), 0u);
  srq.Refill();
  EXPECT_FALSE(honest->Back());
  EXPECT_EQ(honest->owed(), 1u);
  srq.CheckInvariant();
}

TEST(CreditsTest, TheSrqHoldsSparesUpToItsCapacity) {
  CreditPool pool;
  pool.capacity = 100;
  pool.allotted = 60;
  pool.spare = 32;
  EXPECT_EQ(pool.deficit(), 92u);
  pool.posted = 90;
  EXPECT_EQ(pool.deficit(), 2u);
  pool.allotted = 90;  // Spares stop at the capacity.
  EXPECT_EQ(pool.deficit(), 10u);
  pool.posted = 100;
  EXPECT_EQ(pool.deficit(), 0u);
  pool.allotted = 10;  // Allotments given back leave more posted.
  EXPECT_EQ(pool.deficit(), 0u);
}

TEST(CreditsTest, ClosingGivesEverythingBack) {
  Srq srq;
  auto a = Open(srq);
  auto b = Open(srq);
  ASSERT_TRUE(srq.Arrive(*a, /*starved=*/true));
  a->OnConsumed();
  srq.Refill();
  a->Back();
  a.reset();
  EXPECT_EQ(srq.pool.allotted, kBaseCredits);
  EXPECT_EQ(srq.pool.promised, kBaseCredits);
  EXPECT_EQ(srq.pool.grown, 0u);
  b->Close();
  b->Close();
  EXPECT_EQ(srq.pool.allotted, 0u);
  EXPECT_EQ(srq.pool.promised, 0u);
}

}  // namespace
}  // namespace demi
