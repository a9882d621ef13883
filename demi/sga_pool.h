// The registered memory behind demi_sgaalloc, receive buffers and
// rendezvous targets: large slabs registered once with every device's
// protection domain (local write only: nothing in the pool is ever exposed
// to a remote peer) and cut into power-of-two pieces.
#ifndef DEMI_DEMI_SGA_POOL_H_
#define DEMI_DEMI_SGA_POOL_H_

#include <infiniband/verbs.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
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
  uint32_t slot = 0;  // Index in SgaPool's slab table, for handles.
  std::vector<Buffer> buffers;
  size_t free_count = 0;         // Pieces on the free list.
  std::vector<rdma::MrPtr> mrs;  // One per device, in device order.
  SgaPool* pool = nullptr;       // Its owner, for BufferRef.
};

// Not thread-safe; owned by RdmaLibOs.
class SgaPool {
 public:
  // `pds` (borrowed) are the devices' protection domains, in device order.
  // The pool registers at most `limit_bytes` in all.
  SgaPool(std::vector<ibv_pd*> pds, size_t limit_bytes);
  ~SgaPool();
  SgaPool(const SgaPool&) = delete;
  SgaPool& operator=(const SgaPool&) = delete;

  // A piece of at least `size` bytes (1 up to 2^kMaxClassShift) with one
  // reference. EINVAL for a size out of range, ENOMEM past the limit.
  absl::StatusOr<Buffer*> Allocate(size_t size);
  // Whether a piece of `size` bytes fits under the limit at all: if not,
  // waiting for memory to come back is waiting forever.
  bool CanEverHold(size_t size) const;

  // A free piece of `size_class` with one reference, or null if there is
  // none without growing (then Allocate).
  Buffer* TakeFree(int size_class) {
    std::vector<Buffer*>& list = free_[size_class];
    if (list.empty()) return nullptr;
    Buffer* buffer = list.back();
    list.pop_back();
    --buffer->slab->free_count;
    buffer->refs = 1;
    return buffer;
  }

  // Drops one reference; the last one returns the piece to its free list.
  void Unref(Buffer* buffer);

  // The application holds `buffer` (and its reference) from now on: returns
  // the opaque handle for the sga's sga_buf.
  void* Lend(Buffer* buffer);
  // The buffer the application holds under `handle`, which it gives back
  // (with its reference, for the caller to drop); null if `handle` is not
  // one the application holds: never lent, given back already, or garbage.
  Buffer* Reclaim(const void* handle);

  // The live piece that holds all of [addr, addr + length), if any.
  Buffer* Find(const void* addr, size_t length) const;
  // The same, looking first in the piece lent under `handle` (an sga's
  // sga_buf, which may be anything).
  Buffer* Find(const void* handle, const void* addr, size_t length) const;

  // The lkey of `buffer` on device `device`.
  static uint32_t Lkey(const Buffer* buffer, int device) {
    return buffer->slab->mrs[device]->lkey;
  }

  size_t registered_bytes() const { return registered_bytes_; }

 private:
  // The piece lent under `handle`, if the application holds it.
  Buffer* LentUnder(const void* handle) const;
  absl::Status Grow(int size_class);
  // Unmaps slabs (of any class) whose pieces are all free, until `needed`
  // more bytes fit under the limit. Returns whether they do.
  bool Trim(size_t needed);

  std::vector<ibv_pd*> pds_;
  size_t limit_bytes_;
  size_t registered_bytes_ = 0;
  std::vector<std::unique_ptr<Slab>> slabs_;
  std::map<uintptr_t, Slab*> slabs_by_address_;
  // Slabs by Slab::slot (null where one was trimmed), and the free slots.
  std::vector<Slab*> slab_slots_;
  std::vector<uint32_t> free_slab_slots_;
  // The next handle's generation: a handle given back, or one from a
  // trimmed slab, never names a later holder's piece (until 2^32 lends).
  uint32_t next_generation_ = 1;
  std::vector<Buffer*> free_[kNumClasses];
};

// The size class of a piece of `size` bytes (size >= 1).
int SizeClassOf(size_t size);

}  // namespace demi

#endif  // DEMI_DEMI_SGA_POOL_H_
