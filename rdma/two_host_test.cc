// An RC connection between two hosts (two VMs on the test bed): host 0
// accepts and echoes one message, host 1 connects, sends and checks the
// echo byte for byte. The same binary runs on both; DEMI_TEST_HOST picks.
#include <cstring>

#include "gtest/gtest.h"
#include "rdma/cm_connection.h"
#include "testing/rc_peer.h"
#include "testing/rdma_env.h"
#include "testing/status_matchers.h"

namespace demi::rdma {
namespace {

using demi::testing::Scaled;

constexpr uint16_t kPort = 18515;
constexpr size_t kLength = 8192;

TEST(TwoHostTest, EchoAcrossHosts) {
  ASSERT_EQ(demi::testing::TestHosts(), 2) << "run with two hosts";
  absl::Duration timeout = Scaled(absl::Seconds(120));
  if (demi::testing::TestHost() == 0) {
    ASSERT_OK_AND_ASSIGN(sockaddr_in addr, demi::testing::TestAddr(kPort));
    ASSERT_OK_AND_ASSIGN(auto listener, demi::testing::ListenRc(addr));
    ASSERT_OK_AND_ASSIGN(auto server,
                         demi::testing::AcceptRc(*listener, "", timeout));
    ASSERT_OK_AND_ASSIGN(ibv_wc recv, demi::testing::PollOne(*server, timeout));
    ASSERT_EQ(recv.status, IBV_WC_SUCCESS);
    ASSERT_EQ(recv.byte_len, kLength);
    ASSERT_OK(demi::testing::PostSend(*server, 0, recv.byte_len));
    ASSERT_OK_AND_ASSIGN(ibv_wc sent, demi::testing::PollOne(*server, timeout));
    EXPECT_EQ(sent.status, IBV_WC_SUCCESS);
    return;
  }
  ASSERT_OK_AND_ASSIGN(sockaddr_in server_addr,
                       demi::testing::ServerAddr(kPort));
  ASSERT_OK_AND_ASSIGN(auto client,
                       demi::testing::ConnectRc(server_addr, "", timeout));
  // The receive posted at connect time sits at offset 0; send from the
  // second half so the echo does not land on the original.
  for (size_t i = 0; i < kLength; ++i) {
    client->buffer[kLength + i] = static_cast<std::byte>(i % 251);
  }
  ASSERT_OK(demi::testing::PostSend(*client, kLength, kLength));
  for (int completions = 0; completions < 2; ++completions) {
    ASSERT_OK_AND_ASSIGN(ibv_wc wc, demi::testing::PollOne(*client, timeout));
    ASSERT_EQ(wc.status, IBV_WC_SUCCESS);
    if (wc.opcode == IBV_WC_RECV) {
      EXPECT_EQ(wc.byte_len, kLength);
    }
  }
  EXPECT_EQ(std::memcmp(client->buffer.data(), client->buffer.data() + kLength,
                        kLength),
            0);
}

}  // namespace
}  // namespace demi::rdma
