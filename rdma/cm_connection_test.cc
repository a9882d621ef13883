// Two RC endpoints in one process, connected through rdma_cm on the test
// device: private data, SEND/RECV, RDMA READ and disconnect flushes.
#include "rdma/cm_connection.h"

#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "rdma/cm_event.h"
#include "rdma/status_util.h"
#include "rdma/wc_status.h"
#include "testing/rc_peer.h"
#include "testing/rdma_env.h"
#include "testing/status_matchers.h"

namespace demi::rdma {
namespace {

using demi::testing::RcPeer;
using demi::testing::Scaled;

void FillPattern(RcPeer& peer, size_t length, uint8_t seed) {
  for (size_t i = 0; i < length; ++i) {
    peer.buffer[i] = static_cast<std::byte>((i * 7 + seed) & 0xff);
  }
}

bool HasPattern(const RcPeer& peer, size_t offset, size_t length,
                uint8_t seed) {
  for (size_t i = 0; i < length; ++i) {
    if (peer.buffer[offset + i] !=
        static_cast<std::byte>((i * 7 + seed) & 0xff)) {
      return false;
    }
  }
  return true;
}

class CmConnectionTest : public ::testing::Test {
 protected:
  // Connects client_ to server_; the server's private data carries the
  // address and rkey of its buffer.
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(sockaddr_in addr, demi::testing::TestAddr(0));
    ASSERT_OK_AND_ASSIGN(listener_, demi::testing::ListenRc(addr));
    addr.sin_port = rdma_get_src_port(listener_->id.get());
    ASSERT_NE(addr.sin_port, 0);
    absl::StatusOr<std::unique_ptr<RcPeer>> accepted;
    std::thread server([&] {
      accepted = demi::testing::AcceptRc(*listener_, "server-hello",
                                         Scaled(absl::Seconds(30)));
    });
    auto connected = demi::testing::ConnectRc(addr, "client-hello",
                                              Scaled(absl::Seconds(30)));
    server.join();
    ASSERT_OK(connected.status());
    ASSERT_OK(accepted.status());
    client_ = std::move(connected).value();
    server_ = std::move(accepted).value();
  }

  std::unique_ptr<RcPeer> listener_;
  std::unique_ptr<RcPeer> server_;
  std::unique_ptr<RcPeer> client_;
};

TEST_F(CmConnectionTest, PrivateDataTravelsBothWays) {
  // The transport may pad private data; the prefix is what was sent.
  EXPECT_EQ(server_->peer_private_data.substr(0, 12), "client-hello");
  EXPECT_EQ(client_->peer_private_data.substr(0, 12), "server-hello");
}

TEST_F(CmConnectionTest, SendArrivesWithExactBytes) {
  constexpr size_t kLength = 4096 + 17;
  FillPattern(*client_, kLength, 3);
  ASSERT_OK(demi::testing::PostSend(*client_, 0, kLength));
  ASSERT_OK_AND_ASSIGN(
      ibv_wc send_wc,
      demi::testing::PollOne(*client_, Scaled(absl::Seconds(10))));
  EXPECT_EQ(send_wc.status, IBV_WC_SUCCESS);
  EXPECT_EQ(send_wc.opcode, IBV_WC_SEND);
  ASSERT_OK_AND_ASSIGN(
      ibv_wc recv_wc,
      demi::testing::PollOne(*server_, Scaled(absl::Seconds(10))));
  EXPECT_EQ(recv_wc.status, IBV_WC_SUCCESS);
  EXPECT_EQ(recv_wc.opcode, IBV_WC_RECV);
  EXPECT_EQ(recv_wc.byte_len, kLength);
  EXPECT_EQ(recv_wc.qp_num, server_->qp->qp->qp_num);
  EXPECT_TRUE(HasPattern(*server_, 0, kLength, 3));
}

TEST_F(CmConnectionTest, RdmaReadPullsTheRemoteBuffer) {
  constexpr size_t kLength = 32 * 1024;
  FillPattern(*server_, kLength, 11);
  ASSERT_OK(demi::testing::PostRead(
      *client_, 0, kLength, reinterpret_cast<uintptr_t>(server_->buffer.data()),
      server_->mr->rkey));
  ASSERT_OK_AND_ASSIGN(
      ibv_wc wc, demi::testing::PollOne(*client_, Scaled(absl::Seconds(10))));
  EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
  EXPECT_EQ(wc.opcode, IBV_WC_RDMA_READ);
  EXPECT_TRUE(HasPattern(*client_, 0, kLength, 11));
}

TEST_F(CmConnectionTest, ReadWithWrongRkeyFailsWithRemoteAccessError) {
  ASSERT_OK(demi::testing::PostRead(
      *client_, 0, 64, reinterpret_cast<uintptr_t>(server_->buffer.data()),
      server_->mr->rkey + 1));
  ASSERT_OK_AND_ASSIGN(
      ibv_wc wc, demi::testing::PollOne(*client_, Scaled(absl::Seconds(10))));
  EXPECT_EQ(wc.status, IBV_WC_REM_ACCESS_ERR);
  EXPECT_EQ(WcStatusToErrno(wc.status), EFAULT);
}

TEST_F(CmConnectionTest, DisconnectReachesThePeerAndFlushesItsReceives) {
  ASSERT_OK(Disconnect(client_->id.get()));
  ASSERT_OK_AND_ASSIGN(CmEvent event, WaitCmEvent(server_->channel.get(),
                                                  Scaled(absl::Seconds(10))));
  EXPECT_EQ(event.type, RDMA_CM_EVENT_DISCONNECTED);
  // librdmacm moves a QP to the error state only in rdma_disconnect, so the
  // passive side answers the event with its own disconnect; that flushes
  // the receive it posted at accept time.
  ASSERT_OK(Disconnect(server_->id.get()));
  ASSERT_OK_AND_ASSIGN(
      ibv_wc wc, demi::testing::PollOne(*server_, Scaled(absl::Seconds(10))));
  EXPECT_EQ(wc.status, IBV_WC_WR_FLUSH_ERR);
  EXPECT_EQ(WcStatusToErrno(wc.status), ECONNRESET);
}

TEST(CmConnectionErrorsTest, PrivateDataBeyondTheLimitIsEinval) {
  ASSERT_OK_AND_ASSIGN(sockaddr_in addr, demi::testing::TestAddr(0));
  ASSERT_OK_AND_ASSIGN(auto listener, demi::testing::ListenRc(addr));
  std::string too_long(kMaxPrivateData + 1, 'x');
  EXPECT_EQ(ErrnoOf(Connect(listener->id.get(), too_long, 1)), EINVAL);
}

TEST(CmConnectionErrorsTest, ListeningTwiceOnOnePortIsEaddrinuse) {
  ASSERT_OK_AND_ASSIGN(sockaddr_in addr, demi::testing::TestAddr(0));
  ASSERT_OK_AND_ASSIGN(auto first, demi::testing::ListenRc(addr));
  addr.sin_port = rdma_get_src_port(first->id.get());
  absl::StatusOr<std::unique_ptr<RcPeer>> second =
      demi::testing::ListenRc(addr);
  EXPECT_EQ(ErrnoOf(second.status()), EADDRINUSE);
}

}  // namespace
}  // namespace demi::rdma
