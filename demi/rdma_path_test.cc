// DEMI_SO_RDMA_PATH on an RDMA device: what it reports agrees with the
// device's own answers (asked here through verbs, independently of the
// library), both ends of a connection agree, and every documented errno.
#include <arpa/inet.h>
#include <demi/libos.h>
#include <infiniband/verbs.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "testing/demi_helpers.h"
#include "testing/rdma_env.h"

namespace {

using demi::testing::AddrOrDie;
using demi::testing::ClosePair;
using demi::testing::DemiPair;
using demi::testing::MakePair;
using demi::testing::NextPort;
using demi::testing::Sa;
using demi::testing::WaitOrFail;

const auto* const kInit =
    ::testing::AddGlobalTestEnvironment(new demi::testing::DemiInitEnvironment);

// Inside testing/vm's VM: one rxe device on a dummy netdev.
bool InTestVm() {
  const char* vm = std::getenv("DEMI_TEST_VM");
  return vm != nullptr && std::string(vm) == "1";
}

int GetPath(int qd, demi_rdma_path_t* path) {
  socklen_t len = sizeof(*path);
  int err = demi_getsockopt(qd, SOL_SOCKET, DEMI_SO_RDMA_PATH, path, &len);
  if (err == 0) {
    EXPECT_EQ(len, sizeof(*path));
  }
  return err;
}

// The device named `name`, opened by the test itself.
class DeviceContext {
 public:
  explicit DeviceContext(const char* name) {
    int n = 0;
    ibv_device** list = ibv_get_device_list(&n);
    if (list == nullptr) return;
    for (int i = 0; i < n; ++i) {
      if (std::strcmp(ibv_get_device_name(list[i]), name) == 0) {
        context_ = ibv_open_device(list[i]);
      }
    }
    ibv_free_device_list(list);
  }
  ~DeviceContext() {
    if (context_ != nullptr) ibv_close_device(context_);
  }
  DeviceContext(const DeviceContext&) = delete;
  DeviceContext& operator=(const DeviceContext&) = delete;
  ibv_context* get() const { return context_; }

 private:
  ibv_context* context_ = nullptr;
};

// What every path must satisfy, checked against the device: the port's
// link layer and MTU, the GID at the reported index, the local address.
void ExpectMatchesDevice(const demi_rdma_path_t& path) {
  ASSERT_NE(std::memchr(path.device, '\0', sizeof(path.device)), nullptr);
  DeviceContext device(path.device);
  ASSERT_NE(device.get(), nullptr) << "no device " << path.device;
  ibv_port_attr port;
  ASSERT_EQ(ibv_query_port(device.get(), path.port_num, &port), 0);
  EXPECT_EQ(path.link_layer, port.link_layer);
  EXPECT_EQ(path.active_mtu, 128u << port.active_mtu);
  EXPECT_GT(path.path_mtu, 0u);
  EXPECT_LE(path.path_mtu, path.active_mtu);
  sockaddr_in here = AddrOrDie(0);
  EXPECT_EQ(path.local.sin_family, AF_INET);
  EXPECT_EQ(path.local.sin_addr.s_addr, here.sin_addr.s_addr);
  EXPECT_NE(path.local.sin_port, 0);
  if (path.link_layer == DEMI_LINK_LAYER_ETHERNET) {
    // RoCE: the GID is the address, mapped into IPv6.
    const uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0,    0,
                                       0, 0, 0, 0, 0xff, 0xff};
    EXPECT_EQ(std::memcmp(path.gid, mapped_prefix, sizeof(mapped_prefix)), 0);
    EXPECT_EQ(std::memcmp(path.gid + 12, &here.sin_addr, 4), 0);
  }
  if (path.gid_index < 0) return;
  ibv_gid gid;
  ASSERT_EQ(ibv_query_gid(device.get(), path.port_num, path.gid_index, &gid),
            0);
  EXPECT_EQ(std::memcmp(path.gid, gid.raw, sizeof(path.gid)), 0);
  ibv_gid_entry entry;
  ASSERT_EQ(
      ibv_query_gid_ex(device.get(), path.port_num, path.gid_index, &entry, 0),
      0);
  EXPECT_EQ(path.gid_type,
            entry.gid_type == IBV_GID_TYPE_ROCE_V2   ? DEMI_GID_TYPE_ROCE_V2
            : entry.gid_type == IBV_GID_TYPE_ROCE_V1 ? DEMI_GID_TYPE_ROCE_V1
                                                     : DEMI_GID_TYPE_IB);
}

