// What api_fuzzer knows about the one libOS it drives: the queues it holds
// open, the tokens of operations not yet waited for, the sgas it holds.
// Every C API call goes through a check here, and a check that fails
// prints what was expected and aborts, so that libFuzzer keeps the input.
//
// The model outlives inputs (tokens of one input may complete in the next),
// and each input ends with Cleanup, so what it carries over stays small.
#ifndef DEMI_TESTING_FUZZ_API_MODEL_H_
#define DEMI_TESTING_FUZZ_API_MODEL_H_

#include <demi/libos.h>

#include <cstdint>
#include <deque>
#include <initializer_list>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"

namespace demi_fuzz {

// Prints "api_fuzzer: invariant violated: ..." and aborts.
[[noreturn]] void Violation(const char* format, ...)
    __attribute__((format(printf, 1, 2)));

// Counts one C API call (printed at exit).
void CountCall();

// Aborts unless `ret` is 0 or one of `documented` (the errnos the header
// lists for `call`).
void ExpectErrno(const char* call, int ret,
                 std::initializer_list<int> documented);

class Model {
 public:
  // Most queues and sgas held at once; beyond them the ops making more
  // are skipped, so that one input cannot exhaust the libOS.
  static constexpr size_t kMaxOpen = 16;
  static constexpr size_t kMaxHeld = 8;

  // --- Queues ---
  // A call returned a new queue (socket or accept): it must not be one
  // already open.
  void Opened(const char* call, int qd);
  bool IsOpen(int qd) const { return open_.contains(qd); }
  size_t open_count() const { return open_.size(); }
  void Closed(int qd) { open_.erase(qd); }
  // Every qd this input has seen, open or closed, to pick arguments from.
  const std::vector<int>& seen() const { return seen_; }

  // --- Tokens ---
  // A call returned token `qt` for `opcode` on `qd`.
  void Started(const char* call, demi_qtoken_t qt, int qd,
               demi_opcode_t opcode);
  bool Outstanding(demi_qtoken_t qt) const { return tokens_.contains(qt); }
  // Tokens to pick from: this input's outstanding ones and recently taken.
  const std::vector<demi_qtoken_t>& issued() const { return issued_; }
  const std::deque<demi_qtoken_t>& taken() const { return taken_; }
  size_t outstanding_count() const { return tokens_.size(); }
  // A wait returned `qr`, for `expected` if it named one token (0: any):
  // checks it, takes its token, and keeps what it hands over (a popped
  // sga, an accepted queue).
  void Completed(const char* call, const demi_qresult_t& qr,
                 demi_qtoken_t expected);

  // --- Scatter-gather arrays ---
  // Arrays the application holds (allocated, or popped with data).
  std::vector<demi_sgarray_t>& held() { return held_; }
  // Arrays freed since: a second free must fail.
  std::deque<demi_sgarray_t>& freed() { return freed_; }
  void Freed(const demi_sgarray_t& sga);

  // Ports bound and listened on by this input's queues.
  absl::flat_hash_map<int, uint16_t>& bound_ports() { return bound_ports_; }
  std::vector<uint16_t>& listen_ports() { return listen_ports_; }
  std::vector<uint16_t>& dgram_ports() { return dgram_ports_; }

  // Forgets what only this input used.
  void BeginInput();
  // Closes every open queue, frees every held sga, then takes results with
  // short waits until no token is left or the time is up.
  void Cleanup();

 private:
  struct Pending {
    int qd;
    demi_opcode_t opcode;
  };
  void Taken(demi_qtoken_t qt);

  absl::flat_hash_set<int> open_;
  std::vector<int> seen_;
  absl::flat_hash_map<demi_qtoken_t, Pending> tokens_;
  std::vector<demi_qtoken_t> issued_;
  std::deque<demi_qtoken_t> taken_;
  std::vector<demi_sgarray_t> held_;
  std::deque<demi_sgarray_t> freed_;
  absl::flat_hash_map<int, uint16_t> bound_ports_;
  std::vector<uint16_t> listen_ports_;
  std::vector<uint16_t> dgram_ports_;
};

}  // namespace demi_fuzz

#endif  // DEMI_TESTING_FUZZ_API_MODEL_H_
