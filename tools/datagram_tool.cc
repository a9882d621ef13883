#include "tools/datagram_tool.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "rdma/status_util.h"
#include "tools/demi_tool.h"

namespace demi::tools {
namespace {

constexpr unsigned char kBye = 0;
constexpr unsigned char kHello = 1;
constexpr int kByes = 5;

const sockaddr* Sa(const sockaddr_in& addr) {
  return reinterpret_cast<const sockaddr*>(&addr);
}

// Sends the one-byte control datagram `what` to `dest` and waits for it.
absl::Status SendControl(int qd, unsigned char what, const sockaddr_in& dest,
                         absl::Duration timeout) {
  demi_sgarray_t sga = demi_sgaalloc(1);
  if (sga.sga_numsegs != 1) return rdma::ErrnoError(ENOMEM, "demi_sgaalloc");
  *static_cast<unsigned char*>(sga.sga_segs[0].sgaseg_buf) = what;
  demi_qtoken_t qt = 0;
  int err = demi_pushto(&qt, qd, &sga, Sa(dest), sizeof(dest));
  demi_sgafree(&sga);
  if (err != 0) return rdma::ErrnoError(err, "demi_pushto");
  return Wait(qt, timeout, "datagram to the server").status();
}

}  // namespace

absl::StatusOr<int> BindDatagram(const sockaddr_in& local) {
  if (local.sin_addr.s_addr == htonl(INADDR_ANY)) {
    return absl::InvalidArgumentError(
        "--udp needs --bind ADDR: a datagram socket lives on one device");
  }
  int qd = -1;
  if (int err = demi_socket(&qd, AF_INET, SOCK_DGRAM, 0); err != 0) {
    return rdma::ErrnoError(err, "demi_socket(SOCK_DGRAM)");
  }
  if (int err = demi_bind(qd, Sa(local), sizeof(local)); err != 0) {
    demi_close(qd);
    return rdma::ErrnoError(
        err,
        absl::StrCat("demi_bind ", AddrString(local),
                     err == EADDRNOTAVAIL ? " (no RDMA device has it)" : ""));
  }
  return qd;
}

absl::StatusOr<sockaddr_in> LocalAddrFor(const sockaddr_in& server) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return rdma::ErrnoError(errno, "socket");
  sockaddr_in local = {};
  socklen_t len = sizeof(local);
  int rc = connect(fd, Sa(server), sizeof(server));
  if (rc == 0) rc = getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
  int err = errno;
  close(fd);
  if (rc != 0) return rdma::ErrnoError(err, "no route to the server");
  local.sin_port = 0;
  return local;
}

absl::StatusOr<int> ConnectDatagram(const sockaddr_in& local,
                                    const sockaddr_in& server,
                                    absl::Duration timeout) {
  DEMI_ASSIGN_OR_RETURN(int qd, BindDatagram(local));
  absl::Time deadline = absl::Now() + timeout;
  // One pop for the answer, whichever hello it answers.
  demi_qtoken_t pop = 0;
  if (int err = demi_pop(&pop, qd); err != 0) {
    demi_close(qd);
    return rdma::ErrnoError(err, "demi_pop");
  }
  while (true) {
    absl::Status sent = SendControl(qd, kHello, server, timeout);
    if (sent.ok()) {
      demi_qresult_t qr;
      timespec wait = absl::ToTimespec(absl::Seconds(1));
      if (demi_wait(&qr, pop, &wait) == 0) {
        if (qr.qr_opcode == DEMI_OPC_POP) {
          demi_sgafree(&qr.qr_value.sga);
          break;
        }
        demi_close(qd);
        return rdma::ErrnoError(static_cast<int>(qr.qr_ret), "demi_pop");
      }
    }
    if (absl::Now() > deadline) {
      demi_close(qd);
      return absl::UnavailableError(
          absl::StrCat("no datagram server answers at ", AddrString(server),
                       sent.ok() ? "" : ": ", sent.message()));
    }
    // Not up yet, or the hello or its answer was lost: again.
    absl::SleepFor(absl::Milliseconds(100));
  }
  demi_qtoken_t qt = 0;
  if (int err = demi_connect(&qt, qd, Sa(server), sizeof(server)); err != 0) {
    demi_close(qd);
    return rdma::ErrnoError(err, "demi_connect");
  }
  DEMI_RETURN_IF_ERROR(Wait(qt, timeout, "demi_connect").status());
  return qd;
}

void CloseDatagram(int qd) {
  sockaddr_in server = {};
  socklen_t len = sizeof(server);
  if (demi_getpeername(qd, reinterpret_cast<sockaddr*>(&server), &len) == 0) {
    // A server still busy with a flood may drop one: bye goes a few times
    // (the server counts each client once).
    for (int i = 0; i < kByes; ++i) {
      SendControl(qd, kBye, server, absl::Seconds(5)).IgnoreError();
      absl::SleepFor(absl::Milliseconds(100));
    }
  }
  demi_close(qd);
}

absl::Status ServeDatagrams(
    int qd, const ServeOptions& options,
    absl::FunctionRef<bool(int qd, demi_sgarray_t& sga)> on_message) {
  absl::flat_hash_set<std::pair<uint32_t, uint16_t>> ended;  // Said bye.
  demi_qtoken_t qt = 0;
  if (int err = demi_pop(&qt, qd); err != 0) {
    return rdma::ErrnoError(err, "demi_pop");
  }
  while ((options.exit_after == 0 ||
          static_cast<int>(ended.size()) < options.exit_after) &&
         (options.stop == nullptr || !*options.stop)) {
    demi_qresult_t qr;
    DEMI_ASSIGN_OR_RETURN(bool got, WaitNext(&qr, kTick));
    if (!got) continue;
    if (qr.qr_opcode == DEMI_OPC_FAILED) {
      // A reply that found nobody (the client went away) ends nothing.
      if (qr.qr_ret == ECONNREFUSED) continue;
      return rdma::ErrnoError(static_cast<int>(qr.qr_ret), "datagram socket");
    }
    if (qr.qr_opcode != DEMI_OPC_POP) continue;
    demi_sgarray_t& sga = qr.qr_value.sga;
    if (SgaLength(sga) == 1) {
      unsigned char what =
          *static_cast<unsigned char*>(sga.sga_segs[0].sgaseg_buf);
      if (what == kHello) {
        demi_qtoken_t reply = 0;
        sockaddr_in from = sga.sga_addr;
        demi_pushto(&reply, qd, &sga, Sa(from), sizeof(from));
      } else if (what == kBye) {
        sockaddr_in from = sga.sga_addr;
        ended.insert({from.sin_addr.s_addr, from.sin_port});
      }
      demi_sgafree(&sga);
    } else {
      on_message(qd, sga);
    }
    if (int err = demi_pop(&qt, qd); err != 0) {
      return rdma::ErrnoError(err, "demi_pop");
    }
  }
  return absl::OkStatus();
}

}  // namespace demi::tools
