// Puts fragmented datagrams back together. Bounded in entries, bytes and
// time, as IP reassembly is: a datagram whose fragments do not all arrive
// within the timeout is dropped, and when the table is full the oldest
// partial datagram makes room (so a flood of first fragments costs at most
// the table, never unbounded memory). Pure logic: fragments in, whole
// datagrams (one pool piece each) out.
#ifndef DEMI_DEMI_REASSEMBLY_H_
#define DEMI_DEMI_REASSEMBLY_H_

#include <bitset>
#include <cstddef>
#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "demi/buffer_ref.h"
#include "demi/datagram_wire.h"
#include "demi/limits.h"
#include "demi/sga_pool.h"

namespace demi {

struct ReassemblyLimits {
  uint32_t max_entries = kReassemblyEntries;
  size_t max_bytes = kReassemblyBytes;
  absl::Duration timeout = kReassemblyTimeout;
};

// What reassembly dropped, by cause (counted once per datagram).
struct ReassemblyDrops {
  uint64_t timed_out = 0;     // Fragments missing at the timeout.
  uint64_t evicted = 0;       // Made room for newer datagrams.
  uint64_t inconsistent = 0;  // Fragments that disagree with the first.
  uint64_t no_memory = 0;     // The pool had no buffer for it.
  uint64_t duplicates = 0;    // Fragments received twice (ignored).
};

// A whole datagram: a pool piece (one reference, the caller's) holding
// `length` bytes at its start.
struct Reassembled {
  BufferRef buffer;
  uint32_t length = 0;
};

// Not thread-safe.
class Reassembly {
 public:
  Reassembly(SgaPool* pool, ReassemblyLimits limits)
      : pool_(pool), limits_(limits) {}
  Reassembly(const Reassembly&) = delete;
  Reassembly& operator=(const Reassembly&) = delete;

  // Takes one fragment of a multi-fragment datagram (ParseFragment checked
  // it) that arrived at `now` from QP `source_qpn`. Returns the datagram
  // once its last missing fragment is in. The QP is part of a datagram's
  // identity: its sender posts every fragment on one QP, so fragments that
  // claim its address, port and id from another QP (another process on
  // its host) can neither fill in nor spoil the real datagram.
  absl::optional<Reassembled> Add(const Fragment& fragment, uint32_t source_qpn,
                                  absl::Time now);
  // The same for callers with no QP to name (the fuzzer): all from one.
  absl::optional<Reassembled> Add(const Fragment& fragment, absl::Time now) {
    return Add(fragment, 0, now);
  }
  // Drops the datagrams whose time ran out at `now`.
  void Expire(absl::Time now);

  size_t entries() const { return entries_.size(); }
  size_t bytes() const { return bytes_; }
  const ReassemblyDrops& drops() const { return drops_; }

 private:
  struct Key {
    uint32_t addr;
    uint16_t port;
    uint32_t id;
    uint32_t qpn;
    bool operator==(const Key& o) const {
      return addr == o.addr && port == o.port && id == o.id && qpn == o.qpn;
    }
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.addr, k.port, k.id, k.qpn);
    }
  };
  struct Entry {
    BufferRef buffer;
    uint32_t total_length = 0;
    uint32_t fragment_count = 0;
    uint32_t fragment_size = 0;
    uint32_t received = 0;
    absl::Time started;
    std::bitset<kMaxFragments> have;
  };

  // Makes room for a datagram of `length` bytes: evicts the oldest until
  // it fits. Returns false if it never can.
  bool MakeRoom(uint32_t length);
  void Drop(absl::flat_hash_map<Key, Entry>::iterator it);

  SgaPool* pool_;
  ReassemblyLimits limits_;
  absl::flat_hash_map<Key, Entry> entries_;
  size_t bytes_ = 0;
  ReassemblyDrops drops_;
};

}  // namespace demi

#endif  // DEMI_DEMI_REASSEMBLY_H_
