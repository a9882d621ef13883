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
#include <thread>
#include <utility>
#include <vector>

#include "demi/limits.h"
#include "gtest/gtest.h"

namespace demi {
namespace {

void* Garbage(uintptr_t bits) { return reinterpret_cast<void*>(bits); }

TEST(SgaPoolTest, AHandleIsGivenBackOnce) {
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

TEST(SgaPoolTest, GarbageHandlesAreRefused) {
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

TEST(SgaPoolTest, FindWithAHandleLooksThereFirstAndChecksTheRange) {
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

TEST(SgaPoolTest, FindWithAHandleFindsASegmentFarPastItsPiece) {
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

TEST(SgaPoolTest, AHandleOfATrimmedSlabNamesNoLaterPiece) {
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

TEST(SgaPoolThreadTest, ACrossThreadFreeComesBackWhenTheOwnerDrains) {
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
TEST(SgaPoolThreadTest, CrossThreadFreesReuseTheMemory) {
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

TEST(SgaPoolThreadTest, GarbageAndDoubleCrossThreadFreesDoNoHarm) {
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

TEST(SgaPoolThreadTest, APoolRefusesAnotherThreadsPoolsHandles) {
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

TEST(SgaPoolThreadTest, AStaleHandleOfAGonePoolNamesNoPieceOfTheNext) {
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

TEST(SgaPoolThreadTest, ARetiredPoolKeepsLentMemoryUntilTheLastFree) {
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
  // The last one: unmapped, its slot given back.
  EXPECT_EQ(SgaPool::process_registered_bytes(), 0u);
  EXPECT_EQ(pool->registered_bytes(), 0u);
  EXPECT_EQ(SgaPool::OwnerOf(handles[1]), nullptr);
  EXPECT_EQ(pool->FreeFromOtherThread(handles[1]), EINVAL);
}

TEST(SgaPoolThreadTest, RetireWithNothingLentUnmapsAtOnce) {
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
  EXPECT_EQ(SgaPool::process_registered_bytes(), 0u);
  EXPECT_EQ(pool->registered_bytes(), 0u);
  EXPECT_EQ(pool->lent_count(), 0u);
  EXPECT_NE(SgaPool::OwnerOf(freed), pool);
  EXPECT_NE(SgaPool::OwnerOf(handed_over), pool);
  // The object stays for such late callers, and refuses them.
  EXPECT_EQ(pool->FreeFromOtherThread(handed_over), EINVAL);
}

TEST(SgaPoolThreadTest, TheLimitHoldsAcrossPools) {
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
  // The same class the other way round: a pool only makes room with its
  // own free slabs, unmapped for the new one.
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

}  // namespace
}  // namespace demi
