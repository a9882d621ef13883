// The registered memory behind demi_sgaalloc, receive buffers and
// rendezvous targets: large slabs registered once with every device's
// protection domain (local write only: nothing in the pool is ever exposed
// to a remote peer) and cut into power-of-two pieces. Each thread's libOS
// has its own pool; a piece lent to the application may be given back from
// any thread (FreeFromOtherThread), and a pool outlives its thread while
// the application still holds its pieces (Retire).
//
// Slabs move between pools, registered as they are (the protection domains
// are the process's): a pool keeps one wholly free slab per size class as
// a spare, and hands any other slab whose pieces are all free to the
// process's depot, where any pool that needs to grow takes it (and cuts it
// anew) before registering memory of its own. A thread that ends gives its
// free slabs there too. The depot keeps at most kDepotBytes, unmapping the
// oldest beyond that, and is unmapped first when the limit needs room: N
// threads that need memory at different times register it about once, and
// after a burst the process keeps at most the spares and the depot.
#ifndef DEMI_DEMI_SGA_POOL_H_
#define DEMI_DEMI_SGA_POOL_H_

#include <infiniband/verbs.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "demi/limits.h"
#include "rdma/verbs_ptr.h"

namespace demi {

inline constexpr int kNumClasses = kMaxClassShift - kMinClassShift + 1;

struct Slab;
class SgaPool;

// One piece of a slab. Reference-counted: the application's hold (from
// demi_sgaalloc or demi_pop) and every operation that uses the piece each
// count one; at zero it goes back to the free list.
struct Buffer {
  std::byte* data = nullptr;
  int32_t refs = 0;
  // While the application holds the piece: the generation in its handle
  // (see SgaPool::Lend); 0 otherwise.
  uint32_t lent = 0;
  uint8_t size_class = 0;
  Slab* slab = nullptr;
};

struct Slab {
  std::byte* base = nullptr;
  size_t size = 0;
  uint8_t size_class = 0;
  // Index in the process's slab table, for handles; it moves with the
  // slab from pool to pool through the depot.
  uint32_t slot = 0;
  std::vector<Buffer> buffers;
  std::vector<Buffer*> free;     // Its free pieces; the last freed last.
  size_t free_count = 0;         // free.size(), beside buffers.size().
  std::vector<rdma::MrPtr> mrs;  // One per device, in device order.
  SgaPool* pool = nullptr;       // Its owner, for BufferRef; null in the depot.
  uint32_t idled = 0;            // Times all its pieces came back.
  absl::Time deposited;          // When it last went to the depot.
};

// A lent buffer's handle is generation:32 | slab slot:(32 -
// kHandlePieceBits) | piece:kHandlePieceBits, so that giving it back needs
// no lookup: index, index, compare.
inline constexpr int kHandlePieceBits = 15;

// Owned by one thread's RdmaLibOs, its owner: only the owner thread may
// call its members, except OwnerOf, FreeFromOtherThread and Retire, which
// any thread may call. Nothing the owner does per message takes a lock.
//
// Destroying a pool directly unmaps its memory at once, pieces lent or
// not, and the depot's slabs registered with its PDs; only do so when no
// other thread may free into it (a test, or a process with one thread). A
// thread that goes away hands its pool to Retire instead.
class SgaPool {
 public:
  // `pds` (borrowed; they must outlive the pool, which may outlive its
  // thread: see Retire) are the devices' protection domains, in device
  // order. All the pools of the process together register at most
  // `limit_bytes`, as this pool counts them. Slabs move through the depot
  // only between pools with the same PDs.
  SgaPool(std::vector<ibv_pd*> pds, size_t limit_bytes);
  ~SgaPool();
  SgaPool(const SgaPool&) = delete;
  SgaPool& operator=(const SgaPool&) = delete;

