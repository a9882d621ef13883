// The pool's bookkeeping without a device: a pool with no protection
// domains registers nothing, so slabs, free lists and handles can be
// checked on any host.
#include "demi/sga_pool.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
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

}  // namespace
}  // namespace demi
