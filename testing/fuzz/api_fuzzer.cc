// libFuzzer target: random sequences of C API calls against one live libOS
// on an RDMA device (rxe in the VM: run it through testing/run_on_rdma.sh).
// An input is a sequence of 4-byte operations, at most kMaxOps: an opcode
// byte (which call), then three argument bytes that pick its arguments,
// good and bad (see each Do* function). Beyond "no crash, no sanitizer
// report", api_model.h checks every return value against the headers, that
// each token completes once, and every result. Each input closes what it
// opened and takes what it started, so inputs stay independent.
//
// DEMI_FUZZ_TRACE=1 prints each operation, to turn a finding into a
// reproducer.
#include <arpa/inet.h>
#include <demi/libos.h>
#include <demi/sga.h>
#include <demi/wait.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "testing/fuzz/api_args.h"
#include "testing/fuzz/api_model.h"

namespace demi_fuzz {
namespace {

constexpr size_t kMaxOps = 64;

Model& model = *new Model();  // Never destroyed: tokens outlive inputs.
bool trace = false;

int PickQd(uint8_t byte) { return PickQd(model, byte); }
demi_qtoken_t PickToken(uint8_t byte, uint8_t extra) {
  return PickToken(model, byte, extra);
}

// The input's bytes, read as operations; zeros once it runs out.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool done() const { return size_ == 0; }
  uint8_t Byte() {
    if (size_ == 0) return 0;
    --size_;
    return *data_++;
  }

