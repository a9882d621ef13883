// Queue tokens: one per asynchronous operation, from its start until a
// wait consumes its result.
#ifndef DEMI_DEMI_QTOKEN_TABLE_H_
#define DEMI_DEMI_QTOKEN_TABLE_H_

#include <demi/types.h>
#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/container/flat_hash_map.h"
#include "demi/fifo_ring.h"

namespace demi {

// Not thread-safe; owned by RdmaLibOs.
class QTokenTable {
 public:
  // Tokens count up from `first` (TakeTokenRange: a range of the
  // process's own).
  explicit QTokenTable(uint64_t first = 1) : next_(first) {}

  // Starts a pending operation of `opcode` on `qd` and returns its token
  // (never 0 or UINT64_MAX, never reused).
  demi_qtoken_t Add(int qd, demi_opcode_t opcode) {
    return Start(qd, opcode, Entry::kPending);
  }

  // Adds an operation of `opcode` on `qd` that is done already, with no
  // value (an inline push posted in its call): Add and Succeed in one,
  // with no lookup of the entry just written.
  demi_qtoken_t AddDone(int qd, demi_opcode_t opcode) {
    demi_qtoken_t qt = Start(qd, opcode, Entry::kDone);
    done_order_.push_back(qt);
    return qt;
  }
  // Adds an operation that failed already with `err` (a push on a broken
  // QP): Add and Fail in one.
  demi_qtoken_t AddFailed(int qd, demi_opcode_t opcode, int err) {
    demi_qtoken_t qt = Add(qd, opcode);
    Fail(qt, err);
    return qt;
  }

  // Whether `qt` names an operation whose result has not been taken.
  bool Contains(demi_qtoken_t qt) { return Lookup(qt) != nullptr; }
  bool IsDone(demi_qtoken_t qt);

  // The completions below do nothing if `qt` is not pending.
  // Completes `qt` as DEMI_OPC_FAILED with `err`.
  void Fail(demi_qtoken_t qt, int err);
  // Completes `qt` with `opcode` and nothing more (a push, a connect).
  void Succeed(demi_qtoken_t qt, demi_opcode_t opcode) {
    if (Entry* entry = Pending(qt)) {
      entry->opcode = opcode;
      Finish(qt, *entry);
    }
  }
  // Completes the pop `qt` with one segment: `length` bytes at `data` in
  // the buffer `handle` (the sga's sga_buf), from `from`.
  void CompletePop(demi_qtoken_t qt, void* handle, void* data, uint32_t length,
                   const sockaddr_in& from) {
    if (Entry* entry = Pending(qt)) {
      entry->opcode = DEMI_OPC_POP;
      entry->handle = handle;
      entry->data = data;
      entry->length = length;
      entry->addr = from;
      Finish(qt, *entry);
    }
  }
  // Completes the accept `qt` with the new connection `qd` to `peer`.
  void CompleteAccept(demi_qtoken_t qt, int qd, const sockaddr_in& peer);

  // Forgets `qt` (an operation that never started).
  void Erase(demi_qtoken_t qt);

  // If `qt` is done, removes it and writes its result to `out`; false if
  // it is not done.
  bool Take(demi_qtoken_t qt, demi_qresult_t* out) {
    Entry* entry = Lookup(qt);
    if (entry == nullptr || entry->state != Entry::kDone) return false;
    Consume(qt, *entry, out);
    // Tokens taken by demi_wait stay in done_order_; keep it proportional.
    if (!done_order_.empty() && done_order_.front() == qt) {
      done_order_.pop_front();
    } else if (done_order_.size() > 2 * live_ + 1024) {
      CompactDoneOrder();
    }
    return true;
  }
  // Removes the earliest completed result not yet taken into `out`; false
  // if there is none. Inline: a wait's first look most often finds its
  // result in (an inline push not staged is done as it returns).
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool TakeNextDone(demi_qresult_t* out) {
    while (!done_order_.empty()) {
      demi_qtoken_t qt = done_order_.front();
      done_order_.pop_front();
      Entry* entry = Lookup(qt);
      if (entry != nullptr && entry->state == Entry::kDone) {
        Consume(qt, *entry, out);
        return true;
      }
    }
    return false;
  }

  // The common cases of TakeNextDone and Take, with no call at all (so a
  // wait that finds its result in saves no registers): the result is in
  // the ring, and taking it leaves nothing to tidy. False otherwise, with
  // nothing taken: TakeNextDone or Take then.
  bool TakeNextDoneInRing(demi_qresult_t* out) {
    if (done_order_.empty()) return false;
    demi_qtoken_t qt = done_order_.front();
    Entry& entry = Slot(qt);
    if (entry.qt != qt || entry.state != Entry::kDone) return false;
    done_order_.pop_front();
    TakeFromRing(qt, entry, out);
    return true;
  }
  bool TakeInRing(demi_qtoken_t qt, demi_qresult_t* out) {
    Entry& entry = Slot(qt);
    if (entry.qt != qt || entry.state != Entry::kDone) return false;
    if (!done_order_.empty() && done_order_.front() == qt) {
      done_order_.pop_front();
    } else if (done_order_.size() > 2 * live_ + 1022) {
      return false;  // Take compacts done_order_ (after one less live).
    }
    TakeFromRing(qt, entry, out);
    return true;
  }

  // False if no result is waiting for TakeNextDone (true may be stale).
  bool MayHaveDone() const { return !done_order_.empty(); }

  size_t size() const { return live_; }

