// A raw-verbs client that breaks the libOS's wire protocol against a
// running server (the soak, tools/soak.sh, points it at kv_server): a
// flood without credits, data after CLOSE, a rendezvous behind a bogus
// rkey, each on its own connection. The server must end each of those
// connections itself, within --timeout; exits 1 if one stayed up.
//
//   hostile_peer --server ADDR [--port P] [--timeout S]
#include <arpa/inet.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "demi/wire.h"
#include "rdma/status_util.h"
#include "testing/wire_peer.h"

ABSL_FLAG(std::string, server, "", "the server's address");
ABSL_FLAG(int, port, 7000, "its port");
ABSL_FLAG(double, timeout, 60,
          "seconds within which the server must end each attack's connection");

namespace demi::testing {
namespace {

using Attack = std::function<absl::Status(RcPeer&, absl::Duration)>;

absl::Status Flood(RcPeer& peer, absl::Duration timeout) {
  // One credit announced and none ever returned; far more messages than the
  // server's base credits. A send that stays unanswered means the server
  // has already reset the connection.
  for (int i = 0; i < 100; ++i) {
    if (!SendEager(peer, "flood" + std::to_string(i), 0, absl::Seconds(5))
             .ok()) {
      break;
    }
  }
  return WaitDisconnected(peer, timeout);
}

absl::Status DataAfterClose(RcPeer& peer, absl::Duration timeout) {
  WireHeader close = {};
  close.type = static_cast<uint8_t>(WireType::kClose);
  DEMI_RETURN_IF_ERROR(SendWire(peer, close, "", timeout));
  // A server that closes at EOF may have torn the connection down already:
  // then the late send finds nobody (retry exceeded), and that is fine, as
  // long as the connection ends.
  absl::Status late = SendEager(peer, "late", 0, timeout);
  absl::Status ended = WaitDisconnected(peer, timeout);
  if (ended.ok()) return ended;
  // Whether the server's QP still took data says which side failed to
  // end it (RELIABILITY.md, problem 4).
  return absl::Status(
      ended.code(), absl::StrCat(ended.message(), "; the late send: ",
                                 late.ok() ? "acknowledged" : late.ToString()));
}

absl::Status BogusRendezvous(RcPeer& peer, absl::Duration timeout) {
  // 1 MiB announced behind an rkey that was never registered: the server's
  // READ fails and must cost this connection, not the server.
  WireHeader header = {};
  header.type = static_cast<uint8_t>(WireType::kRndv);
  header.length = 1 << 20;
  header.cookie = 7;
  RndvDescriptor rndv = {};
  rndv.num_segments = 1;
  rndv.segments[0] = {0x10000, 0xdead00, 1 << 20};
  std::string body(reinterpret_cast<const char*>(&rndv),
                   RndvMessageSize(1) - sizeof(WireHeader));
  DEMI_RETURN_IF_ERROR(SendWire(peer, header, body, timeout));
  return WaitDisconnected(peer, timeout);
}

int Main() {
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(absl::GetFlag(FLAGS_port)));
  if (inet_pton(AF_INET, absl::GetFlag(FLAGS_server).c_str(), &addr.sin_addr) !=
      1) {
    std::fprintf(stderr, "hostile_peer: --server must be an IPv4 address\n");
    return 2;
  }
  absl::Duration timeout = absl::Seconds(absl::GetFlag(FLAGS_timeout));
  std::vector<std::pair<const char*, Attack>> attacks = {
      {"flood without credits", Flood},
      {"data after CLOSE", DataAfterClose},
      {"bogus rendezvous rkey", BogusRendezvous},
  };
  int failed = 0;
  for (auto& [name, attack] : attacks) {
    absl::Time start = absl::Now();
    absl::StatusOr<std::unique_ptr<RcPeer>> peer =
        ConnectAsDemi(addr, 2, timeout);
    absl::Status status = peer.ok() ? attack(**peer, timeout) : peer.status();
    double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    if (status.ok()) {
      std::printf("hostile_peer: %s: disconnected by the server after %.1f s\n",
                  name, seconds);
    } else {
      ++failed;
      std::printf("hostile_peer: %s: FAILED after %.1f s: %s\n", name, seconds,
                  status.ToString().c_str());
    }
    std::fflush(stdout);
  }
  return failed == 0 ? 0 : 1;
}

}  // namespace
}  // namespace demi::testing

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_server).empty()) {
    std::fprintf(stderr, "hostile_peer: --server ADDR is required\n");
    return 2;
  }
  return demi::testing::Main();
}
