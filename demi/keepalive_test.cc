// Keepalive between two hosts (two VMs on the test bed). Host 1 connects,
// stays idle for longer than the keepalive interval (a live idle peer must
// not be failed), says goodbye and then vanishes: it powers its VM off, so
// no disconnect ever reaches host 0. Host 0 only pops; its pop must fail
// with ETIMEDOUT within 10 s of the goodbye. The same binary runs on both;
// DEMI_TEST_HOST picks.
#include <demi/libos.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "testing/demi_helpers.h"
#include "testing/rdma_env.h"

namespace {

using demi::testing::PopString;
using demi::testing::PushString;
using demi::testing::Scaled;
using demi::testing::WaitOrFail;

constexpr uint16_t kPort = 18600;
// The default interval is 3 s; idle for longer than two of them.
constexpr absl::Duration kIdle = absl::Seconds(7);

// Records success for run_vm.sh, then powers this VM off at once: to the
// other host, this one simply stops answering.
[[noreturn]] void Vanish() {
  const char* results = std::getenv("DEMI_TEST_RESULTS");
  if (results != nullptr) {
    std::string rc = std::string(results) + "/rc";
    if (FILE* f = std::fopen(rc.c_str(), "w")) {
      std::fputs("0\n", f);
      std::fclose(f);
    }
  }
  std::fflush(nullptr);
  sync();
  int fd = open("/proc/sysrq-trigger", O_WRONLY);
  if (fd >= 0 && write(fd, "o", 1) == 1) absl::SleepFor(absl::Seconds(60));
  std::fprintf(stderr, "could not power off\n");
  std::_Exit(1);
}

TEST(KeepaliveTest, VanishedPeerFailsAWaitingPopWithinTenSeconds) {
  ASSERT_EQ(demi::testing::TestHosts(), 2) << "run with two hosts";
  ASSERT_EQ(demi_init(nullptr), 0);
  if (demi::testing::TestHost() == 1) {
    int qd = demi::testing::ConnectToServerOrFail(kPort);
    ASSERT_GE(qd, 0);
    EXPECT_EQ(WaitOrFail(PushString(qd, "hello")).qr_opcode, DEMI_OPC_PUSH);
    // Idle, but alive: the server's probes are answered by our device.
    absl::SleepFor(kIdle);
    EXPECT_EQ(WaitOrFail(PushString(qd, "bye")).qr_opcode, DEMI_OPC_PUSH);
    ASSERT_FALSE(::testing::Test::HasFailure());
    Vanish();
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
  EXPECT_EQ(PopString(qd), "bye");  // Through the idle time, not failed.
  absl::Time bye = absl::Now();
  ASSERT_EQ(demi_pop(&qt, qd), 0);
  demi_qresult_t qr = WaitOrFail(qt, absl::Seconds(120));
  absl::Duration detection = absl::Now() - bye;
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, ETIMEDOUT);
  std::printf("keepalive: vanished peer detected after %.2f s\n",
              absl::ToDoubleSeconds(detection));
  EXPECT_LE(detection, Scaled(absl::Seconds(10)));
  EXPECT_EQ(demi_close(qd), 0);
  EXPECT_EQ(demi_close(listener), 0);
}

}  // namespace