void ExpectTestVm(const demi_rdma_path_t& path) {
  if (!InTestVm()) return;
  EXPECT_STREQ(path.device, "rxe0");
  EXPECT_EQ(path.port_num, 1u);
  EXPECT_EQ(path.link_layer, DEMI_LINK_LAYER_ETHERNET);
  EXPECT_EQ(path.active_mtu, 1024u);
}

TEST(RdmaPathTest, ConnectionReportsItsQueuePairsPath) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  demi_rdma_path_t client, server;
  ASSERT_EQ(GetPath(pair.client, &client), 0);
  ASSERT_EQ(GetPath(pair.server, &server), 0);
  std::printf(
      "path: device %s port %u active_mtu %u path_mtu %u gid_index %d%s\n",
      client.device, client.port_num, client.active_mtu, client.path_mtu,
      client.gid_index, InTestVm() ? " (the test VM's rxe)" : "");
  for (const demi_rdma_path_t* path : {&client, &server}) {
    SCOPED_TRACE(path == &client ? "client" : "server");
    ExpectMatchesDevice(*path);
    ExpectTestVm(*path);
    if (path->link_layer == DEMI_LINK_LAYER_ETHERNET) {
      // RoCE always routes with a GRH, from a fixed table entry.
      EXPECT_GE(path->gid_index, 0);
      EXPECT_TRUE(path->gid_type == DEMI_GID_TYPE_ROCE_V1 ||
                  path->gid_type == DEMI_GID_TYPE_ROCE_V2);
    }
  }
  // Both ends on this one host: one device, one port, one negotiated MTU,
  // the same GID; each end's local port is the other's peer port.
  EXPECT_STREQ(client.device, server.device);
  EXPECT_EQ(client.port_num, server.port_num);
  EXPECT_EQ(client.path_mtu, server.path_mtu);
  EXPECT_EQ(client.gid_index, server.gid_index);
  EXPECT_EQ(client.gid_type, server.gid_type);
  EXPECT_EQ(std::memcmp(client.gid, server.gid, sizeof(client.gid)), 0);
  sockaddr_in peer = {};
  socklen_t len = sizeof(peer);
  ASSERT_EQ(
      demi_getpeername(pair.server, reinterpret_cast<sockaddr*>(&peer), &len),
      0);
  EXPECT_EQ(client.local.sin_port, peer.sin_port);
  ASSERT_EQ(
      demi_getpeername(pair.client, reinterpret_cast<sockaddr*>(&peer), &len),
      0);
  EXPECT_EQ(server.local.sin_port, peer.sin_port);
  ClosePair(pair);
}

TEST(RdmaPathTest, LargerBufferGetsTheOptionsSize) {
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  unsigned char buffer[sizeof(demi_rdma_path_t) + 16];
  socklen_t len = sizeof(buffer);
  EXPECT_EQ(
      demi_getsockopt(pair.client, SOL_SOCKET, DEMI_SO_RDMA_PATH, buffer, &len),
      0);
  EXPECT_EQ(len, sizeof(demi_rdma_path_t));
  ClosePair(pair);
}

