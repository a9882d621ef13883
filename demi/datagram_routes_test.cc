// The route cache of a datagram socket on an RDMA device, against a raw
// UD peer (testing/ud_peer) that answers its resolutions: what a
// destination claimed by another QP does to the sends that follow.
#include "demi/datagram_routes.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "demi/datagram_wire.h"
#include "gtest/gtest.h"
#include "rdma/cm_event.h"
#include "rdma/verbs_ptr.h"
#include "testing/rdma_env.h"
#include "testing/ud_peer.h"

namespace demi {
namespace {

constexpr size_t kCapacity = 8;

uint16_t PortForTest(int n) {
  // Below the kernel's ephemeral ports, apart from the library tests'.
  return static_cast<uint16_t>(31000 + (getpid() % 80) * 20 + n);
}

sockaddr_in Addr(uint16_t port) {
  absl::StatusOr<sockaddr_in> addr = testing::TestAddr(port);
  EXPECT_TRUE(addr.ok()) << addr.status();
  return addr.value_or(sockaddr_in{});
}

class DatagramRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dest_ = Addr(PortForTest(0));
    absl::StatusOr<std::unique_ptr<testing::UdPeer>> peer =
        testing::ListenUd(dest_, "");
    ASSERT_TRUE(peer.ok()) << peer.status();
    peer_ = std::move(peer).value();
    absl::StatusOr<rdma::EventChannelPtr> channel =
        rdma::CreateEventChannel(/*nonblocking=*/true);
    ASSERT_TRUE(channel.ok()) << channel.status();
    channel_ = std::move(channel).value();
    // The peer's PD: the same device, as the test address is one.
    routes_ = std::make_unique<DatagramRoutes>(
        channel_.get(), nullptr, peer_->pd.get(), Addr(0), kCapacity);
  }

  // Handles the cache's rdma_cm events until one gives an outcome.
  absl::optional<DatagramRoutes::Outcome> NextOutcome() {
    absl::Time give_up = absl::Now() + testing::Scaled(absl::Seconds(20));
    while (absl::Now() < give_up) {
      absl::StatusOr<absl::optional<rdma::CmEvent>> event =
          rdma::PollCmEvent(channel_.get());
      EXPECT_TRUE(event.ok()) << event.status();
      if (!event.ok()) return absl::nullopt;
      if (!event->has_value()) {
        absl::SleepFor(absl::Milliseconds(1));
        continue;
      }
      bool request_sent = (*event)->type == RDMA_CM_EVENT_ROUTE_RESOLVED;
      absl::optional<DatagramRoutes::Outcome> outcome =
          routes_->OnCmEvent(**event);
      if (outcome.has_value()) return outcome;
      // The SIDR request goes out: the peer answers it.
      if (request_sent) {
        absl::Status answered =
            testing::AnswerUd(*peer_, testing::Scaled(absl::Seconds(20)));
        EXPECT_TRUE(answered.ok()) << answered;
      }
    }
    ADD_FAILURE() << "no outcome";
    return absl::nullopt;
  }

  // Resolves dest_ from nothing: its route.
  const Route* Resolve() {
    absl::StatusOr<const Route*> started = routes_->Find(dest_);
    EXPECT_TRUE(started.ok()) << started.status();
    EXPECT_EQ(started.value_or(nullptr), nullptr);
    return Resolved();
  }
  // The route to dest_ once the resolution under way has succeeded.
  const Route* Resolved() {
    absl::optional<DatagramRoutes::Outcome> outcome = NextOutcome();
    if (!outcome.has_value()) return nullptr;
    EXPECT_EQ(outcome->key, RouteKey(dest_));
    EXPECT_EQ(outcome->error, 0);
    return routes_->Known(dest_);
  }

  sockaddr_in dest_ = {};
  std::unique_ptr<testing::UdPeer> peer_;
  rdma::EventChannelPtr channel_;
  std::unique_ptr<DatagramRoutes> routes_;
};

TEST_F(DatagramRoutesTest, ResolvesToThePeersQp) {
  const Route* route = Resolve();
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(route->qpn, peer_->qp->qp->qp_num);
  EXPECT_NE(route->ah, nullptr);
  EXPECT_TRUE(routes_->Seen(dest_, route->qpn));
}

