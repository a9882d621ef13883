#include "demi/queue_table.h"

#include <cerrno>
#include <climits>

#include "gtest/gtest.h"
#include "rdma/status_util.h"

namespace demi {
namespace {

TEST(QueueTableTest, AddedQueuesAreOpenUnderFreshQds) {
  QueueTable table;
  Queue* socket = table.Add<SocketState>();
  Queue* datagram = table.Add<DatagramState>();
  EXPECT_GT(socket->qd, 0);
  EXPECT_NE(socket->qd, datagram->qd);
  EXPECT_EQ(socket->kind(), Queue::Kind::kSocket);
  EXPECT_EQ(datagram->kind(), Queue::Kind::kDatagram);
  EXPECT_EQ(table.Open(socket->qd), socket);
  EXPECT_EQ(table.Open(datagram->qd), datagram);
  EXPECT_EQ(table.Open(socket->qd), socket);
}

TEST(QueueTableTest, QdsNamingNoQueueAreEbadfEvenRightAfterAHit) {
  QueueTable table;
  // Nothing remembered yet: found_qd_ starts at 0, which is no qd.
  EXPECT_EQ(table.Open(0), nullptr);
  Queue* queue = table.Add<SocketState>();
  for (int qd : {-1, 0, INT_MIN, INT_MAX, queue->qd + 1000}) {
    ASSERT_EQ(table.Open(queue->qd), queue);  // Remembered now.
    EXPECT_EQ(table.Open(qd), nullptr) << qd;
    absl::StatusOr<Queue*> found = table.Find(qd);
    EXPECT_EQ(rdma::ErrnoOf(found.status()), EBADF) << qd;
  }
}

TEST(QueueTableTest, ClosedAndUnclaimedQueuesAreNotOpenButStillThere) {
  QueueTable table;
  Queue* closed = table.Add<ConnectionState>();
  Queue* unclaimed = table.Add<ConnectionState>();
  ASSERT_EQ(table.Open(closed->qd), closed);
  closed->closed = true;
  unclaimed->unclaimed = true;
  // The remembered queue too: the check follows the cache.
  EXPECT_EQ(table.Open(closed->qd), nullptr);
  EXPECT_EQ(table.Open(unclaimed->qd), nullptr);
  EXPECT_EQ(rdma::ErrnoOf(table.Find(closed->qd).status()), EBADF);
  EXPECT_EQ(table.Get(closed->qd), closed);
  EXPECT_EQ(table.Get(unclaimed->qd), unclaimed);
  unclaimed->unclaimed = false;
  EXPECT_EQ(table.Open(unclaimed->qd), unclaimed);
}

TEST(QueueTableTest, AnErasedQdIsForgottenAtOnce) {
  QueueTable table;
  Queue* queue = table.Add<SocketState>();
  int qd = queue->qd;
  ASSERT_EQ(table.Open(qd), queue);
  table.Erase(qd);
  EXPECT_EQ(table.Open(qd), nullptr);
  EXPECT_EQ(table.Get(qd), nullptr);
  table.Erase(qd);  // Twice: nothing.
  Queue* other = table.Add<SocketState>();
  EXPECT_NE(other->qd, qd);  // The counter goes on before it reuses.
  EXPECT_EQ(table.Open(other->qd), other);
}

TEST(QueueTableTest, ClearForgetsEveryQueue) {
  QueueTable table;
  Queue* a = table.Add<SocketState>();
  int a_qd = a->qd;
  int b_qd = table.Add<ListenerState>()->qd;
  ASSERT_EQ(table.Open(a_qd), a);
  table.Clear();
  EXPECT_EQ(table.Open(a_qd), nullptr);
  EXPECT_EQ(table.Get(b_qd), nullptr);
  int count = 0;
  table.ForEach([&](Queue&) { ++count; });
  EXPECT_EQ(count, 0);
}

TEST(QueueTableTest, AQueueChangesKindInPlace) {
  QueueTable table;
  Queue* queue = table.Add<SocketState>();
  EXPECT_EQ(queue->connection(), nullptr);
  EXPECT_EQ(queue->conn(), nullptr);
  queue->state.emplace<ConnectionState>().connect_qt = 7;
  ASSERT_NE(queue->connection(), nullptr);
  EXPECT_EQ(queue->kind(), Queue::Kind::kConnection);
  // No Connection yet (route not resolved): not connected.
  EXPECT_EQ(queue->connected(), nullptr);
  EXPECT_EQ(queue->listener(), nullptr);
  EXPECT_EQ(queue->dgram(), nullptr);
  queue->state.emplace<SocketState>();
  EXPECT_EQ(queue->kind(), Queue::Kind::kSocket);
  EXPECT_EQ(table.Open(queue->qd), queue);
}

}  // namespace
}  // namespace demi