TEST(RdmaPathTest, BoundDatagramSocketReportsItsPort) {
  int qd = -1;
  ASSERT_EQ(demi_socket(&qd, AF_INET, SOCK_DGRAM, 0), 0);
  demi_rdma_path_t path;
  EXPECT_EQ(GetPath(qd, &path), ENOTCONN);  // Not bound: no device yet.
  sockaddr_in addr = AddrOrDie(0);          // Port 0: the port space picks one.
  ASSERT_EQ(demi_bind(qd, Sa(addr), sizeof(addr)), 0);
  ASSERT_EQ(GetPath(qd, &path), 0);
  ExpectMatchesDevice(path);
  ExpectTestVm(path);
  // A UD QP has no address vector: each destination's route has its own.
  EXPECT_EQ(path.gid_index, -1);
  EXPECT_EQ(path.gid_type, static_cast<uint32_t>(DEMI_GID_TYPE_UNKNOWN));
  EXPECT_EQ(path.path_mtu, path.active_mtu);
  EXPECT_EQ(demi_close(qd), 0);
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnonnull"

TEST(RdmaPathTest, BadQueuesAndBuffersGetTheDocumentedErrno) {
  demi_rdma_path_t path;
  socklen_t len = sizeof(path);
  EXPECT_EQ(demi_getsockopt(-1, SOL_SOCKET, DEMI_SO_RDMA_PATH, &path, &len),
            EBADF);
  int fresh = -1;
  ASSERT_EQ(demi_socket(&fresh, AF_INET, SOCK_STREAM, 0), 0);
  EXPECT_EQ(GetPath(fresh, &path), ENOTCONN);
  sockaddr_in addr = AddrOrDie(NextPort());
  ASSERT_EQ(demi_bind(fresh, Sa(addr), sizeof(addr)), 0);
  EXPECT_EQ(GetPath(fresh, &path), ENOTCONN);  // Bound.
  ASSERT_EQ(demi_listen(fresh, 4), 0);
  EXPECT_EQ(GetPath(fresh, &path), ENOTCONN);  // Listening.
  int listener = fresh;

  // Connecting: nothing drives the handshake until a wait, so the socket
  // is still connecting at the call.
  int client = -1;
  ASSERT_EQ(demi_socket(&client, AF_INET, SOCK_STREAM, 0), 0);
  demi_qtoken_t accept_qt = 0, connect_qt = 0;
  ASSERT_EQ(demi_accept(&accept_qt, listener), 0);
  ASSERT_EQ(demi_connect(&connect_qt, client, Sa(addr), sizeof(addr)), 0);
  EXPECT_EQ(GetPath(client, &path), ENOTCONN);
  demi_qresult_t connected = WaitOrFail(connect_qt);
  demi_qresult_t accepted = WaitOrFail(accept_qt);
  ASSERT_EQ(connected.qr_opcode, DEMI_OPC_CONNECT) << connected.qr_ret;
  ASSERT_EQ(accepted.qr_opcode, DEMI_OPC_ACCEPT) << accepted.qr_ret;
  int server = accepted.qr_value.ares.qd;
  EXPECT_EQ(GetPath(client, &path), 0);

  // Bad buffers: EINVAL, and nothing written.
  demi_rdma_path_t untouched;
  std::memset(&untouched, 0xa5, sizeof(untouched));
  demi_rdma_path_t out = untouched;
  len = sizeof(out) - 1;
  EXPECT_EQ(demi_getsockopt(client, SOL_SOCKET, DEMI_SO_RDMA_PATH, &out, &len),
            EINVAL);
  EXPECT_EQ(len, sizeof(out) - 1);
  EXPECT_EQ(std::memcmp(&out, &untouched, sizeof(out)), 0);
  len = 0;
  EXPECT_EQ(demi_getsockopt(client, SOL_SOCKET, DEMI_SO_RDMA_PATH, &out, &len),
            EINVAL);
  len = sizeof(out);
  EXPECT_EQ(
      demi_getsockopt(client, SOL_SOCKET, DEMI_SO_RDMA_PATH, nullptr, &len),
      EINVAL);
  EXPECT_EQ(
      demi_getsockopt(client, SOL_SOCKET, DEMI_SO_RDMA_PATH, &out, nullptr),
      EINVAL);
  EXPECT_EQ(demi_getsockopt(client, IPPROTO_TCP, DEMI_SO_RDMA_PATH, &out, &len),
            ENOTSUP);
  EXPECT_EQ(std::memcmp(&out, &untouched, sizeof(out)), 0);

  EXPECT_EQ(demi_close(client), 0);
  EXPECT_EQ(GetPath(client, &path), EBADF);  // Closed.
  EXPECT_EQ(demi_close(server), 0);
  EXPECT_EQ(demi_close(listener), 0);
  EXPECT_EQ(GetPath(listener, &path), EBADF);
}

#pragma GCC diagnostic pop

}  // namespace
