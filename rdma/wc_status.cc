#include "rdma/wc_status.h"

#include <cerrno>

namespace demi::rdma {

int WcStatusToErrno(ibv_wc_status status) {
  switch (status) {
    case IBV_WC_SUCCESS:
      return 0;
    case IBV_WC_RETRY_EXC_ERR:
    case IBV_WC_RNR_RETRY_EXC_ERR:
    case IBV_WC_RESP_TIMEOUT_ERR:
      return ETIMEDOUT;
    case IBV_WC_WR_FLUSH_ERR:
    case IBV_WC_REM_ABORT_ERR:
    case IBV_WC_REM_OP_ERR:
    case IBV_WC_REM_INV_RD_REQ_ERR:
    case IBV_WC_REM_INV_REQ_ERR:
    case IBV_WC_FATAL_ERR:
      return ECONNRESET;
    case IBV_WC_REM_ACCESS_ERR:
    case IBV_WC_LOC_ACCESS_ERR:
    case IBV_WC_LOC_PROT_ERR:
    case IBV_WC_MW_BIND_ERR:
      return EFAULT;
    case IBV_WC_LOC_LEN_ERR:
    case IBV_WC_LOC_QP_OP_ERR:
    case IBV_WC_LOC_EEC_OP_ERR:
    case IBV_WC_LOC_RDD_VIOL_ERR:
    case IBV_WC_INV_EECN_ERR:
    case IBV_WC_INV_EEC_STATE_ERR:
      return EINVAL;
    case IBV_WC_BAD_RESP_ERR:
      return EPROTO;
    default:
      return EIO;
  }
}

int WcStatusToConnectionErrno(ibv_wc_status status) {
  int err = WcStatusToErrno(status);
  return err == EINVAL ? ECONNRESET : err;
}

}  // namespace demi::rdma
