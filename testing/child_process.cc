#include "testing/child_process.h"

#include <demi/libos.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/time/clock.h"
#include "testing/demi_helpers.h"
#include "testing/rdma_env.h"

namespace demi::testing {

pid_t Spawn(const std::function<int()>& body) {
  std::fflush(nullptr);
  pid_t pid = fork();
  // exit, not _Exit: the libOS finishes its closes at exit (a server that
  // closes and returns must still deliver its CLOSE).
  if (pid == 0) std::exit(body());
  return pid;
}

int Reap(pid_t pid, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (absl::Now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

demi_qresult_t ChildWait(demi_qtoken_t qt, absl::Duration timeout) {
  demi_qresult_t qr;
  timespec ts = absl::ToTimespec(Scaled(timeout));
  int err = demi_wait(&qr, qt, &ts);
  if (err != 0) std::fprintf(stderr, "demi_wait: %s\n", std::strerror(err));
  CHILD_CHECK(err == 0);
  return qr;
}

demi_qtoken_t ChildPush(int qd, const std::string& bytes) {
  demi_sgarray_t sga = demi_sgaalloc(bytes.size());
  CHILD_CHECK(sga.sga_numsegs == 1);
  std::memcpy(sga.sga_segs[0].sgaseg_buf, bytes.data(), bytes.size());
  demi_qtoken_t qt = 0;
  CHILD_CHECK(demi_push(&qt, qd, &sga) == 0);
  CHILD_CHECK(demi_sgafree(&sga) == 0);
  return qt;
}

std::string ChildPop(int qd, absl::Duration timeout) {
  demi_qtoken_t qt = 0;
  CHILD_CHECK(demi_pop(&qt, qd) == 0);
  demi_qresult_t qr = ChildWait(qt, timeout);
  CHILD_CHECK(qr.qr_opcode == DEMI_OPC_POP);
  demi_sgarray_t& sga = qr.qr_value.sga;
  if (sga.sga_buf == nullptr) return "";  // EOF: a zero-length sga.
  std::string bytes(static_cast<const char*>(sga.sga_segs[0].sgaseg_buf),
                    sga.sga_segs[0].sgaseg_len);
  CHILD_CHECK(demi_sgafree(&sga) == 0);
  return bytes;
}

int ChildListen(uint16_t port, int backlog) {
  sockaddr_in addr = AddrOrDie(port);
  int listener = -1;
  CHILD_CHECK(demi_socket(&listener, AF_INET, SOCK_STREAM, 0) == 0);
  CHILD_CHECK(demi_bind(listener, reinterpret_cast<sockaddr*>(&addr),
                        sizeof(addr)) == 0);
  CHILD_CHECK(demi_listen(listener, backlog) == 0);
  return listener;
}

int ConnectWithRetry(uint16_t port) {
  sockaddr_in addr = AddrOrDie(port);
  absl::Time deadline = absl::Now() + Scaled(absl::Seconds(60));
  int qd = -1;
  CHILD_CHECK(demi_socket(&qd, AF_INET, SOCK_STREAM, 0) == 0);
  while (true) {
    demi_qtoken_t qt = 0;
    CHILD_CHECK(demi_connect(&qt, qd, reinterpret_cast<sockaddr*>(&addr),
                             sizeof(addr)) == 0);
    demi_qresult_t qr = ChildWait(qt, absl::Seconds(60));
    if (qr.qr_opcode == DEMI_OPC_CONNECT) return qd;
    CHILD_CHECK(qr.qr_ret == ECONNREFUSED && absl::Now() < deadline);
    absl::SleepFor(absl::Milliseconds(100));
  }
}

}  // namespace demi::testing
