#include "rdma/wc_status.h"

#include <cerrno>

#include "gtest/gtest.h"

namespace demi::rdma {
namespace {

struct Case {
  ibv_wc_status status;
  int err;
};

TEST(WcStatusTest, MapsEveryStatusToTheDocumentedErrno) {
  const Case cases[] = {
      {IBV_WC_SUCCESS, 0},
      {IBV_WC_RETRY_EXC_ERR, ETIMEDOUT},
      {IBV_WC_RNR_RETRY_EXC_ERR, ETIMEDOUT},
      {IBV_WC_RESP_TIMEOUT_ERR, ETIMEDOUT},
      {IBV_WC_WR_FLUSH_ERR, ECONNRESET},
      {IBV_WC_REM_ABORT_ERR, ECONNRESET},
      {IBV_WC_REM_OP_ERR, ECONNRESET},
      {IBV_WC_REM_INV_REQ_ERR, ECONNRESET},
      {IBV_WC_REM_INV_RD_REQ_ERR, ECONNRESET},
      {IBV_WC_FATAL_ERR, ECONNRESET},
      {IBV_WC_REM_ACCESS_ERR, EFAULT},
      {IBV_WC_LOC_ACCESS_ERR, EFAULT},
      {IBV_WC_LOC_PROT_ERR, EFAULT},
      {IBV_WC_MW_BIND_ERR, EFAULT},
      {IBV_WC_LOC_LEN_ERR, EINVAL},
      {IBV_WC_LOC_QP_OP_ERR, EINVAL},
      {IBV_WC_LOC_EEC_OP_ERR, EINVAL},
      {IBV_WC_LOC_RDD_VIOL_ERR, EINVAL},
      {IBV_WC_INV_EECN_ERR, EINVAL},
      {IBV_WC_INV_EEC_STATE_ERR, EINVAL},
      {IBV_WC_BAD_RESP_ERR, EPROTO},
      {IBV_WC_GENERAL_ERR, EIO},
      {IBV_WC_TM_ERR, EIO},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(WcStatusToErrno(c.status), c.err) << ibv_wc_status_str(c.status);
  }
}

// A connection's own requests never carry the application's arguments:
// none of their failures may read as EINVAL (the soak saw pops fail with
// it while rxe could not transmit, the local link down).
TEST(WcStatusTest, ConnectionErrnoIsNeverEinval) {
  const Case local[] = {
      {IBV_WC_LOC_LEN_ERR, ECONNRESET},
      {IBV_WC_LOC_QP_OP_ERR, ECONNRESET},
      {IBV_WC_LOC_EEC_OP_ERR, ECONNRESET},
      {IBV_WC_LOC_RDD_VIOL_ERR, ECONNRESET},
      {IBV_WC_INV_EECN_ERR, ECONNRESET},
      {IBV_WC_INV_EEC_STATE_ERR, ECONNRESET},
      {IBV_WC_RETRY_EXC_ERR, ETIMEDOUT},
      {IBV_WC_WR_FLUSH_ERR, ECONNRESET},
      {IBV_WC_REM_ACCESS_ERR, EFAULT},
      {IBV_WC_BAD_RESP_ERR, EPROTO},
      {IBV_WC_SUCCESS, 0},
  };
  for (const Case& c : local) {
    EXPECT_EQ(WcStatusToConnectionErrno(c.status), c.err)
        << ibv_wc_status_str(c.status);
  }
  for (int status = IBV_WC_SUCCESS; status <= IBV_WC_TM_RNDV_INCOMPLETE;
       ++status) {
    EXPECT_NE(WcStatusToConnectionErrno(static_cast<ibv_wc_status>(status)),
              EINVAL)
        << ibv_wc_status_str(static_cast<ibv_wc_status>(status));
  }
}

}  // namespace
}  // namespace demi::rdma
