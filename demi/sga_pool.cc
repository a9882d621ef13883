#include "demi/sga_pool.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <iterator>
#include <map>
#include <utility>

#include "absl/base/attributes.h"
#include "demi/buffer_ref.h"
#include "rdma/clock.h"
#include "rdma/log.h"
#include "rdma/status_util.h"

namespace demi {

namespace {

constexpr int kPieceBits = kHandlePieceBits;
constexpr int kSlotBits = 32 - kPieceBits;
constexpr uint32_t kNumSlots = uint32_t{1} << kSlotBits;
static_assert((kSlabSize >> kMinClassShift) <= (size_t{1} << kPieceBits),
              "a slab's pieces are numbered within kPieceBits");

// std::mutex for ThreadSanitizer: see SgaPool::handoff_mutex_.
ABSL_CONST_INIT std::mutex slots_mutex;

// The slab table is the process's, not a pool's: any thread can tell from
// a handle which pool lent it (OwnerOf) without reading that pool's own
// data, and a pool refuses another's handle by the owner alone.
// A slot stays with its slab through the depot: while the slab is there,
// the slot has no owner (and no slab), and the pool that takes the slab
// owns the slot again.
struct SlabSlot {
  std::atomic<SgaPool*> owner{nullptr};
  // Written and read by the owner only (or, retired, under its handoff
  // mutex); a slot changes hands through slots_mutex (a slab, through the
  // depot's mutex), which orders one owner's writes before the next's.
  Slab* slab = nullptr;
  // The generation its last owner would have lent next (0: none yet).
  // Generations are a pool's, so the next owner starts from here: a stale
  // handle from the last one never names the new owner's piece (within
  // 2^32 lends, as in one pool).
  uint32_t next_generation = 0;  // Guarded by slots_mutex.
  // The slab's memory while it is mapped (0: none), as slab_index has it.
  // Guarded by slots_mutex.
  uintptr_t base = 0;
  size_t size = 0;
};
// 3 MiB of zeroes until used: only the touched pages are ever resident.
ABSL_CONST_INIT SlabSlot slab_slots[kNumSlots];

// Allocated once, never freed: pools come and go until the process's very
// end, and retired pools must stay reachable (for LeakSanitizer too).
// All three guarded by slots_mutex.
std::vector<uint32_t>* free_slots = nullptr;
uint32_t next_slot = 0;
std::vector<SgaPool*>* retired_pools = nullptr;
// Every mapped slab by the address it starts at: its slot. For the rare
// question of whose memory an address is (SgaPool::InAnySlab).
std::map<uintptr_t, uint32_t>* slab_index = nullptr;

std::atomic<size_t> process_registered{0};
std::atomic<size_t> slabs_mapped{0};

// The depot: slabs no pool holds, still mapped and registered (with the
// process's PDs, which every pool shares), oldest first. Allocated once,
// never freed, like free_slots. Guarded by depot_mutex, taken only when a
// slab moves in or out: under a retired pool's handoff mutex, never the
// other way round, and never together with slots_mutex.
ABSL_CONST_INIT std::mutex depot_mutex;
std::deque<std::unique_ptr<Slab>>* depot = nullptr;
// The depot's bytes: written under depot_mutex, read by anyone.
std::atomic<size_t> depot_size{0};
// When the depot's oldest slab went there (ns of rdma::MonotonicNow; INT64_MAX:
// empty): written under depot_mutex, read by anyone, so that the timers of
// every thread need not take the mutex to learn that nothing is old enough.
std::atomic<int64_t> depot_oldest_ns{INT64_MAX};

// After a change to the depot; under depot_mutex.
void NoteOldest() {
  depot_oldest_ns.store(
      depot->empty() ? INT64_MAX : absl::ToUnixNanos(depot->front()->deposited),
      std::memory_order_relaxed);
}

uint32_t SlotOf(uint64_t bits) {
  return static_cast<uint32_t>(bits) >> kPieceBits;
}

// Counts `bytes` as registered if they fit under `limit` with what every
// pool has.
bool Reserve(size_t bytes, size_t limit) {
  size_t total = process_registered.load(std::memory_order_relaxed);
  do {
    if (bytes > limit || total > limit - bytes) return false;
  } while (!process_registered.compare_exchange_weak(
      total, total + bytes, std::memory_order_relaxed));
  return true;
}

// A free slot, and moves `next_generation` past every handle it was in.
bool TakeSlot(uint32_t* slot, uint32_t* next_generation) {
  std::lock_guard<std::mutex> lock(slots_mutex);
  if (free_slots != nullptr && !free_slots->empty()) {
    *slot = free_slots->back();
    free_slots->pop_back();
  } else if (next_slot < kNumSlots) {
    *slot = next_slot++;
  } else {
    return false;
  }
  uint32_t floor = slab_slots[*slot].next_generation;
  // Compared as a distance, so that a counter that wrapped still moves on.
  if (floor != 0 && static_cast<int32_t>(floor - *next_generation) > 0) {
    *next_generation = floor;
  }
  return true;
}

// The slot's owner lets it go, its slab staying mapped (to the depot):
// from here on no handle it lent names anything. The slot stays reserved.
void LeaveSlot(uint32_t slot, uint32_t next_generation) {
  // The owner goes first: a racing OwnerOf then sees no pool, or one that
  // refuses the handle.
  slab_slots[slot].owner.store(nullptr, std::memory_order_release);
  slab_slots[slot].slab = nullptr;
  std::lock_guard<std::mutex> lock(slots_mutex);
  slab_slots[slot].next_generation = next_generation;
}

// Notes the slab of `slot`, mapped at `base`, in slab_index.
void IndexSlab(uint32_t slot, const std::byte* base, size_t size) {
  std::lock_guard<std::mutex> lock(slots_mutex);
  if (slab_index == nullptr) slab_index = new std::map<uintptr_t, uint32_t>();
  slab_slots[slot].base = reinterpret_cast<uintptr_t>(base);
  slab_slots[slot].size = size;
  (*slab_index)[slab_slots[slot].base] = slot;
}

// A slot left with LeaveSlot (its slab unmapped) can be taken again.
void FreeSlot(uint32_t slot) {
  std::lock_guard<std::mutex> lock(slots_mutex);
  if (slab_slots[slot].base != 0) {
    // A slab mapped since at the same address (this one's memory went
    // before its slot) has the entry now: it stays.
    auto it = slab_index->find(slab_slots[slot].base);
    if (it != slab_index->end() && it->second == slot) slab_index->erase(it);
    slab_slots[slot].base = 0;
    slab_slots[slot].size = 0;
  }
  if (free_slots == nullptr) free_slots = new std::vector<uint32_t>();
  free_slots->push_back(slot);
}

void GiveBackSlot(uint32_t slot, uint32_t next_generation) {
  LeaveSlot(slot, next_generation);
  FreeSlot(slot);
}

// A pool takes over a slot left with LeaveSlot: `next_generation` moves
// past every handle its last owner lent.
void EnterSlot(uint32_t slot, uint32_t* next_generation) {
  std::lock_guard<std::mutex> lock(slots_mutex);
  uint32_t floor = slab_slots[slot].next_generation;
  if (floor != 0 && static_cast<int32_t>(floor - *next_generation) > 0) {
    *next_generation = floor;
  }
}

// Deregisters and unmaps a slab no pool holds (the depot's), and frees its
// slot.
void UnmapIdle(std::unique_ptr<Slab> slab) {
  slab->mrs.clear();  // Deregister before the memory goes.
  munmap(slab->base, slab->size);
  process_registered.fetch_sub(slab->size, std::memory_order_relaxed);
  FreeSlot(slab->slot);
}

// The depot's oldest slab, or null.
std::unique_ptr<Slab> TakeOldest() {
  std::lock_guard<std::mutex> lock(depot_mutex);
  if (depot == nullptr || depot->empty()) return nullptr;
  std::unique_ptr<Slab> slab = std::move(depot->front());
  depot->pop_front();
  depot_size.fetch_sub(slab->size, std::memory_order_relaxed);
  NoteOldest();
  return slab;
}

// Puts `slab` (out of its pool, slot left) in the depot, and unmaps the
// oldest beyond kDepotBytes.
void Deposit(std::unique_ptr<Slab> slab) {
  std::vector<std::unique_ptr<Slab>> evicted;
  {
    std::lock_guard<std::mutex> lock(depot_mutex);
    if (depot == nullptr) depot = new std::deque<std::unique_ptr<Slab>>();
    size_t size = depot_size.load(std::memory_order_relaxed) + slab->size;
    slab->deposited = rdma::MonotonicNow();
    depot->push_back(std::move(slab));
    while (size > kDepotBytes) {
      size -= depot->front()->size;
      evicted.push_back(std::move(depot->front()));
      depot->pop_front();
    }
    depot_size.store(size, std::memory_order_relaxed);
    NoteOldest();
  }
  // Outside the mutex: deregistering can take a while.
  for (auto& old : evicted) UnmapIdle(std::move(old));
}

}  // namespace

SgaPool::SgaPool(std::vector<ibv_pd*> pds, size_t limit_bytes)
    : pds_(std::move(pds)), limit_bytes_(limit_bytes) {}

SgaPool::~SgaPool() {
  UnmapAll();
  // The slabs it gave the depot are registered with its PDs, which its
  // owner may free next (a test's pool: the libOS's PDs live as long as
  // the process, and its pools retire instead). They go with it.
  if (pds_.empty()) return;
  std::vector<std::unique_ptr<Slab>> mine;
  {
    std::lock_guard<std::mutex> lock(depot_mutex);
    if (depot == nullptr) return;
    for (auto it = depot->begin(); it != depot->end();) {
      const Slab& slab = **it;
      if (slab.mrs.empty() || slab.mrs[0]->pd != pds_[0]) {
        ++it;
        continue;
      }
      depot_size.fetch_sub(slab.size, std::memory_order_relaxed);
      mine.push_back(std::move(*it));
      it = depot->erase(it);
    }
    NoteOldest();
  }
  for (auto& slab : mine) UnmapIdle(std::move(slab));
}

size_t SgaPool::process_registered_bytes() {
  return process_registered.load(std::memory_order_relaxed);
}

size_t SgaPool::depot_bytes() {
  return depot_size.load(std::memory_order_relaxed);
}

size_t SgaPool::process_slabs_mapped() {
  return slabs_mapped.load(std::memory_order_relaxed);
}

void SgaPool::ReleaseDepot() {
  while (std::unique_ptr<Slab> slab = TakeOldest()) UnmapIdle(std::move(slab));
}

absl::Time SgaPool::NextDepotRelease() {
  int64_t oldest = depot_oldest_ns.load(std::memory_order_relaxed);
  if (oldest == INT64_MAX) return absl::InfiniteFuture();
  return absl::FromUnixNanos(oldest) + kDepotIdleTime;
}

void SgaPool::ReleaseIdleDepot(absl::Time now) {
  if (now < NextDepotRelease()) return;
  std::vector<std::unique_ptr<Slab>> idle;
  {
    std::lock_guard<std::mutex> lock(depot_mutex);
    // Oldest first: the idle ones are at the front.
    while (!depot->empty() &&
           now - depot->front()->deposited >= kDepotIdleTime) {
      depot_size.fetch_sub(depot->front()->size, std::memory_order_relaxed);
      idle.push_back(std::move(depot->front()));
      depot->pop_front();
    }
    NoteOldest();
  }
  // Outside the mutex: deregistering can take a while.
  for (auto& slab : idle) UnmapIdle(std::move(slab));
}

absl::StatusOr<Buffer*> SgaPool::Allocate(size_t size) {
  if (size == 0 || size > (size_t{1} << kMaxClassShift)) {
    return rdma::ErrnoError(EINVAL, "buffer size out of range");
  }
  int size_class = SizeClassOf(size);
  if (Buffer* buffer = TakeFree(size_class)) return buffer;
  DEMI_RETURN_IF_ERROR(Grow(size_class));
  return TakeFree(size_class);
}

Slab* SgaPool::PickSlab(int size_class) {
  // The fullest slab with at least an eighth of its pieces free, so that
  // the next scan is that many takes away (the fullest of all has often
  // one piece just freed: a scan per take or two, measured); only if none
  // has that many, the fullest with any.
  Slab* best = nullptr;
  Slab* any = nullptr;
  for (const auto& slab : slabs_) {
    if (slab->size_class != size_class || slab->free_count == 0) continue;
    if (any == nullptr || slab->free_count < any->free_count) any = slab.get();
    if (slab->free_count * 8 >= slab->buffers.size() &&
        (best == nullptr || slab->free_count < best->free_count)) {
      best = slab.get();
    }
  }
  if (best == nullptr) best = any;
  current_[size_class] = best;
  return best;
}

bool SgaPool::CanEverHold(size_t size) const {
  if (size == 0 || size > (size_t{1} << kMaxClassShift)) return false;
  size_t piece = size_t{1} << (SizeClassOf(size) + kMinClassShift);
  return std::max(piece, kSlabSize) <= limit_bytes_;
}

void BufferRef::GiveBack(Buffer* buffer) { buffer->slab->pool->Unref(buffer); }

Buffer* SgaPool::LentUnder(const void* handle) const {
  uint64_t bits = reinterpret_cast<uintptr_t>(handle);
  uint32_t generation = static_cast<uint32_t>(bits >> 32);
  uint32_t piece = static_cast<uint32_t>(bits) & ((1u << kPieceBits) - 1);
  if (generation == 0) return nullptr;
  const SlabSlot& slot = slab_slots[SlotOf(bits)];
  // Relaxed: only this pool stores itself there, so seeing itself is
  // seeing its own write, and its `slab` is then set.
  if (slot.owner.load(std::memory_order_relaxed) != this) return nullptr;
  Slab* slab = slot.slab;
  if (piece >= slab->buffers.size()) return nullptr;
  Buffer* buffer = &slab->buffers[piece];
  return buffer->lent == generation ? buffer : nullptr;
}

Buffer* SgaPool::Reclaim(const void* handle) {
  Buffer* buffer = LentUnder(handle);
  if (buffer != nullptr) {
    buffer->lent = 0;
    --lent_count_;
  }
  return buffer;
}

bool SgaPool::InAnySlab(const void* addr, size_t length) {
  uintptr_t start = reinterpret_cast<uintptr_t>(addr);
  std::lock_guard<std::mutex> lock(slots_mutex);
  if (slab_index == nullptr) return false;
  auto after = slab_index->upper_bound(start);
  // One that starts inside the range, or the one it starts in.
  if (after != slab_index->end() && after->first - start < length) return true;
  if (after == slab_index->begin()) return false;
  const SlabSlot& slot = slab_slots[std::prev(after)->second];
  return start - slot.base < slot.size;
}

SgaPool* SgaPool::OwnerOf(const void* handle) {
  uint64_t bits = reinterpret_cast<uintptr_t>(handle);
  if ((bits >> 32) == 0) return nullptr;
  return slab_slots[SlotOf(bits)].owner.load(std::memory_order_acquire);
}

int SgaPool::FreeFromOtherThread(const void* handle) {
  if (OwnerOf(handle) != this) return EINVAL;
  bool unmap = false;
  {
    std::lock_guard<std::mutex> lock(handoff_mutex_);
    if (!retired_) {
      handoff_.push_back(handle);
      handoff_pending_.store(true, std::memory_order_release);
      return 0;
    }
    // Released between OwnerOf and the lock: its slabs are going.
    if (released_) return EINVAL;
    Buffer* buffer = Reclaim(handle);
    if (buffer == nullptr) {
      ++dropped_frees_;
      return EINVAL;
    }
    Unref(buffer);
    unmap = released_ = lent_count_ == 0;
  }
  // Outside the mutex: released_ keeps everyone else off the slabs, and
  // deregistering can take a while.
  if (unmap) UnmapAll();
  return 0;
}

void SgaPool::FreeDraining() {
  for (const void* handle : draining_) {
    if (Buffer* buffer = Reclaim(handle)) {
      Unref(buffer);
    } else {
      ++dropped_frees_;
    }
  }
  draining_.clear();
}

void SgaPool::DrainHandoff() {
  {
    std::lock_guard<std::mutex> lock(handoff_mutex_);
    draining_.swap(handoff_);
    handoff_pending_.store(false, std::memory_order_relaxed);
  }
  FreeDraining();
}

void SgaPool::Retire(std::unique_ptr<SgaPool> pool) {
  if (pool == nullptr) return;
  SgaPool* retired = pool.release();
  {
    std::lock_guard<std::mutex> lock(slots_mutex);
    if (retired_pools == nullptr) retired_pools = new std::vector<SgaPool*>();
    retired_pools->push_back(retired);
  }
  bool unmap;
  {
    std::lock_guard<std::mutex> lock(retired->handoff_mutex_);
    // The owner's last drain, under the mutex so that no free slips in
    // between it and retired_.
    retired->draining_.swap(retired->handoff_);
    retired->handoff_pending_.store(false, std::memory_order_relaxed);
    retired->FreeDraining();
    retired->retired_ = true;
    // Under the mutex: a thread that frees into the retired pool from now
    // on finds these slabs gone from it (LentUnder), never the piece of
    // whichever pool takes them next.
    retired->DepositIdleSlabs();
    unmap = retired->released_ = retired->lent_count_ == 0;
  }
  if (unmap) retired->UnmapAll();
}

Buffer* SgaPool::Find(const void* handle, const void* addr,
                      size_t length) const {
  // The segment is usually in the piece its sga was lent with: no search.
  if (Buffer* buffer = LentUnder(handle)) {
    uintptr_t start = reinterpret_cast<uintptr_t>(addr);
    uintptr_t piece_start = reinterpret_cast<uintptr_t>(buffer->data);
    size_t piece = size_t{1} << (buffer->size_class + kMinClassShift);
    if (start >= piece_start && start - piece_start < piece &&
        length <= piece - (start - piece_start)) {
      return buffer;
    }
  }
  return Find(addr, length);
}

Buffer* SgaPool::Find(const void* addr, size_t length) const {
  uintptr_t start = reinterpret_cast<uintptr_t>(addr);
  auto it = slabs_by_address_.upper_bound(start);
  if (it == slabs_by_address_.begin()) return nullptr;
  Slab* slab = std::prev(it)->second;
  uintptr_t base = reinterpret_cast<uintptr_t>(slab->base);
  if (start >= base + slab->size) return nullptr;
  size_t piece = size_t{1} << (slab->size_class + kMinClassShift);
  Buffer* buffer = &slab->buffers[(start - base) / piece];
  uintptr_t piece_start = reinterpret_cast<uintptr_t>(buffer->data);
  // A free piece is not the application's memory any more: treat it as
  // foreign (copied), never as a live buffer.
  if (buffer->refs <= 0 || length > piece_start + piece - start) return nullptr;
  return buffer;
}

absl::Status SgaPool::Grow(int size_class) {
  size_t piece = size_t{1} << (size_class + kMinClassShift);
  size_t slab_size = piece > kSlabSize ? piece : kSlabSize;
  // Another pool's idle slab first: registered already, and counted.
  if (std::unique_ptr<Slab> slab = TakeFromDepot(slab_size)) {
    EnterSlot(slab->slot, &next_generation_);
    Adopt(std::move(slab), size_class);
    return absl::OkStatus();
  }
  if (!Reserve(slab_size, limit_bytes_) && !Trim(slab_size)) {
    return rdma::ErrnoError(ENOMEM, "registered memory limit reached");
  }
  // Taken after Trim: a slot it gave back is reused first.
  uint32_t slot;
  if (!TakeSlot(&slot, &next_generation_)) {
    process_registered.fetch_sub(slab_size, std::memory_order_relaxed);
    return rdma::ErrnoError(ENOMEM, "too many slabs");
  }
  void* memory = mmap(nullptr, slab_size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) {
    int err = errno;
    GiveBackSlot(slot, next_generation_);
    process_registered.fetch_sub(slab_size, std::memory_order_relaxed);
    return rdma::ErrnoError(err, "mmap");
  }
  auto slab = std::make_unique<Slab>();
  slab->base = static_cast<std::byte*>(memory);
  slab->size = slab_size;
  slab->slot = slot;
  for (ibv_pd* pd : pds_) {
    absl::StatusOr<rdma::MrPtr> mr = rdma::RegisterMr(
        pd, absl::MakeSpan(slab->base, slab_size),
        // No remote access through the region itself; a rendezvous binds
        // a memory window to one piece, for one QP (connection.cc).
        IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_MW_BIND);
    if (!mr.ok()) {
      slab->mrs.clear();
      munmap(memory, slab_size);
      GiveBackSlot(slot, next_generation_);
      process_registered.fetch_sub(slab_size, std::memory_order_relaxed);
      return mr.status();
    }
    slab->mrs.push_back(std::move(mr).value());
  }
  slabs_mapped.fetch_add(1, std::memory_order_relaxed);
  IndexSlab(slot, slab->base, slab_size);
  Adopt(std::move(slab), size_class);
  return absl::OkStatus();
}

std::unique_ptr<Slab> SgaPool::TakeFromDepot(size_t slab_size) {
  std::lock_guard<std::mutex> lock(depot_mutex);
  if (depot == nullptr) return nullptr;
  // Newest first: its pages are the likeliest to be resident and cached.
  for (auto it = depot->rbegin(); it != depot->rend(); ++it) {
    Slab* slab = it->get();
    // The PDs are the process's, the same for every pool; a pool made with
    // others (a test's) never takes a slab registered elsewhere.
    if (slab->size != slab_size || slab->mrs.size() != pds_.size()) continue;
    bool same_pds = true;
    for (size_t i = 0; i < pds_.size(); ++i) {
      same_pds = same_pds && slab->mrs[i]->pd == pds_[i];
    }
    if (!same_pds) continue;
    std::unique_ptr<Slab> taken = std::move(*it);
    depot->erase(std::next(it).base());
    depot_size.fetch_sub(slab_size, std::memory_order_relaxed);
    NoteOldest();
    return taken;
  }
  return nullptr;
}

void SgaPool::Adopt(std::unique_ptr<Slab> slab, int size_class) {
  size_t piece = size_t{1} << (size_class + kMinClassShift);
  size_t count = slab->size / piece;
  slab->size_class = static_cast<uint8_t>(size_class);
  slab->pool = this;
  // A new vector, not a resize: a slab cut into small pieces before keeps
  // no oversized array when cut into large ones.
  std::vector<Buffer>(count).swap(slab->buffers);
  for (size_t i = 0; i < count; ++i) {
    Buffer& buffer = slab->buffers[i];
    buffer.data = slab->base + i * piece;
    buffer.size_class = static_cast<uint8_t>(size_class);
    buffer.slab = slab.get();
  }
  // Hand out low addresses first.
  slab->free.clear();
  slab->free.reserve(count);
  for (size_t i = count; i > 0; --i)
    slab->free.push_back(&slab->buffers[i - 1]);
  slab->free_count = count;
  registered_bytes_ += slab->size;
  slabs_by_address_[reinterpret_cast<uintptr_t>(slab->base)] = slab.get();
  // The slab before the owner: whoever sees this pool there finds it set.
  slab_slots[slab->slot].slab = slab.get();
  slab_slots[slab->slot].owner.store(this, std::memory_order_release);
  slabs_.push_back(std::move(slab));
}

void SgaPool::SlabIdle(Slab* slab) {
  ++slab->idled;
  Slab*& spare = spare_[slab->size_class];
  // A retired pool has nobody to keep a spare for.
  if (!retired_ && (spare == nullptr || spare == slab ||
                    spare->free_count != spare->buffers.size())) {
    spare = slab;
    return;
  }
  Deposit(Remove(slab));
}

void SgaPool::ReleaseIdleSpares(absl::Time now) {
  for (int c = 0; c < kNumClasses; ++c) {
    Slab* spare = spare_[c];
    SpareWatch& watch = spare_watch_[c];
    if (spare == nullptr || spare->free_count != spare->buffers.size()) {
      watch.slab = nullptr;
      continue;
    }
    if (watch.slab != spare || watch.idled != spare->idled) {
      watch = {spare, spare->idled, now};
      continue;
    }
    if (now - watch.since >= kDepotIdleTime) {
      watch.slab = nullptr;
      Deposit(Remove(spare));
    }
  }
}

absl::Time SgaPool::NextSpareRelease(absl::Time now) const {
  absl::Time next = absl::InfiniteFuture();
  for (int c = 0; c < kNumClasses; ++c) {
    const Slab* spare = spare_[c];
    if (spare == nullptr || spare->free_count != spare->buffers.size()) {
      continue;
    }
    const SpareWatch& watch = spare_watch_[c];
    bool watched = watch.slab == spare && watch.idled == spare->idled;
    // Not watched yet: the timers that start the watch need not come at
    // once (a thread that sleeps between messages would spin instead).
    next = std::min(next, (watched ? watch.since : now) + kDepotIdleTime);
  }
  return next;
}

void SgaPool::Unlist(Slab* slab) {
  if (current_[slab->size_class] == slab) current_[slab->size_class] = nullptr;
  if (spare_[slab->size_class] == slab) spare_[slab->size_class] = nullptr;
  if (spare_watch_[slab->size_class].slab == slab) {
    spare_watch_[slab->size_class].slab = nullptr;
  }
  slabs_by_address_.erase(reinterpret_cast<uintptr_t>(slab->base));
}

std::unique_ptr<Slab> SgaPool::Remove(Slab* slab) {
  Unlist(slab);
  // Nothing indexes it once the slot has no owner, and a 64 B slab's arrays
  // are 1.25 MiB of heap: the next pool cuts the slab anew anyway.
  std::vector<Buffer>().swap(slab->buffers);
  std::vector<Buffer*>().swap(slab->free);
  registered_bytes_ -= slab->size;
  LeaveSlot(slab->slot, next_generation_);
  slab->pool = nullptr;
  auto it = std::find_if(
      slabs_.begin(), slabs_.end(),
      [slab](const std::unique_ptr<Slab>& s) { return s.get() == slab; });
  std::unique_ptr<Slab> removed = std::move(*it);
  *it = std::move(slabs_.back());
  slabs_.pop_back();
  return removed;
}

void SgaPool::DepositIdleSlabs() {
  std::vector<Slab*> idle;
  for (auto& slab : slabs_) {
    if (slab->free_count == slab->buffers.size()) idle.push_back(slab.get());
  }
  for (Slab* slab : idle) Deposit(Remove(slab));
}

bool SgaPool::Trim(size_t needed) {
  // The depot's first, oldest first: no pool keeps them for a reason.
  while (std::unique_ptr<Slab> slab = TakeOldest()) {
    UnmapIdle(std::move(slab));
    // Another pool may take what was given back first: try at each slab.
    if (Reserve(needed, limit_bytes_)) return true;
  }
  for (size_t i = 0; i < slabs_.size();) {
    Slab* slab = slabs_[i].get();
    if (slab->free_count != slab->buffers.size()) {
      ++i;
      continue;
    }
    Unlist(slab);
    Unmap(slab);
    slabs_[i] = std::move(slabs_.back());
    slabs_.pop_back();
    // Another pool may take what was given back first: try at each slab.
    if (Reserve(needed, limit_bytes_)) return true;
  }
  return false;
}

void SgaPool::Unmap(Slab* slab) {
  GiveBackSlot(slab->slot, next_generation_);
  slab->mrs.clear();  // Deregister before the memory goes.
  munmap(slab->base, slab->size);
  registered_bytes_ -= slab->size;
  process_registered.fetch_sub(slab->size, std::memory_order_relaxed);
}

void SgaPool::UnmapAll() {
  for (auto& slab : slabs_) Unmap(slab.get());
  // Swapped out, not cleared: a retired pool is kept for good, as small as
  // it can be.
  std::vector<std::unique_ptr<Slab>>().swap(slabs_);
  slabs_by_address_.clear();
  std::fill(std::begin(current_), std::end(current_), nullptr);
  std::fill(std::begin(spare_), std::end(spare_), nullptr);
  std::fill(std::begin(spare_watch_), std::end(spare_watch_), SpareWatch());
  std::vector<const void*>().swap(draining_);
}

}  // namespace demi
