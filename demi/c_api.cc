// The only extern "C" definitions: each checks its pointers, calls one
// method of the calling thread's RdmaLibOs, writes outputs only on success and
// returns 0 or a positive errno.
//
// The headers promise nonnull pointers, yet the contract requires NULL to
// give EINVAL: this file sees no nonnull attribute, so no check is dropped.
#define ATTR_NONNULL(...)
#include <demi/libos.h>
#include <demi/sga.h>
#include <demi/wait.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "demi/rdma_libos.h"
#include "rdma/status_util.h"

namespace {

using demi::RdmaLibOs;
using demi::rdma::ErrnoOf;
using demi::rdma::ErrnoOrOutput;

// A libOS per thread, as Demikernel keeps: each thread that calls demi_init
// gets its own, and no call takes a lock to reach it.
thread_local RdmaLibOs* libos = nullptr;

// The end of a thread's libOS: it closes what the application left open,
// delivers what was pushed before (bounded by the linger time, as a
// kernel's TCP would) and is torn down. Calls made after it are ENOSYS.
void EndLibOs() {
  if (libos == nullptr) return;
  RdmaLibOs* ending = libos;
  libos = nullptr;
  ending->CloseAll();
  ending->FinishCloses();
  delete ending;
}

bool IsMainThread() { return syscall(SYS_gettid) == getpid(); }

// Any thread but the main one: at its end (return, pthread_exit, or its
// own exit()).
struct ThreadLibOs {
  bool armed =
      false;  // Set at demi_init: the first use registers ~ThreadLibOs.
  ~ThreadLibOs() {
    if (!IsMainThread()) EndLibOs();
  }
};
thread_local ThreadLibOs thread_libos;

// The main thread's ends at exit(), from an atexit handler rather than with
// the thread's destructors (which run before every atexit handler): so
// closes made by atexit handlers registered after demi_init are delivered
// too. Only when the main thread itself exits: the libOSes of threads
// still running are left as they are (they may be inside the library).
void EndMainLibOsAtExit() {
  if (IsMainThread()) EndLibOs();
}

// And at the main thread's pthread_exit (the process goes on with other
// threads), which runs pthread key destructors but neither thread-local
// ones (for the main thread) nor atexit handlers: a key whose value the
// main thread sets.
pthread_key_t main_end_key;
void EndMainLibOs(void*) { EndLibOs(); }

// A child of fork() shares its parent's QPs and CQs (and on some devices
// their memory): it must never post, poll or destroy them. It forgets the
// libOS of the thread that forked, which stays allocated and untouched: its
// calls are ENOSYS. Nor can it make a libOS of its own: the verbs state it
// inherited is not its own (rxe's connections from such a child fail), so
// demi_init is ENOTSUP.
// Volatile: a store the program never reads back would be optimized away,
// and LeakSanitizer in the child would then report the libOS as leaked.
RdmaLibOs* volatile parents_libos = nullptr;
bool forked = false;
void ForgetLibOsInChild() {
  forked = true;
  if (libos == nullptr) return;
  parents_libos = libos;
  libos = nullptr;
}

}  // namespace