  // A piece of at least `size` bytes (1 up to 2^kMaxClassShift) with one
  // reference. EINVAL for a size out of range, ENOMEM past the limit (the
  // process's: the other pools' memory counts, and only the depot's slabs
  // and this pool's free ones can be unmapped to make room).
  absl::StatusOr<Buffer*> Allocate(size_t size);
  // Whether a piece of `size` bytes fits under the limit at all: if not,
  // waiting for memory to come back is waiting forever.
  bool CanEverHold(size_t size) const;
  // Whether the process would still register at most half the limit with
  // `size` bytes more: memory for what nobody has asked for yet (a
  // rendezvous read ahead of the pops) is taken only then, so that it
  // leaves at least half the limit to pops.
  bool HasRoomToSpare(size_t size) const {
    return process_registered_bytes() + size <= limit_bytes_ / 2;
  }

  // A free piece of `size_class` with one reference, or null if there is
  // none without growing (then Allocate). Pieces come from one slab of the
  // class until it has none free, then from the fullest (PickSlab): slabs left
  // with few pieces in use (after a burst, receive buffers spread over many)
  // are not handed out again, so they empty and go back. Within a slab the
  // last piece freed comes first, warm in the cache.
  Buffer* TakeFree(int size_class) {
    Slab* slab = current_[size_class];
    if (slab == nullptr || slab->free_count == 0) {
      slab = PickSlab(size_class);
      if (slab == nullptr) return nullptr;
    }
    Buffer* buffer = slab->free.back();
    slab->free.pop_back();
    --slab->free_count;
    buffer->refs = 1;
    return buffer;
  }

  // Drops one reference; the last one returns the piece to its slab's free
  // list. A slab left with no piece in use may go to the depot (not the
  // pool's spare of its class): `buffer` is not to be touched after.
  void Unref(Buffer* buffer) {
    if (--buffer->refs == 0) {
      Slab* slab = buffer->slab;
      slab->free.push_back(buffer);
      if (++slab->free_count == slab->buffers.size()) SlabIdle(slab);
    }
  }

  // The application holds `buffer` (and its reference) from now on: returns
  // the opaque handle for the sga's sga_buf.
  void* Lend(Buffer* buffer) {
    uint32_t generation = next_generation_++;
    if (next_generation_ == 0) next_generation_ = 1;
    buffer->lent = generation;
    ++lent_count_;
    uint64_t piece =
        static_cast<uint64_t>(buffer - buffer->slab->buffers.data());
    uint64_t handle = uint64_t{generation} << 32 |
                      uint64_t{buffer->slab->slot} << kHandlePieceBits | piece;
    return reinterpret_cast<void*>(static_cast<uintptr_t>(handle));
  }
  // The buffer the application holds under `handle`, which it gives back
  // (with its reference, for the caller to drop); null if `handle` is not
  // one the application holds from this pool: never lent, given back
  // already, another pool's, or garbage.
  Buffer* Reclaim(const void* handle);

  // The pool whose slab `handle` names, or null (garbage, or a slab since
  // unmapped or in the depot). A slab that moved names its new pool, which
  // refuses the old handle. Any thread. A pool does not mean a live handle: the
  // pool checks that when it reclaims it. The pool stays valid to call
  // FreeFromOtherThread on, even once retired and released.
  static SgaPool* OwnerOf(const void* handle);
  // Whether [addr, addr + length) touches a slab of any pool of the
  // process (or the depot's): memory whose pieces a pool hands out, and
  // which no push may send in place without holding them. Any thread; takes
  // a lock.
  static bool InAnySlab(const void* addr, size_t length);
  // Gives back, from a thread other than the owner, the piece lent under
  // `handle` and its reference. Any thread. The owner frees it at its next
  // DrainOtherThreadFrees (a handle no longer lent by then is dropped);
  // a retired pool frees it here. Returns 0, or EINVAL if `handle` names no
  // slab of this pool (or, retired, no piece lent under it).
  int FreeFromOtherThread(const void* handle);
  // Whether other threads have handed frees over since the last drain: a
  // wait about to sleep drains first. Owner only.
  bool HasOtherThreadFrees() const {
    return handoff_pending_.load(std::memory_order_acquire);
  }
  // Frees what other threads handed over: the owner's progress engine calls
  // it every pass (one load when there is nothing). An owner asleep when a
  // free arrives is not woken: it frees at its next pass. Owner only.
  void DrainOtherThreadFrees() {
    if (HasOtherThreadFrees()) DrainHandoff();
  }