// What the peer's SIDR reply says comes with the route: whether it takes
// compact datagrams, and its MTU (none from an older socket).
TEST_F(DatagramRoutesTest, TheRouteKeepsWhatThePeersReplySays) {
  peer_->reply_data = EncodeSidrReply(/*compact=*/true, 256);
  const Route* route = Resolve();
  ASSERT_NE(route, nullptr);
  EXPECT_TRUE(route->compact);
  EXPECT_EQ(route->mtu, 256u);
}

TEST_F(DatagramRoutesTest, AnOlderPeersRouteSaysNoMtu) {
  peer_->reply_data.assign(reinterpret_cast<const char*>(kCompactCapability),
                           sizeof(kCompactCapability));
  const Route* route = Resolve();
  ASSERT_NE(route, nullptr);
  EXPECT_TRUE(route->compact);
  EXPECT_EQ(route->mtu, 0u);
}

// Another QP claims the destination while a send to it is out: until that
// send completes and the destination is resolved again, new sends must
// not take the old route, or a sender that always has one out would never
// let it drain (and would send to a QP that is gone, for good).
TEST_F(DatagramRoutesTest, ADestinationClaimedByAnotherQpTakesNoNewSends) {
  const Route* route = Resolve();
  ASSERT_NE(route, nullptr);
  uint32_t known_qpn = route->qpn;
  uint64_t key = RouteKey(dest_);
  routes_->Hold(key);  // A send is out.
  EXPECT_FALSE(routes_->Seen(dest_, known_qpn + 1));
  EXPECT_TRUE(routes_->waiting_to_resolve());
  EXPECT_EQ(routes_->Known(dest_), nullptr);
  absl::StatusOr<const Route*> found = routes_->Find(dest_);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(*found, nullptr);
  // The send out keeps its route, and the QP known speaks for the
  // destination meanwhile.
  const Route* held = routes_->Held(key);
  ASSERT_NE(held, nullptr);
  EXPECT_EQ(held->qpn, known_qpn);
  EXPECT_TRUE(routes_->Seen(dest_, known_qpn));
  // The send completes: resolved again, and usable once the answer comes.
  routes_->Release(key);
  routes_->ResolveDrained();
  EXPECT_FALSE(routes_->waiting_to_resolve());
  EXPECT_TRUE(routes_->resolving());
  EXPECT_EQ(routes_->Known(dest_), nullptr);
  const Route* again = Resolved();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->qpn, peer_->qp->qp->qp_num);
}

// Claimed with no send out: resolved again at once.
TEST_F(DatagramRoutesTest, AClaimWithNoSendOutResolvesAgainAtOnce) {
  const Route* route = Resolve();
  ASSERT_NE(route, nullptr);
  EXPECT_FALSE(routes_->Seen(dest_, route->qpn + 1));
  EXPECT_FALSE(routes_->waiting_to_resolve());
  EXPECT_TRUE(routes_->resolving());
  EXPECT_EQ(routes_->Known(dest_), nullptr);
  EXPECT_NE(Resolved(), nullptr);
}

// An event no resolution step expects (the device went away): the
// destination fails, rather than stay "being resolved" for good.
TEST_F(DatagramRoutesTest, AnUnexpectedResolverEventFailsTheDestination) {
  absl::StatusOr<const Route*> started = routes_->Find(dest_);
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(*started, nullptr);
  absl::Time give_up = absl::Now() + testing::Scaled(absl::Seconds(20));
  absl::optional<rdma::CmEvent> first;
  while (!first.has_value() && absl::Now() < give_up) {
    absl::StatusOr<absl::optional<rdma::CmEvent>> event =
        rdma::PollCmEvent(channel_.get());
    ASSERT_TRUE(event.ok()) << event.status();
    if (event->has_value()) first = **event;
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_TRUE(first.has_value());
  // In its place, about the same resolver id.
  rdma::CmEvent removal;
  removal.type = RDMA_CM_EVENT_DEVICE_REMOVAL;
  removal.id = first->id;
  absl::optional<DatagramRoutes::Outcome> outcome = routes_->OnCmEvent(removal);
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->key, RouteKey(dest_));
  EXPECT_EQ(outcome->error, EHOSTUNREACH);
  EXPECT_FALSE(routes_->resolving());
  EXPECT_EQ(routes_->size(), 0u);
  // The next send tries again.
  EXPECT_NE(Resolve(), nullptr);
}

}  // namespace
}  // namespace demi