extern "C" {

int demi_init(const struct demi_args* args) {
  (void)args;
  if (libos != nullptr) return EEXIST;
  if (forked) return ENOTSUP;
  // Before Create: it opens the process's devices, which a child of a
  // fork must not reuse even if this init then fails, or another thread
  // forks while it runs.
  static const bool registered =
      pthread_atfork(nullptr, nullptr, ForgetLibOsInChild) == 0 &&
      std::atexit(EndMainLibOsAtExit) == 0 &&
      pthread_key_create(&main_end_key, EndMainLibOs) == 0;
  absl::StatusOr<std::unique_ptr<RdmaLibOs>> created = RdmaLibOs::Create();
  if (!created.ok()) return ErrnoOf(created.status());
  if (registered && IsMainThread()) {
    pthread_setspecific(main_end_key, &main_end_key);
  }
  thread_libos.armed = true;
  libos = created->release();
  return 0;
}

int demi_socket(int* sockqd_out, int domain, int type, int protocol) {
  if (libos == nullptr) return ENOSYS;
  if (sockqd_out == nullptr) return EINVAL;
  return ErrnoOrOutput(libos->Socket(domain, type, protocol), sockqd_out);
}

int demi_listen(int sockqd, int backlog) {
  if (libos == nullptr) return ENOSYS;
  return ErrnoOf(libos->Listen(sockqd, backlog));
}

int demi_bind(int sockqd, const struct sockaddr* addr, socklen_t size) {
  if (libos == nullptr) return ENOSYS;
  if (addr == nullptr) return EINVAL;
  return ErrnoOf(libos->Bind(sockqd, addr, size));
}

int demi_accept(demi_qtoken_t* qt_out, int sockqd) {
  if (libos == nullptr) return ENOSYS;
  if (qt_out == nullptr) return EINVAL;
  return ErrnoOrOutput(libos->Accept(sockqd), qt_out);
}

int demi_connect(demi_qtoken_t* qt_out, int sockqd, const struct sockaddr* addr,
                 socklen_t size) {
  if (libos == nullptr) return ENOSYS;
  if (qt_out == nullptr || addr == nullptr) return EINVAL;
  return ErrnoOrOutput(libos->Connect(sockqd, addr, size), qt_out);
}

int demi_close(int qd) {
  if (libos == nullptr) return ENOSYS;
  return ErrnoOf(libos->Close(qd));
}

int demi_push(demi_qtoken_t* qt_out, int qd, const demi_sgarray_t* sga) {
  if (libos == nullptr) return ENOSYS;
  if (qt_out == nullptr || sga == nullptr) return EINVAL;
  return libos->Push(qd, *sga, qt_out);
}

int demi_pushto(demi_qtoken_t* qt_out, int sockqd, const demi_sgarray_t* sga,
                const struct sockaddr* dest_addr, socklen_t size) {
  if (libos == nullptr) return ENOSYS;
  if (qt_out == nullptr || sga == nullptr || dest_addr == nullptr) {
    return EINVAL;
  }
  return ErrnoOrOutput(libos->PushTo(sockqd, *sga, dest_addr, size), qt_out);
}

int demi_pop(demi_qtoken_t* qt_out, int qd) {
  if (libos == nullptr) return ENOSYS;
  if (qt_out == nullptr) return EINVAL;
  return libos->Pop(qd, qt_out);
}

int demi_setsockopt(int qd, int level, int optname, const void* optval,
                    socklen_t optlen) {
  if (libos == nullptr) return ENOSYS;
  return ErrnoOf(libos->SetSockOpt(qd, level, optname, optval, optlen));
}

int demi_getsockopt(int qd, int level, int optname, void* optval,
                    socklen_t* optlen) {
  if (libos == nullptr) return ENOSYS;
  return ErrnoOf(libos->GetSockOpt(qd, level, optname, optval, optlen));
}

int demi_getpeername(int qd, struct sockaddr* addr, socklen_t* addrlen) {
  if (libos == nullptr) return ENOSYS;
  return ErrnoOf(libos->GetPeerName(qd, addr, addrlen));
}

int demi_wait(demi_qresult_t* qr_out, demi_qtoken_t qt,
              const struct timespec* timeout) {
  if (libos == nullptr) return ENOSYS;
  if (qr_out == nullptr) return EINVAL;
  return libos->Wait(qr_out, qt, timeout);
}

int demi_wait_any(demi_qresult_t* qr_out, int* ready_offset,
                  const demi_qtoken_t qts[], int num_qts,
                  const struct timespec* timeout) {
  if (libos == nullptr) return ENOSYS;
  if (qr_out == nullptr || ready_offset == nullptr) return EINVAL;
  return libos->WaitAny(qr_out, ready_offset, qts, num_qts, timeout);
}

int demi_wait_next_n(demi_qresult_t* qr_out, int num_qrs, int* num_qrs_out,
                     const struct timespec* timeout) {
  if (libos == nullptr) return ENOSYS;
  if (qr_out == nullptr || num_qrs_out == nullptr) return EINVAL;
  // Results gathered before a timeout are valid too, so both are written.
  return libos->WaitNextN(qr_out, num_qrs, num_qrs_out, timeout);
}

demi_sgarray_t demi_sgaalloc(size_t size) {
  if (libos == nullptr) {
    demi_sgarray_t null_sga;
    std::memset(&null_sga, 0, sizeof(null_sga));
    return null_sga;
  }
  return libos->SgaAlloc(size);
}

int demi_sgafree(demi_sgarray_t* sga) {
  if (libos == nullptr) {
    // Any thread may give back a buffer a libOS lent; not a child of fork,
    // whose copy of the pools is its parent's.
    if (sga == nullptr) return ENOSYS;
    return RdmaLibOs::SgaFreeWithoutLibOs(*sga, forked);
  }
  if (sga == nullptr) return EINVAL;
  return libos->SgaFree(*sga);
}

}  // extern "C"