  // The owner thread is going away, and with it every reference but the
  // application's holds. Its slabs with no piece lent go to the depot now;
  // the others stay valid (and registered) for the application, and each
  // goes to the depot when its last piece is given back
  // (FreeFromOtherThread, from any thread). Either way the SgaPool object
  // is kept for the life of the process (a few hundred bytes per thread
  // that ever had a pool): a thread that has just read it from OwnerOf may
  // still call it. Call it from the owner thread.
  static void Retire(std::unique_ptr<SgaPool> pool);

  // The live piece that holds all of [addr, addr + length), if any.
  Buffer* Find(const void* addr, size_t length) const;
  // The same, looking first in the piece lent under `handle` (an sga's
  // sga_buf, which may be anything).
  Buffer* Find(const void* handle, const void* addr, size_t length) const;

  // The lkey of `buffer` on device `device`.
  static uint32_t Lkey(const Buffer* buffer, int device) {
    return buffer->slab->mrs[device]->lkey;
  }

  // What this pool has registered.
  size_t registered_bytes() const { return registered_bytes_; }
  // What all the pools of the process have registered, the depot
  // included. Any thread.
  static size_t process_registered_bytes();
  // What the depot holds (counted in process_registered_bytes). Any thread.
  static size_t depot_bytes();
  // Slabs the process has mapped and registered since it started (not
  // counting those taken from the depot). Any thread.
  static size_t process_slabs_mapped();
  // Deregisters and unmaps every slab in the depot (tests; a process that
  // wants its memory back at once). Any thread.
  static void ReleaseDepot();
  // Deregisters and unmaps the depot's slabs that have been idle there for
  // kDepotIdleTime by `now` (rdma::MonotonicNow, as every time here): a burst's
  // memory is reused by the next one soon after, and given back when none
  // comes. Any thread; the progress engines call it with their timers (one load
  // with an empty depot).
  static void ReleaseIdleDepot(absl::Time now);
  // When ReleaseIdleDepot will next have something to do (InfiniteFuture:
  // the depot is empty): a thread about to sleep wakes for it. Any thread.
  static absl::Time NextDepotRelease();
  // Gives to the depot each spare slab that has had no piece in use since
  // `now` - kDepotIdleTime (as far as these calls saw: call them now and
  // then): a pool that stopped using a class keeps none of it. Owner only.
  void ReleaseIdleSpares(absl::Time now);
  // When ReleaseIdleSpares will next have something to do (a spare not
  // watched yet: kDepotIdleTime from `now`). Owner only.
  absl::Time NextSpareRelease(absl::Time now) const;
  // Pieces the application holds (lent and not reclaimed). Owner only.
  size_t lent_count() const { return lent_count_; }
  // Handles given to FreeFromOtherThread that were not lent any more when
  // their turn came (freed twice, or garbage that named a slab of ours).
  // Owner only (or once nobody frees into a retired pool).
  size_t dropped_other_thread_frees() const { return dropped_frees_; }

