#include "testing/demi_helpers.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "testing/rdma_env.h"

namespace demi::testing {

const sockaddr* Sa(const sockaddr_in& addr) {
  return reinterpret_cast<const sockaddr*>(&addr);
}

timespec Ms(int ms) { return absl::ToTimespec(absl::Milliseconds(ms)); }

void DemiInitEnvironment::SetUp() {
  if (pool_limit_mb_ > 0) {
    setenv("DEMI_POOL_LIMIT_MB", std::to_string(pool_limit_mb_).c_str(), 1);
  }
  ASSERT_EQ(demi_init(nullptr), 0);
}

uint16_t NextPort() {
  // Below 32768, where the kernel (and so rdma_cm) picks ephemeral ports
  // for connecting ids: a listener there could find its port taken.
  // Atomic: threads of one test take ports too.
  static std::atomic<uint16_t> next{
      static_cast<uint16_t>(20000 + (getpid() % 120) * 100)};
  return next.fetch_add(1);
}

sockaddr_in AddrOrDie(uint16_t port) {
  absl::StatusOr<sockaddr_in> addr = TestAddr(port);
  if (!addr.ok()) {
    std::fprintf(stderr, "%s\n", addr.status().ToString().c_str());
    std::abort();
  }
  return *addr;
}

demi_qresult_t WaitOrFail(demi_qtoken_t qt, absl::Duration timeout) {
  demi_qresult_t qr;
  std::memset(&qr, 0, sizeof(qr));
  timespec ts = absl::ToTimespec(Scaled(timeout));
  int err = demi_wait(&qr, qt, &ts);
  EXPECT_EQ(err, 0) << "demi_wait: " << std::strerror(err);
  if (err != 0) std::memset(&qr, 0, sizeof(qr));
  return qr;
}

bool MakePair(DemiPair* pair) {
  sockaddr_in addr = AddrOrDie(NextPort());
  const sockaddr* sa = reinterpret_cast<const sockaddr*>(&addr);
  int err = demi_socket(&pair->listener, AF_INET, SOCK_STREAM, 0);
  if (err == 0) err = demi_bind(pair->listener, sa, sizeof(addr));
  if (err == 0) err = demi_listen(pair->listener, 16);
  if (err == 0) err = demi_socket(&pair->client, AF_INET, SOCK_STREAM, 0);
  EXPECT_EQ(err, 0) << "socket/bind/listen on port " << ntohs(addr.sin_port)
                    << ": " << std::strerror(err);
  if (err != 0) return false;
  pair->server = ConnectAndAccept(pair->client, pair->listener, addr);
  return pair->server >= 0;
}

int ConnectAndAccept(int client, int listener, const sockaddr_in& addr) {
  demi_qtoken_t accept_qt = 0, connect_qt = 0;
  EXPECT_EQ(demi_accept(&accept_qt, listener), 0);
  EXPECT_EQ(
      demi_connect(&connect_qt, client,
                   reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)),
      0);
  demi_qresult_t connected = WaitOrFail(connect_qt);
  demi_qresult_t accepted = WaitOrFail(accept_qt);
  EXPECT_EQ(connected.qr_opcode, DEMI_OPC_CONNECT) << connected.qr_ret;
  EXPECT_EQ(accepted.qr_opcode, DEMI_OPC_ACCEPT) << accepted.qr_ret;
  return connected.qr_opcode == DEMI_OPC_CONNECT &&
                 accepted.qr_opcode == DEMI_OPC_ACCEPT
             ? accepted.qr_value.ares.qd
             : -1;
}

void ClosePair(const DemiPair& pair) {
  EXPECT_EQ(demi_close(pair.client), 0);
  EXPECT_EQ(demi_close(pair.server), 0);
  EXPECT_EQ(demi_close(pair.listener), 0);
}

void WitnessPair::ExpectUntouched() {
  demi_qtoken_t qt = PushString(pair_.client, "still here");
  EXPECT_EQ(PopString(pair_.server), "still here");
  EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
  qt = PushString(pair_.server, "and back");
  EXPECT_EQ(PopString(pair_.client), "and back");
  EXPECT_EQ(WaitOrFail(qt).qr_opcode, DEMI_OPC_PUSH);
}

demi_qtoken_t PushString(int qd, const std::string& bytes) {
  demi_sgarray_t sga = demi_sgaalloc(bytes.size());
  EXPECT_EQ(sga.sga_numsegs, 1u);
  if (sga.sga_numsegs != 1) return 0;
  std::memcpy(sga.sga_segs[0].sgaseg_buf, bytes.data(), bytes.size());
  demi_qtoken_t qt = 0;
  EXPECT_EQ(demi_push(&qt, qd, &sga), 0);
  EXPECT_EQ(demi_sgafree(&sga), 0);
  return qt;
}

std::string SgaBytes(const demi_sgarray_t& sga) {
  std::string bytes;
  for (uint32_t i = 0; i < sga.sga_numsegs; ++i) {
    bytes.append(static_cast<const char*>(sga.sga_segs[i].sgaseg_buf),
                 sga.sga_segs[i].sgaseg_len);
  }
  return bytes;
}

std::string PopString(int qd) {
  demi_qtoken_t qt = 0;
  EXPECT_EQ(demi_pop(&qt, qd), 0);
  demi_qresult_t qr = WaitOrFail(qt);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_POP) << "qr_ret " << qr.qr_ret;
  if (qr.qr_opcode != DEMI_OPC_POP) return "";
  std::string bytes = SgaBytes(qr.qr_value.sga);
  if (qr.qr_value.sga.sga_buf != nullptr) {
    EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
  }
  return bytes;
}

::testing::AssertionResult SameBytes(const std::string& actual,
                                     const std::string& expected) {
  if (actual == expected) return ::testing::AssertionSuccess();
  size_t i = 0;
  while (i < actual.size() && i < expected.size() && actual[i] == expected[i]) {
    ++i;
  }
  return ::testing::AssertionFailure()
         << "got " << actual.size() << " bytes, expected " << expected.size()
         << "; first difference at offset " << i;
}

std::string Pattern(size_t size, uint32_t seed) {
  std::string bytes(size, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < size; ++i) {
    x = x * 1103515245u + 12345u;
    bytes[i] = static_cast<char>(x >> 24);
  }
  return bytes;
}

int ConnectToServerOrFail(uint16_t port) {
  absl::StatusOr<sockaddr_in> server = ServerAddr(port);
  if (!server.ok()) {
    ADD_FAILURE() << server.status();
    return -1;
  }
  int qd = -1;
  if (demi_socket(&qd, AF_INET, SOCK_STREAM, 0) != 0) {
    ADD_FAILURE() << "demi_socket failed";
    return -1;
  }
  absl::Time deadline = absl::Now() + Scaled(absl::Seconds(120));
  while (true) {
    demi_qtoken_t qt = 0;
    if (demi_connect(&qt, qd, Sa(*server), sizeof(*server)) != 0) {
      ADD_FAILURE() << "demi_connect failed";
      return -1;
    }
    demi_qresult_t qr = WaitOrFail(qt);
    if (qr.qr_opcode == DEMI_OPC_CONNECT) return qd;
    if (absl::Now() >= deadline) {
      ADD_FAILURE() << "connect: qr_ret " << qr.qr_ret;
      return -1;
    }
    absl::SleepFor(absl::Milliseconds(500));
  }
}

}  // namespace demi::testing
