// PushOpCache without a device: pushes reuse finished PushOps, reset.
#include "demi/push_op.h"

#include <memory>
#include <vector>

#include "demi/limits.h"
#include "gtest/gtest.h"

namespace demi {
namespace {

TEST(PushOpCacheTest, AFinishedPushIsReusedAsNew) {
  PushOpCache cache;
  std::unique_ptr<PushOp> op = cache.Take();
  ASSERT_NE(op, nullptr);
  op->qt = 7;
  op->length = 4096;
  op->sges.push_back({1, 2, 3});
  op->binds.push_back({});
  op->rndv.num_segments = 2;
  op->is_rndv = true;
  op->is_close = true;
  PushOp* raw = op.get();
  cache.Give(std::move(op));
  std::unique_ptr<PushOp> again = cache.Take();
  ASSERT_EQ(again.get(), raw);
  EXPECT_EQ(again->qt, 0u);
  EXPECT_EQ(again->length, 0u);
  EXPECT_TRUE(again->sges.empty());
  EXPECT_TRUE(again->binds.empty());
  EXPECT_EQ(again->rndv.num_segments, 0u);
  EXPECT_FALSE(again->is_rndv);
  EXPECT_FALSE(again->is_close);
  // Empty again: a new one.
  EXPECT_NE(cache.Take().get(), raw);
  cache.Give(nullptr);  // Nothing to keep.
  EXPECT_NE(cache.Take(), nullptr);
}

TEST(PushOpCacheTest, KeepsAtMostkSparePushOps) {
  PushOpCache cache;
  std::vector<std::unique_ptr<PushOp>> ops;
  for (uint32_t i = 0; i < kSparePushOps + 5; ++i) ops.push_back(cache.Take());
  std::vector<PushOp*> kept;
  for (auto& op : ops) {
    if (kept.size() < kSparePushOps) kept.push_back(op.get());
    cache.Give(std::move(op));
  }
  // The first kSparePushOps come back, last in first out; then new ones.
  std::vector<std::unique_ptr<PushOp>> taken;
  for (uint32_t i = 0; i < kSparePushOps; ++i) {
    taken.push_back(cache.Take());
    EXPECT_EQ(taken.back().get(), kept[kSparePushOps - 1 - i]);
  }
  std::unique_ptr<PushOp> fresh = cache.Take();
  for (PushOp* k : kept) EXPECT_NE(fresh.get(), k);
}

}  // namespace
}  // namespace demi
