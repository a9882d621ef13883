// The C API without a device: every call before demi_init is ENOSYS (and
// never crashes, NULL arguments included), and demi_init itself reports a
// machine without RDMA as ENODEV.
#include <demi/libos.h>
#include <dirent.h>

#include <cerrno>

#include "gtest/gtest.h"

namespace {

bool HostHasRdmaDevice() {
  DIR* dir = opendir("/sys/class/infiniband");
  if (dir == nullptr) return false;
  bool found = false;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') found = true;
  }
  closedir(dir);
  return found;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnonnull"

TEST(CApiTest, EveryCallBeforeInitIsEnosys) {
  int qd = -1;
  demi_qtoken_t qt = 0;
  demi_sgarray_t sga = {};
  demi_qresult_t qr;
  int offset = 0;
  sockaddr_in addr = {};
  socklen_t len = sizeof(addr);
  EXPECT_EQ(demi_socket(&qd, AF_INET, SOCK_STREAM, 0), ENOSYS);
  EXPECT_EQ(demi_socket(nullptr, AF_INET, SOCK_STREAM, 0), ENOSYS);
  EXPECT_EQ(demi_listen(1, 8), ENOSYS);
  EXPECT_EQ(demi_bind(1, reinterpret_cast<sockaddr*>(&addr), len), ENOSYS);
  EXPECT_EQ(demi_accept(&qt, 1), ENOSYS);
  EXPECT_EQ(demi_connect(&qt, 1, reinterpret_cast<sockaddr*>(&addr), len),
            ENOSYS);
  EXPECT_EQ(demi_close(1), ENOSYS);
  EXPECT_EQ(demi_push(&qt, 1, &sga), ENOSYS);
  EXPECT_EQ(demi_pushto(&qt, 1, &sga, reinterpret_cast<sockaddr*>(&addr), len),
            ENOSYS);
  EXPECT_EQ(demi_pop(&qt, 1), ENOSYS);
  EXPECT_EQ(demi_wait(&qr, 1, nullptr), ENOSYS);
  EXPECT_EQ(demi_wait_any(&qr, &offset, &qt, 1, nullptr), ENOSYS);
  EXPECT_EQ(demi_wait_next_n(&qr, 1, &offset, nullptr), ENOSYS);
  EXPECT_EQ(demi_sgafree(&sga), ENOSYS);
  EXPECT_EQ(demi_sgafree(nullptr), ENOSYS);
  EXPECT_EQ(demi_getpeername(1, reinterpret_cast<sockaddr*>(&addr), &len),
            ENOSYS);
  EXPECT_EQ(demi_setsockopt(1, SOL_SOCKET, SO_LINGER, nullptr, 0), ENOSYS);
  EXPECT_EQ(demi_getsockopt(1, SOL_SOCKET, SO_LINGER, nullptr, nullptr),
            ENOSYS);
  demi_sgarray_t null_sga = demi_sgaalloc(64);
  EXPECT_EQ(null_sga.sga_buf, nullptr);
  EXPECT_EQ(null_sga.sga_numsegs, 0u);
}

#pragma GCC diagnostic pop

TEST(CApiTest, InitWithoutDeviceIsEnodev) {
  int err = demi_init(nullptr);
  if (HostHasRdmaDevice()) {
    EXPECT_EQ(err, 0);
    EXPECT_EQ(demi_init(nullptr), EEXIST);
  } else {
    EXPECT_EQ(err, ENODEV);
    int qd = -1;
    EXPECT_EQ(demi_socket(&qd, AF_INET, SOCK_STREAM, 0), ENOSYS);
  }
}

}  // namespace
