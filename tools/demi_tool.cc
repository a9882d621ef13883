#include "tools/demi_tool.h"

#include <arpa/inet.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "rdma/status_util.h"

namespace demi::tools {
namespace {

absl::Status DemiError(int err, absl::string_view what) {
  return rdma::ErrnoError(err, what);
}

}  // namespace

absl::StatusOr<sockaddr_in> ParseAddr(const std::string& host, int port) {
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("not an IPv4 address: '", host, "'"));
  }
  if (port <= 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad port ", port));
  }
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

std::string AddrString(const sockaddr_in& addr) {
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &addr.sin_addr, text, sizeof(text));
  return absl::StrCat(text, ":", ntohs(addr.sin_port));
}

absl::Status Init() {
  demi_args args = {};
  int err = demi_init(&args);
  if (err == ENODEV) {
    return DemiError(err,
                     "demi_init: no RDMA device (try `rdma link add rxe0 "
                     "type rxe netdev <if>`, or run through "
                     "testing/run_on_rdma.sh)");
  }
  if (err != 0) return DemiError(err, "demi_init");
  return absl::OkStatus();
}

absl::StatusOr<int> Listen(const sockaddr_in& addr, int backlog) {
  int qd = -1;
  if (int err = demi_socket(&qd, AF_INET, SOCK_STREAM, 0); err != 0) {
    return DemiError(err, "demi_socket");
  }
  const sockaddr* sa = reinterpret_cast<const sockaddr*>(&addr);
  if (int err = demi_bind(qd, sa, sizeof(addr)); err != 0) {
    demi_close(qd);
    return DemiError(
        err,
        absl::StrCat("demi_bind ", AddrString(addr),
                     err == EADDRNOTAVAIL ? " (no RDMA device has it)" : ""));
  }
  if (int err = demi_listen(qd, backlog); err != 0) {
    demi_close(qd);
    return DemiError(err, "demi_listen");
  }
  return qd;
}

absl::StatusOr<int> Connect(const sockaddr_in& addr, absl::Duration timeout) {
  int qd = -1;
  if (int err = demi_socket(&qd, AF_INET, SOCK_STREAM, 0); err != 0) {
    return DemiError(err, "demi_socket");
  }
  std::string to = absl::StrCat("connect to ", AddrString(addr));
  demi_qtoken_t qt = 0;
  const sockaddr* sa = reinterpret_cast<const sockaddr*>(&addr);
  if (int err = demi_connect(&qt, qd, sa, sizeof(addr)); err != 0) {
    demi_close(qd);
    return DemiError(err, to);
  }
  absl::StatusOr<demi_qresult_t> qr = Wait(qt, timeout, to.c_str());
  if (!qr.ok()) {
    demi_close(qd);
    int err = rdma::ErrnoOf(qr.status());
    std::string hint;
    if (err == ECONNREFUSED) hint = " (is the server running on that port?)";
    if (err == EHOSTUNREACH || err == ENETUNREACH || err == ETIMEDOUT) {
      hint = " (is the address on a reachable RDMA network?)";
    }
    return absl::Status(qr.status().code(),
                        absl::StrCat(qr.status().message(), hint));
  }
  return qd;
}

absl::StatusOr<demi_qresult_t> Wait(demi_qtoken_t qt, absl::Duration timeout,
                                    const char* what) {
  demi_qresult_t qr;
  std::memset(&qr, 0, sizeof(qr));
  timespec ts = absl::ToTimespec(timeout);
  int err = demi_wait(&qr, qt, &ts);
  if (err == ETIMEDOUT) {
    return DemiError(err, absl::StrCat(what, ": no answer within ",
                                       absl::FormatDuration(timeout)));
  }
  if (err != 0) return DemiError(err, what);
  if (qr.qr_opcode == DEMI_OPC_FAILED) {
    return DemiError(static_cast<int>(qr.qr_ret), what);
  }
  return qr;
}

absl::StatusOr<bool> WaitNext(demi_qresult_t* result, timespec timeout) {
  int n = 0;
  int err = demi_wait_next_n(result, 1, &n, &timeout);
  if (err != 0 && err != ETIMEDOUT) return DemiError(err, "demi_wait_next_n");
  return n == 1;
}

absl::StatusOr<bool> WaitNext(demi_qresult_t* result, absl::Duration timeout) {
  return WaitNext(result, absl::ToTimespec(timeout));
}

absl::Status CheckSeconds(const char* flag, double seconds) {
  // Written so that NaN fails too.
  if (!(seconds >= kMinSeconds && seconds <= kMaxSeconds)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " must be from 0.000001 to ",
                     static_cast<int64_t>(kMaxSeconds), " seconds"));
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> ParseSize(const std::string& text) {
  std::string digits = text;
  size_t unit = 1;
  if (!digits.empty()) {
    switch (digits.back()) {
      case 'K':
      case 'k':
        unit = size_t{1} << 10;
        break;
      case 'M':
      case 'm':
        unit = size_t{1} << 20;
        break;
    }
    if (unit != 1) digits.pop_back();
  }
  size_t value = 0;
  // Divided, not multiplied: value * unit can wrap around to a small size.
  if (!absl::SimpleAtoi(digits, &value) || value == 0 ||
      value > DEMI_MAX_MESSAGE_SIZE / unit) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad size '", text, "': 1 to ", DEMI_MAX_MESSAGE_SIZE,
                     " bytes, optionally with K or M"));
  }
  return value * unit;
}

absl::StatusOr<std::vector<size_t>> ParseSizes(
    const std::vector<std::string>& texts) {
  std::vector<size_t> sizes;
  for (const std::string& text : texts) {
    DEMI_ASSIGN_OR_RETURN(size_t size, ParseSize(text));
    sizes.push_back(size);
  }
  return sizes;
}

absl::StatusOr<demi_sgarray_t> AllocMessage(size_t size) {
  demi_sgarray_t sga = demi_sgaalloc(size);
  if (sga.sga_numsegs == 0) {
    return DemiError(ENOMEM, absl::StrCat("demi_sgaalloc(", size, ")"));
  }
  auto* bytes = static_cast<unsigned char*>(sga.sga_segs[0].sgaseg_buf);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<unsigned char>(i);
  return sga;
}

size_t SgaLength(const demi_sgarray_t& sga) {
  size_t total = 0;
  for (uint32_t i = 0; i < sga.sga_numsegs; ++i) {
    total += sga.sga_segs[i].sgaseg_len;
  }
  return total;
}

double NowMicros() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

}  // namespace demi::tools
