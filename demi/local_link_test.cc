// A host whose own link goes down (two VMs on the test bed). Host 1
// connects, says hello, waits in a pop and takes its netdev down, then
// pushes: rxe cannot transmit and completes the send with
// IBV_WC_LOC_QP_OP_ERR. The pending pop and the push must fail as a failed
// connection does (ECONNRESET or ETIMEDOUT), never with EINVAL, which the
// application would read as a bad argument of its own (found by the soak,
// tools/soak.sh). Host 0 only pops; its peer stops answering. The same
// binary runs on both; DEMI_TEST_HOST picks. Only between the project's
// VMs: rxe in their kernel never connects over the netdev again.
#include <demi/libos.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "testing/demi_helpers.h"
#include "testing/rdma_env.h"

namespace {

using demi::testing::PopString;
using demi::testing::PushString;
using demi::testing::Scaled;
using demi::testing::WaitOrFail;

constexpr uint16_t kPort = 18610;

// The netdev holding this host's address goes down.
int TakeOwnLinkDown() {
  const char* addr = std::getenv("DEMI_TEST_ADDR");
  if (addr == nullptr) return -1;
  std::string command =
      absl::StrCat("ip link set \"$(ip -o -4 addr show | awk -v a=", addr,
                   " 'index($4, a \"/\") == 1 { print $2 }')\" down");
  return std::system(command.c_str());
}

bool FailedLikeAConnection(const demi_qresult_t& qr) {
  return qr.qr_opcode == DEMI_OPC_FAILED &&
         (qr.qr_ret == ECONNRESET || qr.qr_ret == ETIMEDOUT);
}

TEST(LocalLinkTest, OwnLinkDownFailsPendingOperationsAsAFailedConnection) {
  ASSERT_EQ(demi::testing::TestHosts(), 2) << "run with two hosts";
  const char* vm = std::getenv("DEMI_TEST_VM");
  ASSERT_TRUE(vm != nullptr && std::string(vm) == "1")
      << "takes its link down: only in the project's VMs";
  ASSERT_EQ(demi_init(nullptr), 0);
  if (demi::testing::TestHost() == 1) {
    int qd = demi::testing::ConnectToServerOrFail(kPort);
    ASSERT_GE(qd, 0);
    EXPECT_EQ(WaitOrFail(PushString(qd, "hello")).qr_opcode, DEMI_OPC_PUSH);
    demi_qtoken_t pop = 0;
    ASSERT_EQ(demi_pop(&pop, qd), 0);
    ASSERT_EQ(TakeOwnLinkDown(), 0);
    demi_qtoken_t push = PushString(qd, std::string(1000, 'x'));
    demi_qresult_t pushed = WaitOrFail(push, Scaled(absl::Seconds(60)));
    EXPECT_TRUE(FailedLikeAConnection(pushed))
        << "push: opcode " << pushed.qr_opcode << ", qr_ret " << pushed.qr_ret;
    demi_qresult_t popped = WaitOrFail(pop, Scaled(absl::Seconds(60)));
    EXPECT_TRUE(FailedLikeAConnection(popped))
        << "pop: opcode " << popped.qr_opcode << ", qr_ret " << popped.qr_ret;
    EXPECT_EQ(demi_close(qd), 0);
    return;
  }
  absl::StatusOr<sockaddr_in> addr = demi::testing::TestAddr(kPort);
  ASSERT_TRUE(addr.ok());
  int listener = -1;
  ASSERT_EQ(demi_socket(&listener, AF_INET, SOCK_STREAM, 0), 0);
  ASSERT_EQ(
      demi_bind(listener, reinterpret_cast<sockaddr*>(&*addr), sizeof(*addr)),
      0);
  ASSERT_EQ(demi_listen(listener, 4), 0);
  demi_qtoken_t qt = 0;
  ASSERT_EQ(demi_accept(&qt, listener), 0);
  demi_qresult_t accepted = WaitOrFail(qt, absl::Seconds(120));
  ASSERT_EQ(accepted.qr_opcode, DEMI_OPC_ACCEPT);
  int qd = accepted.qr_value.ares.qd;
  EXPECT_EQ(PopString(qd), "hello");
  ASSERT_EQ(demi_pop(&qt, qd), 0);
  demi_qresult_t qr = WaitOrFail(qt, Scaled(absl::Seconds(60)));
  EXPECT_TRUE(FailedLikeAConnection(qr))
      << "pop: opcode " << qr.qr_opcode << ", qr_ret " << qr.qr_ret;
  EXPECT_EQ(demi_close(qd), 0);
  EXPECT_EQ(demi_close(listener), 0);
}

}  // namespace
