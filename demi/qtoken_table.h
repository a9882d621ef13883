// Queue tokens: one per asynchronous operation, from its start until a
// wait consumes its result.
#ifndef DEMI_DEMI_QTOKEN_TABLE_H_
#define DEMI_DEMI_QTOKEN_TABLE_H_

#include <demi/types.h>

#include <cstdint>
#include <deque>

#include "absl/container/flat_hash_map.h"
#include "absl/types/optional.h"

namespace demi {

// Not thread-safe; owned by RdmaLibOs.
class QTokenTable {
 public:
  // Starts a pending operation of `opcode` on `qd` and returns its token
  // (never 0 or UINT64_MAX, never reused).
  demi_qtoken_t Add(int qd, demi_opcode_t opcode);

  // Whether `qt` names an operation whose result has not been taken.
  bool Contains(demi_qtoken_t qt) const { return entries_.contains(qt); }
  bool IsDone(demi_qtoken_t qt) const;

  // Completes the pending operation `qt` with `result` (whose opcode, qd and
  // token fields are filled in here). Does nothing if `qt` is not pending.
  void Complete(demi_qtoken_t qt, demi_qresult_t result);
  // Completes `qt` as DEMI_OPC_FAILED with `err`.
  void Fail(demi_qtoken_t qt, int err);

  // Forgets `qt` (an operation that never started).
  void Erase(demi_qtoken_t qt) { entries_.erase(qt); }

  // If `qt` is done, removes it and returns its result.
  absl::optional<demi_qresult_t> Take(demi_qtoken_t qt);
  // Removes and returns the earliest completed result not yet taken.
  absl::optional<demi_qresult_t> TakeNextDone();

  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    bool done = false;
    demi_qresult_t result = {};
  };

  uint64_t next_ = 1;
  absl::flat_hash_map<demi_qtoken_t, Entry> entries_;
  // Completion order, for TakeNextDone; may hold tokens already taken.
  std::deque<demi_qtoken_t> done_order_;
};

}  // namespace demi

#endif  // DEMI_DEMI_QTOKEN_TABLE_H_
