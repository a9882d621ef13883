#include "testing/fuzz/api_model.h"

#include <demi/sga.h>
#include <demi/wait.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace demi_fuzz {
namespace {

// Tokens taken and sgas freed, remembered to be used again (both must
// then fail): a few suffice to hit every case.
constexpr size_t kRememberTaken = 64;
constexpr size_t kRememberFreed = 16;
// Cleanup: waits of 1 ms; more when tokens pile up (closed connections
// still delivering), and a violation if even a second does not help.
constexpr int kDrainRounds = 20;
constexpr int kLongDrainRounds = 1000;
constexpr size_t kLongDrainAbove = 64;
constexpr size_t kPileUpLimit = 256;

uint64_t calls = 0;

// Also appended to DEMI_FUZZ_COUNT_FILE, if set: in -fork mode the jobs'
// own output is gone by the end.
void PrintCalls() {
  std::fprintf(stderr, "api_fuzzer: %llu C API calls\n",
               static_cast<unsigned long long>(calls));
  if (const char* path = std::getenv("DEMI_FUZZ_COUNT_FILE")) {
    if (FILE* file = std::fopen(path, "a")) {
      std::fprintf(file, "%llu\n", static_cast<unsigned long long>(calls));
      std::fclose(file);
    }
  }
}

// What a failed operation's qr_ret may be, by the header of its call.
bool DocumentedFailure(demi_opcode_t opcode, int64_t err) {
  switch (opcode) {
    case DEMI_OPC_ACCEPT:
      return err == EBADF;
    case DEMI_OPC_CONNECT:
      return err == ECONNREFUSED || err == ETIMEDOUT || err == EHOSTUNREACH ||
             err == ENOBUFS || err == ENOMEM || err == EBADF;
    case DEMI_OPC_POP:  // ENOBUFS: larger than the pool can ever hold.
      return err == ECONNRESET || err == ETIMEDOUT || err == EPROTO ||
             err == EBADF || err == ENOBUFS;
    case DEMI_OPC_PUSH:  // Stream and datagram pushes (and pushtos).
      return err == ECONNRESET || err == ETIMEDOUT || err == EPROTO ||
             err == ECONNABORTED || err == EBADF || err == ECONNREFUSED ||
             err == EHOSTUNREACH;
    default:
      return false;
  }
}

// Reads every byte of a popped message, so that ASan sees a bad pointer.
void Touch(const demi_sgaseg_t& seg) {
  const volatile char* bytes = static_cast<const char*>(seg.sgaseg_buf);
  char sum = 0;
  for (uint32_t i = 0; i < seg.sgaseg_len; i += 4096) sum ^= bytes[i];
  sum ^= bytes[seg.sgaseg_len - 1];
  (void)sum;
}

}  // namespace

void Violation(const char* format, ...) {
  std::fprintf(stderr, "api_fuzzer: invariant violated: ");
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
  std::fprintf(stderr, "\n");
  PrintCalls();
  std::abort();
}

void CountCall() {
  if (calls++ == 0) std::atexit(PrintCalls);
}

void ExpectErrno(const char* call, int ret,
                 std::initializer_list<int> documented) {
  static const bool trace = std::getenv("DEMI_FUZZ_TRACE") != nullptr;
  if (trace) std::fprintf(stderr, "api_fuzzer:   %s -> %d\n", call, ret);
  if (ret == 0) return;
  for (int err : documented) {
    if (ret == err) return;
  }
  Violation("%s returned %d (%s), not an errno its header documents", call, ret,
            ret > 0 ? std::strerror(ret) : "negative");
}

void Model::Opened(const char* call, int qd) {
  if (qd < 0) Violation("%s returned the negative qd %d", call, qd);
  if (!open_.insert(qd).second) {
    Violation("%s returned qd %d, which is already open", call, qd);
  }
  seen_.push_back(qd);
}

void Model::Started(const char* call, demi_qtoken_t qt, int qd,
                    demi_opcode_t opcode) {
  if (qt == 0 || qt == UINT64_MAX) {
    Violation("%s returned the token %llu", call,
              static_cast<unsigned long long>(qt));
  }
  bool reused = false;
  for (demi_qtoken_t old : taken_) reused |= old == qt;
  if (reused || !tokens_.emplace(qt, Pending{qd, opcode}).second) {
    Violation("%s returned token %llu, which was already handed out", call,
              static_cast<unsigned long long>(qt));
  }
  issued_.push_back(qt);
}

