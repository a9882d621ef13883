// The pool's bookkeeping without a device: a pool with no protection
// domains registers nothing, so slabs, free lists and handles can be
// checked on any host.
#include "demi/sga_pool.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "demi/limits.h"
#include "gtest/gtest.h"
#include "rdma/clock.h"

namespace demi {
namespace {

void* Garbage(uintptr_t bits) { return reinterpret_cast<void*>(bits); }

// Slabs left idle go to the process's depot and outlive the pools: each
// test unmaps them, so that the next starts from no memory registered.
class SgaPoolTest : public ::testing::Test {
 protected:
  void TearDown() override { SgaPool::ReleaseDepot(); }
};
using SgaPoolThreadTest = SgaPoolTest;
using SgaPoolDepotTest = SgaPoolTest;

TEST(SizeClassTest, EachSizeGetsTheSmallestClassThatHoldsIt) {
  // Every size at and around each class's edge, from 1 byte to the most.
  for (int shift = 0; shift <= kMaxClassShift; ++shift) {
    size_t edge = size_t{1} << shift;
    for (size_t size : {edge - 1, edge, edge + 1}) {
      if (size == 0 || size > (size_t{1} << kMaxClassShift)) continue;
      int want = 0;
      while ((size_t{1} << (want + kMinClassShift)) < size) ++want;
      EXPECT_EQ(SizeClassOf(size), want) << size << " bytes";
      size_t piece = size_t{1} << (SizeClassOf(size) + kMinClassShift);
      EXPECT_GE(piece, size) << size << " bytes";
    }
  }
  EXPECT_EQ(SizeClassOf(1), 0);
  EXPECT_EQ(SizeClassOf(size_t{1} << kMaxClassShift), kNumClasses - 1);
}

TEST_F(SgaPoolTest, AHandleIsGivenBackOnce) {
  SgaPool pool({}, kSlabSize * 4);
  Buffer* buffer = *pool.Allocate(100);
  void* handle = pool.Lend(buffer);
  ASSERT_NE(handle, nullptr);
  EXPECT_EQ(pool.Reclaim(handle), buffer);
  EXPECT_EQ(pool.Reclaim(handle), nullptr);  // Twice.
  // Lent again, the piece has a new handle; the old one stays dead.
  void* again = pool.Lend(buffer);
  EXPECT_NE(again, handle);
  EXPECT_EQ(pool.Reclaim(handle), nullptr);
  EXPECT_EQ(pool.Reclaim(again), buffer);
  pool.Unref(buffer);
}

// Whose memory an address is, for any thread: every mapped slab's, and
// nothing once it is unmapped.
TEST_F(SgaPoolTest, InAnySlabKnowsEveryMappedSlabByAddress) {
  std::byte* start = nullptr;
  {
    SgaPool pool({}, kSlabSize * 4);
    Buffer* buffer = *pool.Allocate(100);
    start = buffer->slab->base;
    size_t size = buffer->slab->size;
    EXPECT_TRUE(SgaPool::InAnySlab(buffer->data, 100));
    EXPECT_TRUE(SgaPool::InAnySlab(start, 1));
    EXPECT_TRUE(SgaPool::InAnySlab(start + size - 1, 1));
    EXPECT_FALSE(SgaPool::InAnySlab(start + size, 1));
    // A range that starts before the slab and runs into it.
    EXPECT_TRUE(SgaPool::InAnySlab(start - 16, 17));
    EXPECT_FALSE(SgaPool::InAnySlab(start - 16, 16));
    int on_stack = 0;
    EXPECT_FALSE(SgaPool::InAnySlab(&on_stack, sizeof(on_stack)));
    pool.Unref(buffer);
  }
  // The pool went, unmapping its slabs.
  EXPECT_FALSE(SgaPool::InAnySlab(start, 1));
}

TEST_F(SgaPoolTest, GarbageHandlesAreRefused) {
  SgaPool pool({}, kSlabSize * 4);
  Buffer* buffer = *pool.Allocate(64);
  void* handle = pool.Lend(buffer);
  uintptr_t bits = reinterpret_cast<uintptr_t>(handle);
  EXPECT_EQ(pool.Reclaim(nullptr), nullptr);
  EXPECT_EQ(pool.Reclaim(&pool), nullptr);  // A pointer, not a handle.
  EXPECT_EQ(pool.Reclaim(Garbage(bits & 0xffffffffu)), nullptr);  // No gen.
  EXPECT_EQ(pool.Reclaim(Garbage(bits + (uintptr_t{1} << 32))), nullptr);
  EXPECT_EQ(pool.Reclaim(Garbage(bits + 1)), nullptr);  // Its neighbour.
  EXPECT_EQ(pool.Reclaim(Garbage(bits | 0x7fff)), nullptr);
  EXPECT_EQ(pool.Reclaim(Garbage(~uintptr_t{0})), nullptr);  // No such slab.
  EXPECT_EQ(pool.Reclaim(handle), buffer);
  pool.Unref(buffer);
}

TEST_F(SgaPoolTest, FindWithAHandleLooksThereFirstAndChecksTheRange) {
  SgaPool pool({}, kSlabSize * 4);
  Buffer* lent = *pool.Allocate(256);
  Buffer* other = *pool.Allocate(256);
  void* handle = pool.Lend(lent);
  std::byte* data = lent->data;
  EXPECT_EQ(pool.Find(handle, data, 256), lent);
  EXPECT_EQ(pool.Find(handle, data + 100, 156), lent);
  // Past the piece's end, or before it: not in it.
  EXPECT_EQ(pool.Find(handle, data + 100, 157), nullptr);
  EXPECT_EQ(pool.Find(handle, data - 1, 1), pool.Find(data - 1, 1));
  // A segment in another piece is found by its address, whatever the
  // handle says: garbage, a stale handle, or another piece's.
  EXPECT_EQ(pool.Find(handle, other->data, 10), other);
  EXPECT_EQ(pool.Find(&pool, other->data, 10), other);
  EXPECT_EQ(pool.Find(nullptr, data, 10), lent);
  ASSERT_EQ(pool.Reclaim(handle), lent);
  EXPECT_EQ(pool.Find(handle, data, 10), lent);  // By address: still live.
  pool.Unref(lent);
  EXPECT_EQ(pool.Find(handle, data, 10), nullptr);  // Free now.
  pool.Unref(other);
}

TEST_F(SgaPoolTest, FindWithAHandleFindsASegmentFarPastItsPiece) {
  SgaPool pool({}, kSlabSize * 4);
  std::vector<Buffer*> pieces;
  for (int i = 0; i < 8; ++i) pieces.push_back(*pool.Allocate(256));
  auto by_address = [](Buffer* a, Buffer* b) { return a->data < b->data; };
  Buffer* low = *std::min_element(pieces.begin(), pieces.end(), by_address);
  Buffer* high = *std::max_element(pieces.begin(), pieces.end(), by_address);
  ASSERT_GE(high->data - low->data, 2 * 256);
  void* handle = pool.Lend(low);
  // Not the lent piece: the address is far past its end.
  EXPECT_EQ(pool.Find(handle, high->data, 10), high);
  ASSERT_EQ(pool.Reclaim(handle), low);
  for (Buffer* b : pieces) pool.Unref(b);
}

TEST_F(SgaPoolTest, AHandleOfATrimmedSlabNamesNoLaterPiece) {
  // Room for one slab: a second class trims the first and takes its slot.
  SgaPool pool({}, kSlabSize);
  Buffer* small = *pool.Allocate(64);
  void* stale = pool.Lend(small);
  ASSERT_EQ(pool.Reclaim(stale), small);
  pool.Unref(small);
  std::vector<Buffer*> held;
  for (int i = 0; i < 4; ++i) held.push_back(*pool.Allocate(4096));
  EXPECT_EQ(pool.Reclaim(stale), nullptr);
  // The first piece of the new slab sits where `small` did in the table.
  void* first = pool.Lend(held[0]);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(first) & 0xffffffffu,
            reinterpret_cast<uintptr_t>(stale) & 0xffffffffu);
  EXPECT_EQ(pool.Reclaim(first), held[0]);
  for (Buffer* b : held) pool.Unref(b);
}

// --- Frees from other threads, retired pools, the process-wide limit ---
// Every test leaves no memory registered, so the next starts from zero.

constexpr size_t k64K = size_t{64} << 10;
constexpr size_t k2M = size_t{2} << 20;

TEST_F(SgaPoolThreadTest, ACrossThreadFreeComesBackWhenTheOwnerDrains) {
  SgaPool pool({}, kSlabSize * 4);
  std::vector<Buffer*> buffers;
  std::vector<void*> handles;
  for (int i = 0; i < 3; ++i) {
    buffers.push_back(*pool.Allocate(100));
    handles.push_back(pool.Lend(buffers.back()));
  }
  EXPECT_EQ(pool.lent_count(), 3u);
  EXPECT_FALSE(pool.HasOtherThreadFrees());
  std::thread other([&] {
    for (void* handle : handles) {
      EXPECT_EQ(SgaPool::OwnerOf(handle), &pool);
      EXPECT_EQ(pool.FreeFromOtherThread(handle), 0);
    }
  });
  other.join();
  // Handed over, not freed: the owner's data is the owner's.
  EXPECT_TRUE(pool.HasOtherThreadFrees());
  EXPECT_EQ(pool.lent_count(), 3u);
  EXPECT_EQ(buffers[0]->refs, 1);
  pool.DrainOtherThreadFrees();
  EXPECT_FALSE(pool.HasOtherThreadFrees());
  EXPECT_EQ(pool.lent_count(), 0u);
  EXPECT_EQ(pool.dropped_other_thread_frees(), 0u);
  for (Buffer* buffer : buffers) {
    EXPECT_EQ(buffer->refs, 0);
    EXPECT_EQ(pool.Find(buffer->data, 1), nullptr);  // Free again.
  }
}

// A worker thread frees what the owner allocates, 12 GiB in 64 KiB pieces
// under a 64 MiB limit: only if the drained pieces are really reused does
// the pool never run dry.
TEST_F(SgaPoolThreadTest, CrossThreadFreesReuseTheMemory) {
  constexpr size_t kLimit = size_t{64} << 20;
  constexpr size_t kTotal = size_t{12} << 30;
  constexpr size_t kBatch = 128;  // 8 MiB: at most ~4 batches are out.
  constexpr size_t kBatches = kTotal / k64K / kBatch;
  static_assert(kBatches * kBatch == 196608, "12 GiB of 64 KiB pieces");
  SgaPool pool({}, kLimit);

  struct Piece {
    void* handle;
    unsigned char* data;
  };
  // std::mutex: ThreadSanitizer does not see the system Abseil's.
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<std::vector<Piece>> queue;  // Guarded by mutex.
  std::thread worker([&] {
    for (size_t batch = 0;; ++batch) {
      std::vector<Piece> pieces;
      {
        std::unique_lock<std::mutex> lock(mutex);
        changed.wait(lock, [&] { return !queue.empty(); });
        pieces = std::move(queue.front());
        queue.pop_front();
      }
      changed.notify_all();
      if (pieces.empty()) return;  // The end.
      for (Piece& piece : pieces) {
        // What the owner wrote is there, and the worker may write too: the
        // piece is not in the owner's hands again before it is freed.
        unsigned char tag = static_cast<unsigned char>(batch);
        EXPECT_EQ(piece.data[0], tag);
        EXPECT_EQ(piece.data[k64K - 1], tag);
        piece.data[1] = tag;
        EXPECT_EQ(pool.FreeFromOtherThread(piece.handle), 0);
      }
    }
  });
  size_t allocated = 0;
  bool dry = false;
  for (size_t batch = 0; batch < kBatches && !dry; ++batch) {
    {
      std::unique_lock<std::mutex> lock(mutex);
      changed.wait(lock, [&] { return queue.size() < 2; });
    }
    pool.DrainOtherThreadFrees();
    std::vector<Piece> pieces;
    for (size_t i = 0; i < kBatch; ++i) {
      absl::StatusOr<Buffer*> buffer = pool.Allocate(k64K);
      if (!buffer.ok()) {
        ADD_FAILURE() << "dry after " << allocated
                      << " bytes: " << buffer.status();
        dry = true;
        break;
      }
      auto* data = reinterpret_cast<unsigned char*>((*buffer)->data);
      data[0] = data[k64K - 1] = static_cast<unsigned char>(batch);
      pieces.push_back({pool.Lend(*buffer), data});
      allocated += k64K;
    }
    if (pieces.empty()) break;
    {
      std::lock_guard<std::mutex> lock(mutex);
      queue.push_back(std::move(pieces));
    }
    changed.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    queue.emplace_back();
  }
  changed.notify_all();
  worker.join();
  pool.DrainOtherThreadFrees();
  EXPECT_EQ(allocated, kTotal);
  EXPECT_EQ(pool.lent_count(), 0u);
  EXPECT_EQ(pool.dropped_other_thread_frees(), 0u);
  EXPECT_LE(pool.registered_bytes(), kLimit);
}

TEST_F(SgaPoolThreadTest, GarbageAndDoubleCrossThreadFreesDoNoHarm) {
  SgaPool pool({}, kSlabSize * 4);
  Buffer* buffer = *pool.Allocate(64);
  void* handle = pool.Lend(buffer);
  uintptr_t bits = reinterpret_cast<uintptr_t>(handle);
  EXPECT_EQ(SgaPool::OwnerOf(nullptr), nullptr);
  EXPECT_EQ(SgaPool::OwnerOf(Garbage(bits & 0xffffffffu)), nullptr);
  EXPECT_EQ(SgaPool::OwnerOf(Garbage(~uintptr_t{0})), nullptr);  // No slab.
  std::thread other([&] {
    EXPECT_EQ(pool.FreeFromOtherThread(nullptr), EINVAL);
    EXPECT_EQ(pool.FreeFromOtherThread(Garbage(~uintptr_t{0})), EINVAL);
    EXPECT_EQ(pool.FreeFromOtherThread(Garbage(bits & 0xffffffffu)), EINVAL);
    // These name a slab of the pool: only the owner can tell they are dead.
    EXPECT_EQ(pool.FreeFromOtherThread(handle), 0);
    EXPECT_EQ(pool.FreeFromOtherThread(handle), 0);             // Twice.
    EXPECT_EQ(pool.FreeFromOtherThread(Garbage(bits + 1)), 0);  // Neighbour.
  });
  other.join();
  pool.DrainOtherThreadFrees();
  EXPECT_EQ(pool.dropped_other_thread_frees(), 2u);
  EXPECT_EQ(pool.lent_count(), 0u);
  EXPECT_EQ(buffer->refs, 0);
  // On the free list once: the next two pieces are two pieces.
  Buffer* first = *pool.Allocate(64);
  Buffer* second = *pool.Allocate(64);
  EXPECT_EQ(first, buffer);
  EXPECT_NE(second, buffer);
  pool.Unref(first);
  pool.Unref(second);
}

TEST_F(SgaPoolThreadTest, APoolRefusesAnotherThreadsPoolsHandles) {
  SgaPool mine({}, kSlabSize * 4);
  Buffer* my_buffer = *mine.Allocate(64);
  void* my_handle = mine.Lend(my_buffer);
  std::unique_ptr<SgaPool> theirs;
  Buffer* their_buffer = nullptr;
  void* their_handle = nullptr;
  std::thread other([&] {
    theirs = std::make_unique<SgaPool>(std::vector<ibv_pd*>{}, kSlabSize * 4);
    their_buffer = *theirs->Allocate(64);
    // Both first lends of their pools: the same generation and piece, so
    // the handles differ only if the slab table is the process's.
    their_handle = theirs->Lend(their_buffer);
    EXPECT_NE(their_handle, my_handle);
    EXPECT_EQ(theirs->Reclaim(my_handle), nullptr);
    EXPECT_EQ(theirs->Find(my_handle, their_buffer->data, 1), their_buffer);
    EXPECT_EQ(theirs->Find(my_handle, my_buffer->data, 1), nullptr);
    EXPECT_EQ(theirs->FreeFromOtherThread(my_handle), EINVAL);
    EXPECT_EQ(SgaPool::OwnerOf(my_handle), &mine);
  });
  other.join();
  EXPECT_EQ(SgaPool::OwnerOf(their_handle), theirs.get());
  EXPECT_EQ(mine.Reclaim(their_handle), nullptr);
  EXPECT_EQ(mine.FreeFromOtherThread(their_handle), EINVAL);
  EXPECT_EQ(theirs->lent_count(), 1u);  // Still lent.
  EXPECT_EQ(mine.Reclaim(my_handle), my_buffer);
  mine.Unref(my_buffer);
  // Their owner is gone, and nothing frees into it: it may go directly.
  theirs.reset();
  EXPECT_EQ(SgaPool::OwnerOf(their_handle), nullptr);
}

TEST_F(SgaPoolThreadTest, AStaleHandleOfAGonePoolNamesNoPieceOfTheNext) {
  void* stale;
  {
    SgaPool gone({}, kSlabSize);
    Buffer* buffer = *gone.Allocate(64);
    stale = gone.Lend(buffer);
    gone.Unref(gone.Reclaim(stale));
  }
  // The next pool takes the same slot and lends the same piece first; its
  // generations go on from the last owner's.
  SgaPool next({}, kSlabSize);
  Buffer* buffer = *next.Allocate(64);
  void* handle = next.Lend(buffer);
  ASSERT_EQ(reinterpret_cast<uintptr_t>(handle) & 0xffffffffu,
            reinterpret_cast<uintptr_t>(stale) & 0xffffffffu);
  EXPECT_EQ(SgaPool::OwnerOf(stale), &next);
  EXPECT_EQ(next.Reclaim(stale), nullptr);
  EXPECT_EQ(next.Reclaim(handle), buffer);
  next.Unref(buffer);
}

TEST_F(SgaPoolThreadTest, ARetiredPoolKeepsLentMemoryUntilTheLastFree) {
  ASSERT_EQ(SgaPool::process_registered_bytes(), 0u);
  SgaPool* pool = nullptr;
  void* handles[3] = {};
  unsigned char* data[3] = {};
  std::thread owner([&] {
    auto owned = std::make_unique<SgaPool>(std::vector<ibv_pd*>{}, k2M * 4);
    pool = owned.get();
    for (int i = 0; i < 3; ++i) {
      Buffer* buffer = *pool->Allocate(k64K);
      data[i] = reinterpret_cast<unsigned char*>(buffer->data);
      handles[i] = pool->Lend(buffer);
    }
    // Handed over but not drained: Retire frees it.
    std::thread([&] {
      EXPECT_EQ(pool->FreeFromOtherThread(handles[2]), 0);
    }).join();
    SgaPool::Retire(std::move(owned));
  });
  owner.join();
  EXPECT_EQ(SgaPool::process_registered_bytes(), kSlabSize);
  EXPECT_EQ(pool->lent_count(), 2u);
  // The application's memory is still there.
  std::memset(data[0], 0xab, k64K);
  std::memset(data[1], 0xcd, k64K);
  EXPECT_EQ(SgaPool::OwnerOf(handles[0]), pool);
  EXPECT_EQ(pool->FreeFromOtherThread(handles[0]), 0);
  EXPECT_EQ(pool->FreeFromOtherThread(handles[0]), EINVAL);  // Twice.
  EXPECT_EQ(pool->FreeFromOtherThread(handles[2]), EINVAL);  // Drained.
  EXPECT_EQ(pool->dropped_other_thread_frees(), 2u);
  std::memset(data[1], 0xef, k64K);
  EXPECT_EQ(SgaPool::process_registered_bytes(), kSlabSize);
  std::thread([&] {
    EXPECT_EQ(pool->FreeFromOtherThread(handles[1]), 0);
  }).join();
  // The last one: the slab goes to the depot, out of the pool's slot.
  EXPECT_EQ(SgaPool::process_registered_bytes(), kSlabSize);
  EXPECT_EQ(SgaPool::depot_bytes(), kSlabSize);
  EXPECT_EQ(pool->registered_bytes(), 0u);
  EXPECT_EQ(SgaPool::OwnerOf(handles[1]), nullptr);
  EXPECT_EQ(pool->FreeFromOtherThread(handles[1]), EINVAL);
}

TEST_F(SgaPoolThreadTest, RetireWithNothingLentGivesEverySlabToTheDepot) {
  ASSERT_EQ(SgaPool::process_registered_bytes(), 0u);
  SgaPool* pool = nullptr;
  void* freed = nullptr;
  void* handed_over = nullptr;
  std::thread owner([&] {
    auto owned = std::make_unique<SgaPool>(std::vector<ibv_pd*>{}, k2M * 4);
    pool = owned.get();
    Buffer* buffer = *pool->Allocate(64);
    freed = pool->Lend(buffer);
    pool->Unref(pool->Reclaim(freed));
    buffer = *pool->Allocate(k64K);
    handed_over = pool->Lend(buffer);
    std::thread([&] {
      EXPECT_EQ(pool->FreeFromOtherThread(handed_over), 0);
    }).join();
    EXPECT_EQ(SgaPool::process_registered_bytes(), 2 * kSlabSize);
    SgaPool::Retire(std::move(owned));
  });
  owner.join();
  // Registered still, but nobody's: any pool takes them before mapping.
  EXPECT_EQ(SgaPool::process_registered_bytes(), 2 * kSlabSize);
  EXPECT_EQ(SgaPool::depot_bytes(), 2 * kSlabSize);
  EXPECT_EQ(pool->registered_bytes(), 0u);
  EXPECT_EQ(pool->lent_count(), 0u);
  EXPECT_NE(SgaPool::OwnerOf(freed), pool);
  EXPECT_NE(SgaPool::OwnerOf(handed_over), pool);
  // The object stays for such late callers, and refuses them.
  EXPECT_EQ(pool->FreeFromOtherThread(handed_over), EINVAL);
}

TEST_F(SgaPoolThreadTest, TheLimitHoldsAcrossPools) {
  ASSERT_EQ(SgaPool::process_registered_bytes(), 0u);
  constexpr size_t kLimit = k2M * 8;
  SgaPool pools[2] = {{{}, kLimit}, {{}, kLimit}};
  std::vector<Buffer*> held[2];
  // Abseil builds its strerror table at the first errno status, out of
  // ThreadSanitizer's sight (the system Abseil is not instrumented): built
  // here, before two threads fail at once.
  EXPECT_FALSE(SgaPool({}, 0).Allocate(64).ok());
  std::atomic<int> ready{0};
  auto fill = [&](int i) {
    // Both race for the last slabs.
    ready.fetch_add(1);
    while (ready.load() < 2) std::this_thread::yield();
    for (;;) {
      absl::StatusOr<Buffer*> buffer = pools[i].Allocate(k2M);
      if (!buffer.ok()) {
        EXPECT_EQ(buffer.status().code(), absl::StatusCode::kResourceExhausted)
            << buffer.status();
        return;
      }
      held[i].push_back(*buffer);
    }
  };
  std::thread a(fill, 0);
  std::thread b(fill, 1);
  a.join();
  b.join();
  EXPECT_EQ(held[0].size() + held[1].size(), 8u);
  EXPECT_EQ(SgaPool::process_registered_bytes(), kLimit);
  EXPECT_EQ(pools[0].registered_bytes() + pools[1].registered_bytes(), kLimit);
  // The same class the other way round: room comes from the depot (the
  // slabs the pool gave up but its spare) or the pool's own free slab.
  SgaPool& first = pools[held[0].empty() ? 1 : 0];
  std::vector<Buffer*>& first_held = held[held[0].empty() ? 1 : 0];
  for (Buffer* buffer : first_held) first.Unref(buffer);
  first_held.clear();
  Buffer* small = *first.Allocate(64);
  EXPECT_EQ(SgaPool::process_registered_bytes(), kLimit);
  first.Unref(small);
  for (int i = 0; i < 2; ++i) {
    for (Buffer* buffer : held[i]) pools[i].Unref(buffer);
  }
}

// --- The depot: idle slabs shared by every pool ---

constexpr size_t k32M = size_t{32} << 20;

std::vector<Buffer*> AllocateBytes(SgaPool& pool, size_t total, size_t size) {
  std::vector<Buffer*> buffers;
  for (size_t done = 0; done < total; done += size) {
    absl::StatusOr<Buffer*> buffer = pool.Allocate(size);
    EXPECT_TRUE(buffer.ok()) << buffer.status();
    if (!buffer.ok()) break;
    buffers.push_back(*buffer);
  }
  return buffers;
}

void UnrefAll(SgaPool& pool, std::vector<Buffer*>& buffers) {
  for (Buffer* buffer : buffers) pool.Unref(buffer);
  buffers.clear();
}

// Two threads that each need 32 MiB, one after the other: the second
// registers only what the first keeps as its spare, not another 32 MiB.
TEST_F(SgaPoolDepotTest, APoolTakesAnotherPoolsIdleSlabs) {
  ASSERT_EQ(SgaPool::process_registered_bytes(), 0u);
  constexpr size_t kLimit = size_t{256} << 20;
  SgaPool a({}, kLimit);
  SgaPool b({}, kLimit);
  size_t mapped = SgaPool::process_slabs_mapped();
  std::vector<Buffer*> held = AllocateBytes(a, k32M, k64K);
  EXPECT_EQ(SgaPool::process_slabs_mapped() - mapped, k32M / kSlabSize);
  UnrefAll(a, held);
  // One spare stays with A; the rest is the depot's, still registered.
  EXPECT_EQ(a.registered_bytes(), kSlabSize);
  EXPECT_EQ(SgaPool::depot_bytes(), k32M - kSlabSize);
  EXPECT_EQ(SgaPool::process_registered_bytes(), k32M);

  mapped = SgaPool::process_slabs_mapped();
  held = AllocateBytes(b, k32M, k64K);
  EXPECT_EQ(b.registered_bytes(), k32M);
  // B's only new slab stands for A's spare.
  EXPECT_EQ(SgaPool::process_slabs_mapped() - mapped, 1u);
  EXPECT_EQ(SgaPool::depot_bytes(), 0u);
  EXPECT_EQ(SgaPool::process_registered_bytes(), k32M + kSlabSize);
  UnrefAll(b, held);
  EXPECT_EQ(SgaPool::process_registered_bytes(), k32M + kSlabSize);
}

// The same once A's thread has ended: B registers nothing at all.
TEST_F(SgaPoolDepotTest, ARetiredPoolsSlabsAreTakenByTheNext) {
  ASSERT_EQ(SgaPool::process_registered_bytes(), 0u);
  constexpr size_t kLimit = size_t{256} << 20;
  std::thread([&] {
    auto a = std::make_unique<SgaPool>(std::vector<ibv_pd*>{}, kLimit);
    std::vector<Buffer*> held = AllocateBytes(*a, k32M, k64K);
    UnrefAll(*a, held);
    SgaPool::Retire(std::move(a));
  }).join();
  EXPECT_EQ(SgaPool::depot_bytes(), k32M);
  EXPECT_EQ(SgaPool::process_registered_bytes(), k32M);
  size_t mapped = SgaPool::process_slabs_mapped();
  SgaPool b({}, kLimit);
  // Cut anew into another class: 64 B pieces, then 8 KiB ones.
  std::vector<Buffer*> small = AllocateBytes(b, k32M / 2, 64);
  std::vector<Buffer*> large = AllocateBytes(b, k32M / 2, 8192);
  EXPECT_EQ(SgaPool::process_slabs_mapped(), mapped);
  EXPECT_EQ(SgaPool::process_registered_bytes(), k32M);
  for (Buffer* buffer : small) std::memset(buffer->data, 1, 64);
  for (Buffer* buffer : large) std::memset(buffer->data, 2, 8192);
  EXPECT_EQ(small.front()->data[63], std::byte{1});
  EXPECT_EQ(large.back()->data[0], std::byte{2});
  UnrefAll(b, small);
  UnrefAll(b, large);
}

// A soak's burst (2,000 connections' receive buffers and then some): once
// freed, the process keeps the pool's spare and the depot's bound.
TEST_F(SgaPoolDepotTest, AfterABurstRegisteredMemoryComesBackDown) {
  ASSERT_EQ(SgaPool::process_registered_bytes(), 0u);
  constexpr size_t kBurst = size_t{160} << 20;
  SgaPool pool({}, size_t{256} << 20);
  std::vector<Buffer*> held = AllocateBytes(pool, kBurst, 8192);
  EXPECT_EQ(SgaPool::process_registered_bytes(), kBurst);
  UnrefAll(pool, held);
  EXPECT_EQ(pool.registered_bytes(), kSlabSize);
  EXPECT_EQ(SgaPool::depot_bytes(), kDepotBytes);
  EXPECT_EQ(SgaPool::process_registered_bytes(), kSlabSize + kDepotBytes);
  // Pieces of a large class are their own slabs: the same bound holds.
  held = AllocateBytes(pool, size_t{64} << 20, size_t{4} << 20);
  UnrefAll(pool, held);
  EXPECT_LE(SgaPool::process_registered_bytes(),
            kSlabSize + (size_t{4} << 20) + kDepotBytes);
}

// With no burst after it, the depot's memory goes too, after
// kDepotIdleTime; slabs deposited later stay until their own time is up.
TEST_F(SgaPoolDepotTest, IdleDepotSlabsAreUnmappedAfterTheIdleTime) {
  ASSERT_EQ(SgaPool::process_registered_bytes(), 0u);
  SgaPool pool({}, size_t{256} << 20);
  std::vector<Buffer*> held = AllocateBytes(pool, k32M / 2, k64K);
  UnrefAll(pool, held);
  ASSERT_EQ(SgaPool::depot_bytes(), k32M / 2 - kSlabSize);
  absl::Time first = rdma::MonotonicNow();
  // A sleeping thread wakes for it (RdmaLibOs::NextTimer).
  EXPECT_LE(SgaPool::NextDepotRelease(), first + kDepotIdleTime);
  EXPECT_GT(SgaPool::NextDepotRelease(),
            first + kDepotIdleTime - absl::Seconds(1));
  SgaPool::ReleaseIdleDepot(first);  // Just deposited: nothing goes.
  EXPECT_EQ(SgaPool::depot_bytes(), k32M / 2 - kSlabSize);
  absl::SleepFor(absl::Milliseconds(20));
  held = AllocateBytes(pool, k32M / 2, k64K);  // Takes the depot's back.
  EXPECT_EQ(SgaPool::depot_bytes(), 0u);
  UnrefAll(pool, held);
  ASSERT_EQ(SgaPool::depot_bytes(), k32M / 2 - kSlabSize);
  SgaPool::ReleaseIdleDepot(first + kDepotIdleTime);  // Too young still.
  EXPECT_EQ(SgaPool::depot_bytes(), k32M / 2 - kSlabSize);
  SgaPool::ReleaseIdleDepot(rdma::MonotonicNow() + kDepotIdleTime);
  EXPECT_EQ(SgaPool::depot_bytes(), 0u);
  EXPECT_EQ(SgaPool::NextDepotRelease(), absl::InfiniteFuture());
  EXPECT_EQ(SgaPool::process_registered_bytes(), kSlabSize);
}

// A shared receive queue after a burst of connections: its posted buffers
// (8 KiB) spread over many slabs, and a steady trickle of messages takes
// one and posts another. The posted set must gather into as few slabs as
// hold it, the rest going back, not stay spread for good: with one free
// list for the class, each refill took the buffer just freed, and the 16
// buffers kept 16 slabs registered.
TEST_F(SgaPoolDepotTest, ScatteredPiecesGatherSoSlabsEmpty) {
  ASSERT_EQ(SgaPool::process_registered_bytes(), 0u);
  constexpr size_t kPiece = 8192;
  constexpr size_t kPerSlab = kSlabSize / kPiece;
  constexpr size_t kSlabs = 16;
  SgaPool pool({}, size_t{256} << 20);
  std::vector<Buffer*> burst = AllocateBytes(pool, kSlabs * kSlabSize, kPiece);
  ASSERT_EQ(pool.registered_bytes(), kSlabs * kSlabSize);
  // One piece of each slab stays posted; the rest are freed.
  std::deque<Buffer*> posted;
  for (size_t i = 0; i < burst.size(); ++i) {
    if (i % kPerSlab == kPerSlab / 2) {
      posted.push_back(burst[i]);
    } else {
      pool.Unref(burst[i]);
    }
  }
  ASSERT_EQ(pool.registered_bytes(), kSlabs * kSlabSize);
  // Messages arrive in posting order; each is consumed, then the queue is
  // refilled by one.
  for (size_t message = 0; message < 4 * kSlabs; ++message) {
    pool.Unref(posted.front());
    posted.pop_front();
    posted.push_back(*pool.Allocate(kPiece));
  }
  // One slab holds the 16 posted buffers; the spare may be another.
  EXPECT_LE(pool.registered_bytes(), 2 * kSlabSize);
  for (Buffer* buffer : posted) pool.Unref(buffer);
}

// A spare nobody has used for kDepotIdleTime goes to the depot (and from
// there, after as long again, back to the system); one in use stays.
TEST_F(SgaPoolDepotTest, AnIdleSpareGoesToTheDepot) {
  ASSERT_EQ(SgaPool::process_registered_bytes(), 0u);
  SgaPool pool({}, kSlabSize * 4);
  pool.Unref(*pool.Allocate(k64K));
  ASSERT_EQ(pool.registered_bytes(), kSlabSize);  // The class's spare.
  absl::Time t = rdma::MonotonicNow();
  EXPECT_EQ(pool.NextSpareRelease(t), t + kDepotIdleTime);
  pool.ReleaseIdleSpares(t);  // Starts watching it.
  EXPECT_EQ(pool.NextSpareRelease(t), t + kDepotIdleTime);
  // Used in between: the watch starts again.
  pool.Unref(*pool.Allocate(k64K));
  pool.ReleaseIdleSpares(t + kDepotIdleTime);
  EXPECT_EQ(pool.registered_bytes(), kSlabSize);
  // A piece held across the checks keeps it too.
  Buffer* held = *pool.Allocate(k64K);
  pool.ReleaseIdleSpares(t + 3 * kDepotIdleTime);
  EXPECT_EQ(pool.registered_bytes(), kSlabSize);
  pool.Unref(held);
  pool.ReleaseIdleSpares(t + 4 * kDepotIdleTime);
  EXPECT_EQ(pool.registered_bytes(), kSlabSize);
  pool.ReleaseIdleSpares(t + 5 * kDepotIdleTime);
  EXPECT_EQ(pool.registered_bytes(), 0u);
  EXPECT_EQ(SgaPool::depot_bytes(), kSlabSize);
  EXPECT_EQ(pool.NextSpareRelease(t), absl::InfiniteFuture());
  // The pool works on: it takes the slab back.
  pool.Unref(*pool.Allocate(k64K));
  EXPECT_EQ(SgaPool::depot_bytes(), 0u);
  EXPECT_EQ(pool.registered_bytes(), kSlabSize);
}

// A steady allocate-free never moves a slab: the spare stays.
TEST_F(SgaPoolDepotTest, PingPongKeepsItsSlab) {
  ASSERT_EQ(SgaPool::process_registered_bytes(), 0u);
  SgaPool pool({}, kSlabSize * 4);
  Buffer* first = *pool.Allocate(k64K);
  pool.Unref(first);
  for (int i = 0; i < 100; ++i) {
    Buffer* buffer = *pool.Allocate(k64K);
    EXPECT_EQ(buffer, first);
    pool.Unref(buffer);
  }
  EXPECT_EQ(SgaPool::depot_bytes(), 0u);
  EXPECT_EQ(pool.registered_bytes(), kSlabSize);
}

// The limit makes room with the depot's slabs before the pool's own.
TEST_F(SgaPoolDepotTest, TheLimitUnmapsTheDepotFirst) {
  ASSERT_EQ(SgaPool::process_registered_bytes(), 0u);
  constexpr size_t kLimit = kSlabSize * 8;
  SgaPool pool({}, kLimit);
  std::vector<Buffer*> held = AllocateBytes(pool, kLimit, k64K);
  UnrefAll(pool, held);
  EXPECT_EQ(SgaPool::depot_bytes(), kLimit - kSlabSize);
  // 4 MiB pieces fit no depot slab: two of them unmap four depot slabs,
  // and the 64 KiB spare stays.
  held = AllocateBytes(pool, size_t{8} << 20, size_t{4} << 20);
  EXPECT_EQ(held.size(), 2u);
  EXPECT_EQ(SgaPool::depot_bytes(), kLimit - 5 * kSlabSize);
  EXPECT_EQ(SgaPool::process_registered_bytes(), kLimit);
  EXPECT_NE(pool.Allocate(k64K).value_or(nullptr), nullptr);
  UnrefAll(pool, held);
}

// The pieces of A's slab `moved` are lent, given back, and freed again by
// another thread: by then the slab is B's, cut the same way and lent.
TEST_F(SgaPoolDepotTest, AStaleHandleOfASlabNowAnotherPoolsIsRefused) {
  ASSERT_EQ(SgaPool::process_registered_bytes(), 0u);
  constexpr size_t kPieces = kSlabSize / k64K;
  SgaPool a({}, kSlabSize * 8);
  SgaPool b({}, kSlabSize * 8);
  std::vector<Buffer*> kept = AllocateBytes(a, kSlabSize, k64K);
  std::vector<Buffer*> moved = AllocateBytes(a, kSlabSize, k64K);
  ASSERT_NE(kept.front()->slab, moved.front()->slab);
  std::vector<void*> stale;
  for (Buffer* buffer : moved) {
    stale.push_back(a.Lend(buffer));
    ASSERT_EQ(a.Reclaim(stale.back()), buffer);
  }
  // Freed twice: once (above) by the application, once more by another
  // thread while the slab is still A's: handed over, not yet drained.
  std::thread([&] { EXPECT_EQ(a.FreeFromOtherThread(stale[0]), 0); }).join();
  UnrefAll(a, kept);   // A's spare.
  UnrefAll(a, moved);  // To the depot.
  EXPECT_EQ(SgaPool::depot_bytes(), kSlabSize);
  EXPECT_EQ(SgaPool::OwnerOf(stale[1]), nullptr);

  std::vector<Buffer*> live = AllocateBytes(b, kSlabSize, k64K);
  ASSERT_EQ(live.size(), kPieces);
  std::vector<void*> handles;
  for (size_t i = 0; i < kPieces; ++i) {
    handles.push_back(b.Lend(live[i]));
    std::memset(live[i]->data, static_cast<int>(i), k64K);
  }
  // The same slot and pieces, another generation.
  EXPECT_EQ(SgaPool::OwnerOf(stale[1]), &b);
  bool same_place = false;
  for (void* handle : handles) {
    same_place =
        same_place || (reinterpret_cast<uintptr_t>(handle) & 0xffffffffu) ==
                          (reinterpret_cast<uintptr_t>(stale[1]) & 0xffffffffu);
  }
  EXPECT_TRUE(same_place);

  for (void* handle : stale) {
    EXPECT_EQ(a.Reclaim(handle), nullptr);
    EXPECT_EQ(b.Reclaim(handle), nullptr);
    EXPECT_EQ(b.Find(handle, live[0]->data, 1), live[0]);  // By address.
  }
  std::thread([&] {
    for (void* handle : stale) {
      EXPECT_EQ(a.FreeFromOtherThread(handle), EINVAL);  // Not A's slab.
      EXPECT_EQ(SgaPool::OwnerOf(handle)->FreeFromOtherThread(handle), 0);
    }
  }).join();
  // A's drain finds the handle handed over before the move dead too.
  a.DrainOtherThreadFrees();
  EXPECT_EQ(a.dropped_other_thread_frees(), 1u);
  b.DrainOtherThreadFrees();
  EXPECT_EQ(b.dropped_other_thread_frees(), kPieces);
  EXPECT_EQ(b.lent_count(), kPieces);
  for (size_t i = 0; i < kPieces; ++i) {
    EXPECT_EQ(live[i]->refs, 1);
    EXPECT_EQ(live[i]->data[k64K - 1], static_cast<std::byte>(i));
    EXPECT_EQ(b.Reclaim(handles[i]), live[i]);
  }
  UnrefAll(b, live);
}

// A retired pool with a piece still lent: its other slabs go to the depot
// at once, the last one when the piece comes back, and B takes them all.
TEST_F(SgaPoolDepotTest, RetiredSlabsGoToTheDepotAndAreReused) {
  ASSERT_EQ(SgaPool::process_registered_bytes(), 0u);
  SgaPool* retired = nullptr;
  void* lent = nullptr;
  std::thread([&] {
    auto a = std::make_unique<SgaPool>(std::vector<ibv_pd*>{}, k32M);
    retired = a.get();
    std::vector<Buffer*> held = AllocateBytes(*a, kSlabSize * 4, k64K);
    lent = a->Lend(held.back());
    held.pop_back();
    UnrefAll(*a, held);
    SgaPool::Retire(std::move(a));
  }).join();
  EXPECT_EQ(SgaPool::depot_bytes(), 3 * kSlabSize);
  EXPECT_EQ(retired->registered_bytes(), kSlabSize);
  size_t mapped = SgaPool::process_slabs_mapped();
  SgaPool b({}, k32M);
  std::vector<Buffer*> held = AllocateBytes(b, kSlabSize * 3, 4096);
  EXPECT_EQ(SgaPool::process_slabs_mapped(), mapped);
  std::thread([&] {
    EXPECT_EQ(SgaPool::OwnerOf(lent), retired);
    EXPECT_EQ(retired->FreeFromOtherThread(lent), 0);
  }).join();
  EXPECT_EQ(retired->registered_bytes(), 0u);
  EXPECT_EQ(SgaPool::depot_bytes(), kSlabSize);
  std::vector<Buffer*> more = AllocateBytes(b, kSlabSize, 4096);
  EXPECT_EQ(SgaPool::process_slabs_mapped(), mapped);
  EXPECT_EQ(SgaPool::process_registered_bytes(), 4 * kSlabSize);
  EXPECT_EQ(retired->FreeFromOtherThread(lent), EINVAL);
  UnrefAll(b, held);
  UnrefAll(b, more);
}

// Four threads, each with its pool, allocate a burst of one class a round
// (another class each round), free most of it themselves and hand the
// rest to the next thread to free; some handles are freed twice. The
// bursts' slabs go idle and move through the depot into the other pools,
// and a tight limit trims it. Every piece carries its holder's tag at both
// ends, checked before it is freed: a piece lent twice, or freed into the
// wrong pool, shows as another tag. Each thread retires its pool while the
// next still holds its pieces.
TEST_F(SgaPoolDepotTest, FourThreadsMoveSlabsThroughTheDepot) {
  ASSERT_EQ(SgaPool::process_registered_bytes(), 0u);
  // See TheLimitHoldsAcrossPools: the first errno status, on one thread.
  EXPECT_FALSE(SgaPool({}, 0).Allocate(64).ok());
  constexpr int kThreads = 4;
  constexpr int kRounds = 300;
  constexpr size_t kLimit = size_t{96} << 20;
  const size_t kSizes[] = {
      64, 1000, 8192, k64K, size_t{1} << 20, size_t{4} << 20};
  struct Held {
    void* handle;
    std::byte* data;
    size_t size;
    std::byte tag;
  };
  std::mutex mutex;
  std::vector<Held> inbox[kThreads];  // Guarded by mutex.
  std::atomic<int> done{0};
  std::atomic<size_t> checked{0};
  auto check = [&](const Held& held) {
    EXPECT_EQ(held.data[0], held.tag);
    EXPECT_EQ(held.data[held.size - 1], held.tag);
    checked.fetch_add(1, std::memory_order_relaxed);
  };
  auto run = [&](int me) {
    auto pool = std::make_unique<SgaPool>(std::vector<ibv_pd*>{}, kLimit);
    std::mt19937 random(me);
    std::vector<Held> mine;
    auto free_mine = [&](size_t keep) {
      while (mine.size() > keep) {
        size_t i = random() % mine.size();
        Held held = mine[i];
        mine[i] = mine.back();
        mine.pop_back();
        check(held);
        Buffer* buffer = pool->Reclaim(held.handle);
        ASSERT_NE(buffer, nullptr);
        pool->Unref(buffer);
        // Now and then freed again, by a thread that does not know better.
        if (random() % 8 == 0) {
          SgaPool* owner = SgaPool::OwnerOf(held.handle);
          if (owner != nullptr) owner->FreeFromOtherThread(held.handle);
        }
      }
    };
    for (int round = 0; round < kRounds; ++round) {
      pool->DrainOtherThreadFrees();
      size_t size = kSizes[random() % 6];
      size_t count = std::min<size_t>(768, 1 + random() % ((6 << 20) / size));
      for (size_t n = 0; n < count; ++n) {
        absl::StatusOr<Buffer*> buffer = pool->Allocate(size);
        if (!buffer.ok()) {
          EXPECT_EQ(buffer.status().code(),
                    absl::StatusCode::kResourceExhausted);
          break;
        }
        auto tag = static_cast<std::byte>(random());
        (*buffer)->data[0] = (*buffer)->data[size - 1] = tag;
        mine.push_back({pool->Lend(*buffer), (*buffer)->data, size, tag});
      }
      // Some to the next thread, most back, a few kept for later.
      std::vector<Held> given;
      while (!mine.empty() && given.size() < count / 4) {
        given.push_back(mine.back());
        mine.pop_back();
      }
      free_mine(random() % 4);
      std::vector<Held> to_free;
      {
        std::lock_guard<std::mutex> lock(mutex);
        for (Held& held : given) inbox[(me + 1) % kThreads].push_back(held);
        to_free.swap(inbox[me]);
      }
      for (const Held& held : to_free) {
        check(held);
        SgaPool* owner = SgaPool::OwnerOf(held.handle);
        ASSERT_NE(owner, nullptr);
        EXPECT_EQ(owner->FreeFromOtherThread(held.handle), 0);
        if (random() % 8 == 0) owner->FreeFromOtherThread(held.handle);
      }
    }
    free_mine(0);
    pool->DrainOtherThreadFrees();
    SgaPool::Retire(std::move(pool));
    // The last pieces handed over, freed into retired pools.
    done.fetch_add(1);
    while (done.load() < kThreads) std::this_thread::yield();
    std::vector<Held> to_free;
    {
      std::lock_guard<std::mutex> lock(mutex);
      to_free.swap(inbox[me]);
    }
    for (const Held& held : to_free) {
      check(held);
      SgaPool* owner = SgaPool::OwnerOf(held.handle);
      ASSERT_NE(owner, nullptr);
      EXPECT_EQ(owner->FreeFromOtherThread(held.handle), 0);
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(run, i);
  for (std::thread& thread : threads) thread.join();
  EXPECT_GT(checked.load(), size_t{kThreads * kRounds});
  // Every pool is retired with nothing lent: all memory left is idle.
  EXPECT_EQ(SgaPool::process_registered_bytes(), SgaPool::depot_bytes());
  EXPECT_LE(SgaPool::depot_bytes(), kDepotBytes);
}

}  // namespace
}  // namespace demi