 private:
  // The piece lent under `handle`, if the application holds it.
  Buffer* LentUnder(const void* handle) const;
  // Reclaims and unrefs what is in draining_, then empties it.
  void FreeDraining();
  void DrainHandoff();
  absl::Status Grow(int size_class);
  // Makes the slab of `size_class` with the fewest free pieces (but an
  // eighth of them, if one has that many) the one TakeFree takes from, and
  // returns it; null if none has any. Out of line: once per slab filled.
  Slab* PickSlab(int size_class);
  // Takes a slab of `slab_size` bytes from the depot, if it has one
  // registered with this pool's PDs.
  std::unique_ptr<Slab> TakeFromDepot(size_t slab_size);
  // Cuts `slab` (mapped and registered, its slot reserved) into pieces of
  // `size_class`, puts them on the free list and takes the slab's slot.
  void Adopt(std::unique_ptr<Slab> slab, int size_class);
  // `slab` has no piece in use: kept as its class's spare, or given to the
  // depot. Out of line: the free path only compares counts.
  void SlabIdle(Slab* slab);
  // Drops `slab` (no piece in use) from the free list, the spares and the
  // address map.
  void Unlist(Slab* slab);
  // Takes `slab` (no piece in use) out of the pool, and gives up its slot.
  std::unique_ptr<Slab> Remove(Slab* slab);
  // Gives every slab with no piece in use to the depot.
  void DepositIdleSlabs();
  // Unmaps depot slabs, then slabs of this pool (of any class) whose
  // pieces are all free, until `needed` more bytes fit under the limit.
  // Returns whether they do, and if so has counted them for the caller.
  bool Trim(size_t needed);
  // Deregisters and unmaps `slab`, gives back its slot and its bytes;
  // the caller drops it from its lists.
  void Unmap(Slab* slab);
  void UnmapAll();

  std::vector<ibv_pd*> pds_;
  size_t limit_bytes_;
  size_t registered_bytes_ = 0;
  std::vector<std::unique_ptr<Slab>> slabs_;
  std::map<uintptr_t, Slab*> slabs_by_address_;
  // The next handle's generation: a handle given back, or one from a
  // trimmed slab, never names a later holder's piece (until 2^32 lends).
  uint32_t next_generation_ = 1;
  size_t lent_count_ = 0;
  size_t dropped_frees_ = 0;
  // Per class, the slab TakeFree takes from (see PickSlab).
  Slab* current_[kNumClasses] = {};
  // Per class, the one slab with no piece in use that the pool keeps (if
  // it still has none in use), so that a steady allocate-free never moves
  // slabs through the depot.
  Slab* spare_[kNumClasses] = {};
  // Per class, the spare ReleaseIdleSpares watches, its `idled` then, and
  // since when.
  struct SpareWatch {
    const Slab* slab = nullptr;
    uint32_t idled = 0;
    absl::Time since;
  };
  SpareWatch spare_watch_[kNumClasses];

  // Other threads' frees (FreeFromOtherThread). The owner takes the mutex
  // only when the flag says there is something, outside its fast path.
  // std::mutex, not absl::Mutex: ThreadSanitizer sees pthread's, and not
  // the uninstrumented system Abseil's.
  std::mutex handoff_mutex_;
  std::vector<const void*> handoff_;  // Guarded by handoff_mutex_.
  std::atomic<bool> handoff_pending_{false};
  // Owner only: swapped with handoff_, so that neither reallocates.
  std::vector<const void*> draining_;
  // Retired, nobody owns the pool: the pool's state is under the mutex,
  // and those who free do what the owner would. Released: unmapped.
  // Both guarded by handoff_mutex_.
  bool retired_ = false;
  bool released_ = false;
};

// The size class of a piece of `size` bytes (1 <= size <= 2^kMaxClassShift):
// the smallest class whose pieces hold it. Inline and loop-free: every
// allocation asks it, receive refills once per buffer.
inline int SizeClassOf(size_t size) {
  if (size <= (size_t{1} << kMinClassShift)) return 0;
  // The bits of size - 1 are the shift of the power of two at or above.
  return (64 - __builtin_clzll(static_cast<uint64_t>(size - 1))) -
         kMinClassShift;
}

}  // namespace demi

#endif  // DEMI_DEMI_SGA_POOL_H_