void Model::Taken(demi_qtoken_t qt) {
  tokens_.erase(qt);
  taken_.push_back(qt);
  if (taken_.size() > kRememberTaken) taken_.pop_front();
}

void Model::Freed(const demi_sgarray_t& sga) {
  freed_.push_back(sga);
  if (freed_.size() > kRememberFreed) freed_.pop_front();
}

void Model::Completed(const char* call, const demi_qresult_t& qr,
                      demi_qtoken_t expected) {
  demi_qtoken_t qt = qr.qr_qt;
  if (expected != 0 && qt != expected) {
    Violation("%s for token %llu returned the result of token %llu", call,
              static_cast<unsigned long long>(expected),
              static_cast<unsigned long long>(qt));
  }
  auto it = tokens_.find(qt);
  if (it == tokens_.end()) {
    Violation(
        "%s returned token %llu (opcode %d), which is not outstanding: it "
        "completed twice, or was never handed out",
        call, static_cast<unsigned long long>(qt), qr.qr_opcode);
  }
  Pending pending = it->second;
  Taken(qt);
  if (qr.qr_qd != pending.qd) {
    Violation("%s: token %llu was started on qd %d, its result names qd %d",
              call, static_cast<unsigned long long>(qt), pending.qd, qr.qr_qd);
  }
  if (qr.qr_opcode == DEMI_OPC_FAILED) {
    if (!DocumentedFailure(pending.opcode, qr.qr_ret)) {
      Violation("%s: operation %d failed with qr_ret %lld, not documented",
                call, pending.opcode, static_cast<long long>(qr.qr_ret));
    }
    return;
  }
  if (qr.qr_opcode != pending.opcode || qr.qr_ret != 0) {
    Violation("%s: operation %d completed with opcode %d, qr_ret %lld", call,
              pending.opcode, qr.qr_opcode, static_cast<long long>(qr.qr_ret));
  }
  if (qr.qr_opcode == DEMI_OPC_ACCEPT) {
    Opened(call, qr.qr_value.ares.qd);
  } else if (qr.qr_opcode == DEMI_OPC_POP) {
    const demi_sgarray_t& sga = qr.qr_value.sga;
    const demi_sgaseg_t& seg = sga.sga_segs[0];
    if (sga.sga_numsegs != 1 || seg.sgaseg_len > DEMI_MAX_MESSAGE_SIZE ||
        (seg.sgaseg_len > 0 &&
         (seg.sgaseg_buf == nullptr || sga.sga_buf == nullptr))) {
      Violation("%s: a pop returned a malformed sga (%u segments, %u bytes)",
                call, sga.sga_numsegs, seg.sgaseg_len);
    }
    if (seg.sgaseg_len == 0) return;  // EOF: nothing to free.
    Touch(seg);
    held_.push_back(sga);
  }
}

void Model::BeginInput() {
  seen_.clear();
  issued_.clear();
  bound_ports_.clear();
  listen_ports_.clear();
  dgram_ports_.clear();
}

void Model::Cleanup() {
  for (int round = 0;; ++round) {
    for (int qd : open_) {
      CountCall();
      if (int ret = demi_close(qd); ret != 0) {
        Violation("demi_close(%d) of an open queue returned %d", qd, ret);
      }
    }
    open_.clear();
    for (demi_sgarray_t& sga : held_) {
      CountCall();
      if (int ret = demi_sgafree(&sga); ret != 0) {
        Violation("demi_sgafree of a held sga returned %d", ret);
      }
      Freed(sga);
    }
    held_.clear();
    bool more = tokens_.size() > kLongDrainAbove ? round < kLongDrainRounds
                                                 : round < kDrainRounds;
    if (tokens_.empty() || !more) break;
    demi_qresult_t results[16];
    int count = -1;
    timespec timeout = {0, 1000000};
    CountCall();
    int ret = demi_wait_next_n(results, 16, &count, &timeout);
    ExpectErrno("demi_wait_next_n", ret, {ETIMEDOUT});
    if (count < 0 || count > 16) {
      Violation("demi_wait_next_n wrote %d results of 16", count);
    }
    for (int i = 0; i < count; ++i) {
      Completed("demi_wait_next_n", results[i], 0);
    }
  }
  if (tokens_.size() > kPileUpLimit) {
    Violation("%zu tokens still outstanding after a second of waits",
              tokens_.size());
  }
}

}  // namespace demi_fuzz