 private:
  const uint8_t* data_;
  size_t size_;
};

void Trace(const char* what, int a, int b, int c) {
  if (trace)
    std::fprintf(stderr, "api_fuzzer: %s(%d, %d, %d)\n", what, a, b, c);
}

void StartedOrNot(const char* call, int ret, demi_qtoken_t qt, int qd,
                  demi_opcode_t opcode, std::initializer_list<int> documented) {
  ExpectErrno(call, ret, documented);
  if (ret != 0) return;
  if (!model.IsOpen(qd)) {
    Violation("%s on qd %d, not open, returned 0", call, qd);
  }
  model.Started(call, qt, qd, opcode);
}

void DoSocket(uint8_t a, uint8_t, uint8_t) {
  if (model.open_count() >= Model::kMaxOpen) return;
  int domain = AF_INET;
  int type = SOCK_STREAM;
  int qd = -1;
  int* out = &qd;
  switch (a % 8) {
    case 0:
    case 1:
    case 2:
      break;
    case 3:
    case 4:
      type = SOCK_DGRAM;
      break;
    case 5:
      domain = a & 0x80 ? AF_INET6 : AF_UNIX;
      break;
    case 6:
      type = a & 0x80 ? SOCK_RAW : SOCK_SEQPACKET;
      break;
    default:
      out = nullptr;
  }
  CountCall();
  int ret = demi_socket(out, domain, type, 0);
  ExpectErrno("demi_socket", ret, {EINVAL, ENOTSUP});
  if (ret == 0) model.Opened("demi_socket", qd);
}

void DoBind(uint8_t a, uint8_t b, uint8_t c) {
  int qd = PickQd(a);
  uint16_t port = kBasePort + c % 8;
  sockaddr_storage buf;
  socklen_t size;
  const sockaddr* addr = PickAddr(b, port, &buf, &size);
  CountCall();
  int ret = demi_bind(qd, addr, size);
  ExpectErrno("demi_bind", ret,
              {EBADF, EINVAL, ENOTSUP, EADDRINUSE, EADDRNOTAVAIL, ENOBUFS});
  if (ret != 0) return;
  if (!model.IsOpen(qd)) Violation("demi_bind on qd %d, not open, gave 0", qd);
  model.bound_ports()[qd] = port;
}

void DoListen(uint8_t a, uint8_t b, uint8_t) {
  static constexpr int kBacklogs[] = {-1, 0, 1, 8, INT_MAX, SOMAXCONN, 2};
  int qd = PickQd(a);
  CountCall();
  int ret = demi_listen(qd, kBacklogs[b % 7]);
  ExpectErrno("demi_listen", ret,
              {EBADF, EINVAL, EDESTADDRREQ, EADDRINUSE, EISCONN, EOPNOTSUPP});
  if (ret != 0) return;
  if (!model.IsOpen(qd))
    Violation("demi_listen on qd %d, not open, gave 0", qd);
  auto it = model.bound_ports().find(qd);
  if (it != model.bound_ports().end()) {
    model.listen_ports().push_back(it->second);
  }
}

void DoConnect(uint8_t a, uint8_t b, uint8_t c) {
  int qd = PickQd(a);
  // Mostly this input's own listeners (or datagram sockets); else a port
  // nobody listens on.
  uint16_t port = kDeadPort + c % 4;
  const std::vector<uint16_t>& own =
      c & 0x80 ? model.dgram_ports() : model.listen_ports();
  if (c % 4 != 3) {
    port = own.empty() ? kBasePort + c % 8 : own[c % own.size()];
  }
  sockaddr_storage buf;
  socklen_t size;
  const sockaddr* addr = PickAddr(b, port, &buf, &size);
  demi_qtoken_t qt = 0;
  demi_qtoken_t* out = b == 0xff ? nullptr : &qt;
  CountCall();
  int ret = demi_connect(out, qd, addr, size);
  StartedOrNot(
      "demi_connect", ret, qt, qd, DEMI_OPC_CONNECT,
      {EINVAL, ENOTSUP, EBADF, EOPNOTSUPP, EINPROGRESS, EISCONN, EDESTADDRREQ});
}

void DoAccept(uint8_t a, uint8_t b, uint8_t) {
  int qd = PickQd(a);
  demi_qtoken_t qt = 0;
  CountCall();
  int ret = demi_accept(b % 8 == 7 ? nullptr : &qt, qd);
  StartedOrNot("demi_accept", ret, qt, qd, DEMI_OPC_ACCEPT, {EINVAL, EBADF});
}

void DoPush(uint8_t a, uint8_t b, uint8_t c) {
  int qd = PickQd(a);
  char stack[256];
  std::memset(stack, c, sizeof(stack));
  demi_sgarray_t sga;
  BuildSga(model, b, c, stack, sizeof(stack), &sga);
  demi_qtoken_t qt = 0;
  CountCall();
  int ret =
      demi_push(b >= 0xf0 ? nullptr : &qt, qd, b >= 0xe0 ? nullptr : &sga);
  StartedOrNot("demi_push", ret, qt, qd, DEMI_OPC_PUSH,
               {EINVAL, EBADF, ENOTCONN, EAGAIN, EDESTADDRREQ, EMSGSIZE});
}

void DoPushTo(uint8_t a, uint8_t b, uint8_t c) {
  int qd = PickQd(a);
  char stack[256];
  std::memset(stack, c, sizeof(stack));
  demi_sgarray_t sga;
  BuildSga(model, b & 0x0f, c, stack, sizeof(stack), &sga);
  const std::vector<uint16_t>& own = model.dgram_ports();
  uint16_t port =
      own.empty() || c % 4 == 3 ? kDeadPort + c % 4 : own[c % own.size()];
  sockaddr_storage buf;
  socklen_t size;
  const sockaddr* addr = PickAddr(b >> 4, port, &buf, &size);
  demi_qtoken_t qt = 0;
  CountCall();
  int ret = demi_pushto(c == 0xff ? nullptr : &qt, qd,
                        c == 0xfe ? nullptr : &sga, addr, size);
  StartedOrNot("demi_pushto", ret, qt, qd, DEMI_OPC_PUSH,
               {EINVAL, EBADF, ENOTSUP, EDESTADDRREQ, EMSGSIZE, EAGAIN});
}

void DoPop(uint8_t a, uint8_t b, uint8_t) {
  int qd = PickQd(a);
  demi_qtoken_t qt = 0;
  CountCall();
  int ret = demi_pop(b % 8 == 7 ? nullptr : &qt, qd);
  StartedOrNot("demi_pop", ret, qt, qd, DEMI_OPC_POP,
               {EINVAL, EBADF, ENOTCONN, EDESTADDRREQ});
}

void DoWait(uint8_t a, uint8_t b, uint8_t c) {
  demi_qtoken_t qt = PickToken(a, c);
  timespec timeout;
  PickTimeout(b, &timeout);
  demi_qresult_t qr;
  bool null_out = b >= 0xf0;
  CountCall();
  int ret = demi_wait(null_out ? nullptr : &qr, qt, &timeout);
  ExpectErrno("demi_wait", ret, {EINVAL, ETIMEDOUT});
  bool valid = model.Outstanding(qt) && !null_out && ValidTimeout(timeout);
  if (!valid && ret != EINVAL) {
    Violation("demi_wait(token %llu%s) returned %d, not EINVAL",
              static_cast<unsigned long long>(qt),
              model.Outstanding(qt) ? ", bad arguments" : ", not outstanding",
              ret);
  }
  if (ret == 0) model.Completed("demi_wait", qr, qt);
}

void DoWaitAny(uint8_t a, uint8_t b, uint8_t c) {
  demi_qtoken_t qts[8];
  int num = a % 6;
  for (int i = 0; i < num; ++i) {
    // The same token twice, now and then.
    qts[i] = i > 0 && (c >> i) % 5 == 0
                 ? qts[i - 1]
                 : PickToken(static_cast<uint8_t>(a + 37 * i), c);
  }
  bool all_valid = true;
  for (int i = 0; i < num; ++i) all_valid &= model.Outstanding(qts[i]);
  timespec timeout;
  PickTimeout(b, &timeout);
  demi_qresult_t qr;
  int offset = -1;
  demi_qresult_t* qr_out = &qr;
  int* offset_out = &offset;
  const demi_qtoken_t* list = qts;
  int num_arg = num;
  switch (b >> 5) {
    case 5:
      qr_out = nullptr;
      all_valid = false;
      break;
    case 6:
      offset_out = nullptr;
      all_valid = false;
      break;
    case 7:
      if (num > 0) {
        list = nullptr;
      } else {
        num_arg = -1 - c % 2;
      }
      all_valid = false;
      break;
    default:
      break;
  }
  all_valid &= ValidTimeout(timeout);
  CountCall();
  int ret = demi_wait_any(qr_out, offset_out, list, num_arg, &timeout);
  ExpectErrno("demi_wait_any", ret, {EINVAL, ETIMEDOUT});
  if (!all_valid && ret != EINVAL) {
    Violation("demi_wait_any with a bad argument or token returned %d", ret);
  }
  if (ret != 0) return;
  if (offset < 0 || offset >= num) {
    Violation("demi_wait_any returned offset %d of %d tokens", offset, num);
  }
  model.Completed("demi_wait_any", qr, qts[offset]);
}

void DoWaitNextN(uint8_t a, uint8_t b, uint8_t) {
  demi_qresult_t results[8];
  int num = a % 10 - 1;  // -1 .. 8
  timespec timeout;
  PickTimeout(b, &timeout);
  int count = -1;
  bool null_results = b >= 0xf0, null_count = (b & 0xf0) == 0xe0;
  CountCall();
  int ret = demi_wait_next_n(null_results ? nullptr : results, num,
                             null_count ? nullptr : &count, &timeout);
  ExpectErrno("demi_wait_next_n", ret, {EINVAL, ETIMEDOUT});
  bool valid = num > 0 && !null_results && !null_count && ValidTimeout(timeout);
  if (!valid) {
    if (ret != EINVAL) {
      Violation("demi_wait_next_n with a bad argument returned %d", ret);
    }
    return;
  }
  if (ret == EINVAL || count < 0 || count > num || (ret == 0 && count != num)) {
    Violation("demi_wait_next_n(%d) returned %d with %d results", num, ret,
              count);
  }
  for (int i = 0; i < count; ++i) {
    model.Completed("demi_wait_next_n", results[i], 0);
  }
}

void DoSgaAlloc(uint8_t a, uint8_t, uint8_t) {
  static constexpr size_t kSizes[] = {0,
                                      1,
                                      64,
                                      9000,
                                      65536,
                                      1 << 20,
                                      DEMI_MAX_MESSAGE_SIZE,
                                      DEMI_MAX_MESSAGE_SIZE + 1,
                                      SIZE_MAX,
                                      8192,
                                      100,
                                      4096};
  size_t size = kSizes[a % 12];
  if (model.held().size() >= Model::kMaxHeld) return;
  CountCall();
  demi_sgarray_t sga = demi_sgaalloc(size);
  bool null = sga.sga_buf == nullptr && sga.sga_numsegs == 0;
  if (size == 0 || size > DEMI_MAX_MESSAGE_SIZE) {
    if (!null) Violation("demi_sgaalloc(%zu) returned a non-null array", size);
    return;
  }
  if (null) return;  // The pool limit: allowed.
  if (sga.sga_buf == nullptr || sga.sga_numsegs != 1 ||
      sga.sga_segs[0].sgaseg_buf == nullptr ||
      sga.sga_segs[0].sgaseg_len != size) {
    Violation("demi_sgaalloc(%zu) returned a malformed array", size);
  }
  // Writable to its last byte.
  auto* bytes = static_cast<char*>(sga.sga_segs[0].sgaseg_buf);
  bytes[0] = static_cast<char>(a);
  bytes[size - 1] = static_cast<char>(a);
  model.held().push_back(sga);
}

void DoSgaFree(uint8_t a, uint8_t b, uint8_t c) {
  std::vector<demi_sgarray_t>& held = model.held();
  demi_sgarray_t sga;
  std::memset(&sga, 0, sizeof(sga));
  demi_sgarray_t* arg = &sga;
  bool holds = false;
  switch (a % 8) {
    case 0:
    case 1:
    case 2:
      if (held.empty()) return;
      sga = held[b % held.size()];
      holds = true;
      break;
    case 3:  // Twice.
      if (model.freed().empty()) return;
      sga = model.freed()[b % model.freed().size()];
      break;
    case 4:
      break;  // Zeroed.
    case 5:   // A forged handle (same generation, another piece).
      if (!held.empty()) sga = held[b % held.size()];
      sga.sga_buf = reinterpret_cast<void*>(
          reinterpret_cast<uintptr_t>(sga.sga_buf) ^ (1 + c));
      sga.sga_numsegs = 1;
      break;
    case 6:  // A held array, with a bad segment count: must stay held.
      if (held.empty()) return;
      sga = held[b % held.size()];
      sga.sga_numsegs = c & 1 ? 0 : DEMI_SGARRAY_MAXSIZE + 1;
      break;
    default:
      arg = nullptr;
  }
  CountCall();
  int ret = demi_sgafree(arg);
  ExpectErrno("demi_sgafree", ret, {EINVAL});
  if (holds != (ret == 0)) {
    Violation("demi_sgafree of %s array returned %d",
              holds ? "a held" : "a bad", ret);
  }
  if (ret == 0) {
    model.Freed(sga);
    held.erase(held.begin() + b % held.size());
  }
}

void DoClose(uint8_t a, uint8_t, uint8_t) {
  int qd = PickQd(a);
  CountCall();
  int ret = demi_close(qd);
  ExpectErrno("demi_close", ret, {EBADF});
  int want = model.IsOpen(qd) ? 0 : EBADF;
  if (ret != want) {
    Violation("demi_close(%d) returned %d, wanted %d", qd, ret, want);
  }
  model.Closed(qd);
}

void DoSetSockOpt(uint8_t a, uint8_t b, uint8_t c) {
  int qd = PickQd(a);
  struct linger linger = {1, c % 3};
  int level = SOL_SOCKET, name = SO_LINGER;
  const void* value = &linger;
  socklen_t size = sizeof(linger);
  switch (b % 10) {
    case 0:
    case 1:
      break;
    case 2:
      linger = {0, 0};
      break;
    case 3:
      linger = {1, c & 1 ? -1 : INT_MAX};
      break;
    case 4:
      level = IPPROTO_TCP;
      break;
    case 5:
      name = c & 1 ? SO_RCVBUF : DEMI_SO_DATAGRAM_STATS;
      break;
    case 6:
      value = nullptr;
      break;
    case 7:
      size = c & 1 ? 0 : sizeof(linger) - 1;
      break;
    case 8:
      size = sizeof(linger) + 1;
      break;
    default:
      linger = {c, c};
  }
  CountCall();
  int ret = demi_setsockopt(qd, level, name, value, size);
  ExpectErrno("demi_setsockopt", ret, {EBADF, ENOTSUP, ENOPROTOOPT, EINVAL});
  if (ret == 0 && !model.IsOpen(qd)) {
    Violation("demi_setsockopt on qd %d, not open, returned 0", qd);
  }
}

void DoGetSockOpt(uint8_t a, uint8_t b, uint8_t c) {
  int qd = PickQd(a);
  union {
    struct linger linger;
    demi_datagram_stats_t stats;
    char bytes[128];
  } value;
  int level = SOL_SOCKET, name = SO_LINGER;
  socklen_t size = sizeof(struct linger);
  void* out = &value;
  socklen_t* size_out = &size;
  switch (b % 9) {
    case 0:
    case 1:
      break;
    case 2:
      size = c & 1 ? 0 : sizeof(struct linger) - 1;
      break;
    case 3:
      out = nullptr;
      break;
    case 4:
      size_out = nullptr;
      break;
    case 5:
      level = c & 1 ? IPPROTO_IP : -1;
      break;
    case 6:
      name = SO_KEEPALIVE;
      break;
    case 7:
      name = DEMI_SO_DATAGRAM_STATS;
      size = sizeof(demi_datagram_stats_t);
      break;
    default:
      name = DEMI_SO_DATAGRAM_STATS;
      size = c % sizeof(demi_datagram_stats_t);
  }
  socklen_t given = size;
  CountCall();
  int ret = demi_getsockopt(qd, level, name, out, size_out);
  ExpectErrno("demi_getsockopt", ret, {EBADF, ENOTSUP, ENOPROTOOPT, EINVAL});
  if (ret != 0) return;
  if (!model.IsOpen(qd)) {
    Violation("demi_getsockopt on qd %d, not open, returned 0", qd);
  }
  if (size > given) {
    Violation("demi_getsockopt wrote %u bytes into %u", size, given);
  }
}

void DoGetPeerName(uint8_t a, uint8_t b, uint8_t) {
  int qd = PickQd(a);
  sockaddr_storage addr;
  socklen_t size = sizeof(sockaddr_in);
  sockaddr* out = reinterpret_cast<sockaddr*>(&addr);
  socklen_t* size_out = &size;
  switch (b % 6) {
    case 3:
      out = nullptr;
      break;
    case 4:
      size_out = nullptr;
      break;
    case 5:
      size = b & 0x80 ? sizeof(addr) : sizeof(sockaddr_in) - 1;
      break;
    default:
      break;
  }
  CountCall();
  int ret = demi_getpeername(qd, out, size_out);
  ExpectErrno("demi_getpeername", ret, {EINVAL, EBADF, ENOTCONN});
  if (ret == 0 && (!model.IsOpen(qd) || size != sizeof(sockaddr_in))) {
    Violation("demi_getpeername on qd %d returned 0 (open %d, size %u)", qd,
              model.IsOpen(qd), size);
  }
}

// Binds a datagram socket on a port this input tracks for pushto.
void DoBindDatagram(uint8_t a, uint8_t b, uint8_t c) {
  if (model.open_count() >= Model::kMaxOpen) return;
  int qd = -1;
  CountCall();
  int ret = demi_socket(&qd, AF_INET, SOCK_DGRAM, 0);
  ExpectErrno("demi_socket", ret, {});
  model.Opened("demi_socket", qd);
  uint16_t port = kBasePort + 8 + c % 8;
  sockaddr_in addr = Addr(b & 1 ? 0 : port);
  CountCall();
  ret = demi_bind(qd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  ExpectErrno("demi_bind", ret, {EADDRINUSE, ENOBUFS});
  if (ret == 0 && (b & 1) == 0) model.dgram_ports().push_back(port);
  (void)a;
}

using Op = void (*)(uint8_t, uint8_t, uint8_t);
struct NamedOp {
  const char* name;
  Op op;
};
constexpr NamedOp kOps[] = {
    {"socket", DoSocket},
    {"bind", DoBind},
    {"listen", DoListen},
    {"connect", DoConnect},
    {"accept", DoAccept},
    {"push", DoPush},
    {"pushto", DoPushTo},
    {"pop", DoPop},
    {"wait", DoWait},
    {"wait_any", DoWaitAny},
    {"wait_next_n", DoWaitNextN},
    {"sgaalloc", DoSgaAlloc},
    {"sgafree", DoSgaFree},
    {"close", DoClose},
    {"setsockopt", DoSetSockOpt},
    {"getsockopt", DoGetSockOpt},
    {"getpeername", DoGetPeerName},
    {"bind_datagram", DoBindDatagram},
};

void InitOnce() {
  static bool done = false;
  if (done) return;
  done = true;
  trace = std::getenv("DEMI_FUZZ_TRACE") != nullptr;
  const char* addr = std::getenv("DEMI_TEST_ADDR");
  in_addr test_addr;
  if (addr == nullptr || inet_pton(AF_INET, addr, &test_addr) != 1) {
    std::fprintf(stderr,
                 "api_fuzzer: DEMI_TEST_ADDR is not set to an IPv4 address "
                 "(run it through testing/run_on_rdma.sh)\n");
    std::abort();
  }
  SetTestAddr(test_addr);
  // Bounded registered memory: 16 MiB sgas come and go in every input.
  setenv("DEMI_POOL_LIMIT_MB", "256", /*overwrite=*/0);
  CountCall();
  if (int ret = demi_init(nullptr); ret != 0) {
    std::fprintf(stderr, "api_fuzzer: demi_init returned %d (%s)\n", ret,
                 std::strerror(ret));
    std::abort();
  }
}

}  // namespace
}  // namespace demi_fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace demi_fuzz;
  InitOnce();
  model.BeginInput();
  Reader reader(data, size);
  for (size_t i = 0; i < kMaxOps && !reader.done(); ++i) {
    const NamedOp& op = kOps[reader.Byte() % (sizeof(kOps) / sizeof(kOps[0]))];
    uint8_t a = reader.Byte(), b = reader.Byte(), c = reader.Byte();
    Trace(op.name, a, b, c);
    op.op(a, b, c);
  }
  model.Cleanup();
  return 0;
}
