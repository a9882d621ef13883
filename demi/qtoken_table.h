// Queue tokens: one per asynchronous operation, from its start until a
// wait consumes its result.
#ifndef DEMI_DEMI_QTOKEN_TABLE_H_
#define DEMI_DEMI_QTOKEN_TABLE_H_

#include <demi/types.h>
#include <netinet/in.h>

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "demi/fifo_ring.h"

namespace demi {

// Not thread-safe; owned by RdmaLibOs.
class QTokenTable {
 public:
  // Starts a pending operation of `opcode` on `qd` and returns its token
  // (never 0 or UINT64_MAX, never reused).
  demi_qtoken_t Add(int qd, demi_opcode_t opcode);

  // Whether `qt` names an operation whose result has not been taken.
  bool Contains(demi_qtoken_t qt) { return Lookup(qt) != nullptr; }
  bool IsDone(demi_qtoken_t qt);

  // Completes the pending operation `qt` with `result` (whose opcode, qd and
  // token fields are filled in here). Does nothing if `qt` is not pending.
  void Complete(demi_qtoken_t qt, demi_qresult_t result);
  // Completes `qt` as DEMI_OPC_FAILED with `err`.
  void Fail(demi_qtoken_t qt, int err);
  // Completes `qt` with `opcode` and nothing more (a push, a connect).
  void Succeed(demi_qtoken_t qt, demi_opcode_t opcode);
  // Completes the pop `qt` with one segment: `length` bytes at `data` in
  // the buffer `handle` (the sga's sga_buf), from `from`.
  void CompletePop(demi_qtoken_t qt, void* handle, void* data, uint32_t length,
                   const sockaddr_in& from);

  // Forgets `qt` (an operation that never started).
  void Erase(demi_qtoken_t qt);

  // If `qt` is done, removes it and writes its result to `out` (once, no
  // copy in between); false if it is not done.
  bool Take(demi_qtoken_t qt, demi_qresult_t* out);
  // Removes the earliest completed result not yet taken into `out`; false
  // if there is none.
  bool TakeNextDone(demi_qresult_t* out) {
    return !done_order_.empty() && TakeNextDoneSlow(out);
  }

  size_t size() const { return live_; }

 private:
  struct Entry {
    enum State : uint8_t { kGone, kPending, kDone } state = kGone;
    demi_qresult_t result = {};
  };
  // Recent tokens live in a ring indexed by token number: no hashing on
  // the hot path. A token still there when kRingSize newer ones exist
  // (a long wait, or a result nobody takes) moves to old_.
  static constexpr uint64_t kRingSize = 1024;

  // Inline for the ring, where nearly every token is found.
  Entry* Lookup(demi_qtoken_t qt) {
    if (qt >= base_ && qt < next_) {  // base_ >= 1: never token 0.
      Entry& entry = Slot(qt);
      return entry.state == Entry::kGone ? nullptr : &entry;
    }
    return LookupOld(qt);
  }
  Entry* LookupOld(demi_qtoken_t qt);
  bool TakeNextDoneSlow(demi_qresult_t* out);
  // The entry of `qt` if it is pending (not done, not gone).
  Entry* Pending(demi_qtoken_t qt);
  // Marks a pending entry whose result is filled in as done.
  void Finish(demi_qtoken_t qt, Entry& entry);
  Entry& Slot(demi_qtoken_t qt) { return ring_[qt % kRingSize]; }
  void Forget(demi_qtoken_t qt, Entry& entry);
  // Writes the result of the done `entry` to `out` and forgets it.
  void Consume(demi_qtoken_t qt, Entry& entry, demi_qresult_t* out);

  uint64_t next_ = 1;  // The next token.
  uint64_t base_ = 1;  // The oldest token the ring may hold.
  size_t live_ = 0;
  std::vector<Entry> ring_ = std::vector<Entry>(kRingSize);
  absl::flat_hash_map<demi_qtoken_t, Entry> old_;
  // Completion order, for TakeNextDone; may hold tokens already taken.
  FifoRing<demi_qtoken_t> done_order_;
};

}  // namespace demi

#endif  // DEMI_DEMI_QTOKEN_TABLE_H_