  // Calls `give_back(handle)` for the buffer (an sga_buf) of every pop that
  // is done and was never taken: at a libOS's end, nobody will take it.
  template <typename F>
  void ForEachUntakenPop(F&& give_back) const {
    auto visit = [&](const Entry& entry) {
      if (entry.state == Entry::kDone && entry.opcode == DEMI_OPC_POP &&
          entry.handle != nullptr) {
        give_back(entry.handle);
      }
    };
    for (const Entry& entry : ring_) visit(entry);
    for (const auto& old : old_) visit(old.second);
  }

 private:
  // What a result needs, without demi_qresult_t's 244 bytes (mostly
  // segments nobody fills): written out once, by Take or TakeNextDone.
  // 64 bytes, aligned: a slot's address is a shift of its index (no
  // multiply), and an entry is one cache line.
  struct alignas(64) Entry {
    demi_qtoken_t qt = 0;
    void* handle = nullptr;  // DEMI_OPC_POP: sga_buf.
    void* data = nullptr;    // DEMI_OPC_POP: the segment.
    sockaddr_in addr = {};   // The pop's source, the accept's peer.
    demi_opcode_t opcode = DEMI_OPC_INVALID;
    int32_t qd = -1;
    int32_t err = 0;
    uint32_t length = 0;    // DEMI_OPC_POP: the segment's length.
    int32_t accepted = -1;  // DEMI_OPC_ACCEPT: the new connection.
    enum State : uint8_t { kGone, kPending, kDone } state = kGone;
  };
  static_assert(sizeof(Entry) == 64, "an entry is a power of two");
  // Recent tokens live in a ring indexed by token number: no hashing on
  // the hot path. A token still there when a token kRingSize newer wants
  // its slot (a long wait, or a result nobody takes) moves to old_.
  static constexpr uint64_t kRingSize = 1024;

  // Inline for the ring, where nearly every token is found.
  Entry* Lookup(demi_qtoken_t qt) {
    Entry& entry = Slot(qt);
    // Token 0 is never added: its slot's qt is 0 only while it is gone.
    if (entry.qt == qt) return entry.state == Entry::kGone ? nullptr : &entry;
    return old_.empty() ? nullptr : LookupOld(qt);
  }
  Entry* LookupOld(demi_qtoken_t qt);
  // The entry of `qt` if it is pending (not done, not gone).
  Entry* Pending(demi_qtoken_t qt) {
    Entry* entry = Lookup(qt);
    return entry != nullptr && entry->state == Entry::kPending ? entry
                                                               : nullptr;
  }
  // Writes the entry of a new token, in `state`, and returns the token.
  demi_qtoken_t Start(int qd, demi_opcode_t opcode, Entry::State state) {
    demi_qtoken_t qt = next_++;
    Entry& entry = Slot(qt);
    if (entry.state != Entry::kGone) Evict(entry);
    entry.qt = qt;
    entry.state = state;
    entry.opcode = opcode;
    entry.qd = qd;
    entry.err = 0;
    ++live_;
    return qt;
  }
  // Moves the live entry of an older token out of the ring, into old_.
  void Evict(Entry& entry);
  // Marks a pending entry whose result is filled in as done.
  void Finish(demi_qtoken_t qt, Entry& entry) {
    entry.state = Entry::kDone;
    done_order_.push_back(qt);
  }
  Entry& Slot(demi_qtoken_t qt) { return ring_[qt % kRingSize]; }
  // Inline for the ring, where nearly every token is taken.
  void Forget(demi_qtoken_t qt, Entry& entry) {
    --live_;
    if (&entry == &Slot(qt)) {
      entry.state = Entry::kGone;
    } else {
      ForgetOld(qt);
    }
  }
  void ForgetOld(demi_qtoken_t qt);
  // Drops the tokens no longer done (taken by Take) from done_order_.
  void CompactDoneOrder();
  // Writes the result of the done `entry` to `out` and forgets it. Inline
  // in every take: a call per result costs as much as its writes.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Consume(demi_qtoken_t qt, Entry& entry,
                                            demi_qresult_t* out) {
    WriteResult(qt, entry, out);
    Forget(qt, entry);
  }
  // Consume of an entry in the ring.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void TakeFromRing(demi_qtoken_t qt, Entry& entry,
                                                 demi_qresult_t* out) {
    WriteResult(qt, entry, out);
    --live_;
    entry.state = Entry::kGone;
  }
  ABSL_ATTRIBUTE_ALWAYS_INLINE void WriteResult(demi_qtoken_t qt,
                                                const Entry& entry,
                                                demi_qresult_t* out) {
    out->qr_opcode = entry.opcode;
    out->qr_qd = entry.qd;
    out->qr_qt = qt;
    out->qr_ret = entry.err;
    demi_sgarray_t& sga = out->qr_value.sga;
    switch (entry.opcode) {
      case DEMI_OPC_POP:
        sga.sga_buf = entry.handle;
        sga.sga_numsegs = 1;
        sga.sga_segs[0].sgaseg_buf = entry.data;
        sga.sga_segs[0].sgaseg_len = entry.length;
        sga.sga_addr = entry.addr;
        break;
      case DEMI_OPC_ACCEPT:
        out->qr_value.ares.qd = entry.accepted;
        out->qr_value.ares.addr = entry.addr;
        break;
      default:  // No value: an empty sga.
        sga.sga_buf = nullptr;
        sga.sga_numsegs = 0;
        break;
    }
  }

  uint64_t next_;  // The next token.
  size_t live_ = 0;
  std::array<Entry, kRingSize> ring_;  // In place: no pointer to load.
  absl::flat_hash_map<demi_qtoken_t, Entry> old_;
  // Completion order, for TakeNextDone; may hold tokens already taken.
  FifoRing<demi_qtoken_t> done_order_;
};

}  // namespace demi

#endif  // DEMI_DEMI_QTOKEN_TABLE_H_
