#include "demi/sga_pool.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>

#include "demi/buffer_ref.h"
#include "rdma/log.h"
#include "rdma/status_util.h"

namespace demi {

namespace {

// A handle is generation:32 | slab slot:kSlotBits | piece:kPieceBits, so
// that giving it back needs no lookup: index, index, compare.
constexpr int kPieceBits = 15;
constexpr int kSlotBits = 32 - kPieceBits;
static_assert((kSlabSize >> kMinClassShift) <= (size_t{1} << kPieceBits),
              "a slab's pieces are numbered within kPieceBits");

}  // namespace

int SizeClassOf(size_t size) {
  int shift = kMinClassShift;
  while ((size_t{1} << shift) < size) ++shift;
  return shift - kMinClassShift;
}

SgaPool::SgaPool(std::vector<ibv_pd*> pds, size_t limit_bytes)
    : pds_(std::move(pds)), limit_bytes_(limit_bytes) {}

SgaPool::~SgaPool() {
  for (auto& slab : slabs_) {
    slab->mrs.clear();  // Deregister before the memory goes.
    munmap(slab->base, slab->size);
  }
}

absl::StatusOr<Buffer*> SgaPool::Allocate(size_t size) {
  if (size == 0 || size > (size_t{1} << kMaxClassShift)) {
    return rdma::ErrnoError(EINVAL, "buffer size out of range");
  }
  int size_class = SizeClassOf(size);
  if (free_[size_class].empty()) DEMI_RETURN_IF_ERROR(Grow(size_class));
  return TakeFree(size_class);
}

bool SgaPool::CanEverHold(size_t size) const {
  if (size == 0 || size > (size_t{1} << kMaxClassShift)) return false;
  size_t piece = size_t{1} << (SizeClassOf(size) + kMinClassShift);
  return std::max(piece, kSlabSize) <= limit_bytes_;
}

void SgaPool::Unref(Buffer* buffer) {
  if (--buffer->refs == 0) {
    free_[buffer->size_class].push_back(buffer);
    ++buffer->slab->free_count;
  }
}

void BufferRef::GiveBack(Buffer* buffer) { buffer->slab->pool->Unref(buffer); }

void* SgaPool::Lend(Buffer* buffer) {
  uint32_t generation = next_generation_++;
  if (next_generation_ == 0) next_generation_ = 1;
  buffer->lent = generation;
  uint64_t piece = static_cast<uint64_t>(buffer - buffer->slab->buffers.data());
  uint64_t handle = uint64_t{generation} << 32 |
                    uint64_t{buffer->slab->slot} << kPieceBits | piece;
  return reinterpret_cast<void*>(static_cast<uintptr_t>(handle));
}

Buffer* SgaPool::LentUnder(const void* handle) const {
  uint64_t bits = reinterpret_cast<uintptr_t>(handle);
  uint32_t generation = static_cast<uint32_t>(bits >> 32);
  uint32_t slot = static_cast<uint32_t>(bits) >> kPieceBits;
  uint32_t piece = static_cast<uint32_t>(bits) & ((1u << kPieceBits) - 1);
  if (generation == 0 || slot >= slab_slots_.size()) return nullptr;
  Slab* slab = slab_slots_[slot];
  if (slab == nullptr || piece >= slab->buffers.size()) return nullptr;
  Buffer* buffer = &slab->buffers[piece];
  return buffer->lent == generation ? buffer : nullptr;
}

Buffer* SgaPool::Reclaim(const void* handle) {
  Buffer* buffer = LentUnder(handle);
  if (buffer != nullptr) buffer->lent = 0;
  return buffer;
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
  if (registered_bytes_ + slab_size > limit_bytes_ && !Trim(slab_size)) {
    return rdma::ErrnoError(ENOMEM, "registered memory limit reached");
  }
  if (free_slab_slots_.empty() && slab_slots_.size() >= (1u << kSlotBits)) {
    return rdma::ErrnoError(ENOMEM, "too many slabs");
  }
  void* memory = mmap(nullptr, slab_size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) return rdma::ErrnoError(errno, "mmap");
  auto slab = std::make_unique<Slab>();
  slab->base = static_cast<std::byte*>(memory);
  slab->size = slab_size;
  slab->size_class = static_cast<uint8_t>(size_class);
  slab->pool = this;
  for (ibv_pd* pd : pds_) {
    absl::StatusOr<rdma::MrPtr> mr = rdma::RegisterMr(
        pd, absl::MakeSpan(slab->base, slab_size),
        // No remote access through the region itself; a rendezvous binds
        // a memory window to one piece, for one QP (connection.cc).
        IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_MW_BIND);
    if (!mr.ok()) {
      slab->mrs.clear();
      munmap(memory, slab_size);
      return mr.status();
    }
    slab->mrs.push_back(std::move(mr).value());
  }
  size_t count = slab_size / piece;
  slab->buffers.resize(count);
  for (size_t i = 0; i < count; ++i) {
    Buffer& buffer = slab->buffers[i];
    buffer.data = slab->base + i * piece;
    buffer.size_class = static_cast<uint8_t>(size_class);
    buffer.slab = slab.get();
  }
  // Hand out low addresses first.
  for (size_t i = count; i > 0; --i) {
    free_[size_class].push_back(&slab->buffers[i - 1]);
  }
  slab->free_count = count;
  registered_bytes_ += slab_size;
  slabs_by_address_[reinterpret_cast<uintptr_t>(slab->base)] = slab.get();
  if (free_slab_slots_.empty()) {
    slab->slot = static_cast<uint32_t>(slab_slots_.size());
    slab_slots_.push_back(slab.get());
  } else {
    slab->slot = free_slab_slots_.back();
    free_slab_slots_.pop_back();
    slab_slots_[slab->slot] = slab.get();
  }
  slabs_.push_back(std::move(slab));
  return absl::OkStatus();
}

bool SgaPool::Trim(size_t needed) {
  for (size_t i = 0;
       i < slabs_.size() && registered_bytes_ + needed > limit_bytes_;) {
    Slab* slab = slabs_[i].get();
    if (slab->free_count != slab->buffers.size()) {
      ++i;
      continue;
    }
    std::vector<Buffer*>& list = free_[slab->size_class];
    list.erase(std::remove_if(list.begin(), list.end(),
                              [slab](Buffer* b) { return b->slab == slab; }),
               list.end());
    slabs_by_address_.erase(reinterpret_cast<uintptr_t>(slab->base));
    slab_slots_[slab->slot] = nullptr;
    free_slab_slots_.push_back(slab->slot);
    registered_bytes_ -= slab->size;
    slab->mrs.clear();
    munmap(slab->base, slab->size);
    slabs_[i] = std::move(slabs_.back());
    slabs_.pop_back();
  }
  return registered_bytes_ + needed <= limit_bytes_;
}

}  // namespace demi
