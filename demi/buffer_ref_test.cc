// BufferRef without a device: a pool with no protection domains registers
// nothing, and its pieces' reference counts and free lists show what a
// BufferRef gave back.
#include "demi/buffer_ref.h"

#include <utility>

#include "demi/limits.h"
#include "demi/sga_pool.h"
#include "gtest/gtest.h"

namespace demi {
namespace {

TEST(BufferRefTest, GivesThePieceBackWhenItGoes) {
  SgaPool pool({}, kSlabSize * 4);
  Buffer* buffer = *pool.Allocate(100);
  size_t free_before = buffer->slab->free_count;
  {
    BufferRef ref(buffer);
    EXPECT_EQ(ref.get(), buffer);
    EXPECT_EQ(buffer->refs, 1);
  }
  EXPECT_EQ(buffer->refs, 0);
  EXPECT_EQ(buffer->slab->free_count, free_before + 1);
  // Back on the free list: the next piece of its class is this one.
  EXPECT_EQ(*pool.Allocate(100), buffer);
  pool.Unref(buffer);
}

TEST(BufferRefTest, AMoveCarriesTheReferenceAndAnAssignmentDropsTheOld) {
  SgaPool pool({}, kSlabSize * 4);
  Buffer* first = *pool.Allocate(64);
  Buffer* second = *pool.Allocate(64);
  BufferRef a(first);
  BufferRef b = std::move(a);
  EXPECT_FALSE(a);
  EXPECT_EQ(b.get(), first);
  EXPECT_EQ(first->refs, 1);  // Moved, not shared.
  b = BufferRef(second);
  EXPECT_EQ(first->refs, 0);  // Given back by the assignment.
  EXPECT_EQ(second->refs, 1);
  b = std::move(b);  // A self-move keeps what it holds.
  EXPECT_EQ(b.get(), second);
  EXPECT_EQ(second->refs, 1);
  b.reset();
  EXPECT_FALSE(b);
  EXPECT_EQ(second->refs, 0);
}

TEST(BufferRefTest, ShareAddsAReferenceAndReleaseHandsOneOver) {
  SgaPool pool({}, kSlabSize * 4);
  Buffer* buffer = *pool.Allocate(64);
  {
    BufferRef shared = BufferRef::Share(buffer);
    EXPECT_EQ(buffer->refs, 2);
  }
  EXPECT_EQ(buffer->refs, 1);  // The caller's own is still there.
  BufferRef mine(buffer);
  EXPECT_EQ(mine.release(), buffer);
  EXPECT_FALSE(mine);
  EXPECT_EQ(buffer->refs, 1);  // Released, not given back.
  pool.Unref(buffer);
  EXPECT_EQ(buffer->refs, 0);
}

}  // namespace
}  // namespace demi
