#include "demi/qtoken_table.h"

#include <cerrno>
#include <cstring>

#include "gtest/gtest.h"

namespace demi {
namespace {

demi_qresult_t PopResult(uint32_t length) {
  demi_qresult_t result;
  std::memset(&result, 0, sizeof(result));
  result.qr_opcode = DEMI_OPC_POP;
  result.qr_value.sga.sga_numsegs = 1;
  result.qr_value.sga.sga_segs[0].sgaseg_len = length;
  return result;
}

TEST(QTokenTableTest, TokensAreNeverZeroOrReused) {
  QTokenTable table;
  demi_qtoken_t a = table.Add(3, DEMI_OPC_POP);
  demi_qtoken_t b = table.Add(3, DEMI_OPC_POP);
  EXPECT_NE(a, 0u);
  EXPECT_NE(a, b);
  EXPECT_FALSE(table.Contains(0));
  EXPECT_FALSE(table.Contains(UINT64_MAX));
}

TEST(QTokenTableTest, ResultIsTakenOnceWithQdAndToken) {
  QTokenTable table;
  demi_qtoken_t qt = table.Add(7, DEMI_OPC_POP);
  EXPECT_FALSE(table.Take(qt).has_value());  // Still pending.
  table.Complete(qt, PopResult(42));
  absl::optional<demi_qresult_t> result = table.Take(qt);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->qr_opcode, DEMI_OPC_POP);
  EXPECT_EQ(result->qr_qd, 7);
  EXPECT_EQ(result->qr_qt, qt);
  EXPECT_EQ(result->qr_value.sga.sga_segs[0].sgaseg_len, 42u);
  EXPECT_FALSE(table.Contains(qt));
  EXPECT_FALSE(table.Take(qt).has_value());
}

TEST(QTokenTableTest, FailSetsOpcodeAndErrno) {
  QTokenTable table;
  demi_qtoken_t qt = table.Add(1, DEMI_OPC_PUSH);
  table.Fail(qt, ECONNRESET);
  table.Complete(qt, PopResult(1));  // A second completion is ignored.
  absl::optional<demi_qresult_t> result = table.Take(qt);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(result->qr_ret, ECONNRESET);
}

TEST(QTokenTableTest, NextDoneFollowsCompletionOrderAndSkipsTaken) {
  QTokenTable table;
  demi_qtoken_t a = table.Add(1, DEMI_OPC_PUSH);
  demi_qtoken_t b = table.Add(1, DEMI_OPC_PUSH);
  demi_qtoken_t c = table.Add(1, DEMI_OPC_PUSH);
  table.Fail(c, EIO);
  table.Fail(a, EIO);
  table.Fail(b, EIO);
  ASSERT_TRUE(table.Take(a).has_value());
  EXPECT_EQ(table.TakeNextDone()->qr_qt, c);
  EXPECT_EQ(table.TakeNextDone()->qr_qt, b);
  EXPECT_FALSE(table.TakeNextDone().has_value());
}

TEST(QTokenTableTest, ManyTakenTokensDoNotAccumulate) {
  QTokenTable table;
  for (int i = 0; i < 100000; ++i) {
    demi_qtoken_t qt = table.Add(1, DEMI_OPC_PUSH);
    demi_qtoken_t other = table.Add(1, DEMI_OPC_PUSH);
    table.Fail(other, EIO);
    table.Fail(qt, EIO);
    table.Take(qt);
    table.Take(other);
  }
  EXPECT_EQ(table.size(), 0u);
  EXPECT_FALSE(table.TakeNextDone().has_value());
}

}  // namespace
}  // namespace demi
