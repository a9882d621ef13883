// Completion queues and send queues that fail on demand, for the faults no
// device produces when asked: a CQ in error (mlx5's CQ_POLL_ERR after an
// overrun), completions that never come or come late, and an
// ibv_post_send that fails. It swaps the provider's poll_cq (and
// post_send) in every device context librdmacm shares (rdma_get_devices:
// the contexts the library's CQs and QPs are made on), so the library's
// own ibv_poll_cq and ibv_post_send calls meet the fault; everything else
// about the device stays real.
#ifndef DEMI_TESTING_CQ_FAULT_H_
#define DEMI_TESTING_CQ_FAULT_H_

#include <cstddef>

namespace demi::testing {

enum class CqFault {
  kNone,  // Polls go to the provider.
  kFail,  // Every poll returns -1.
  kHold,  // Every poll returns 0: completions stay in the CQ, unseen.
  // Successful RDMA READ completions are taken from the provider and kept,
  // unseen; the others pass. Polls of a CQ after the fault get its kept
  // ones first, in order: a READ that completed then, as late as a test
  // wants.
  kDeferReads,
};

// Applies `fault` to every CQ of the process while it lives; the provider's
// polls come back when it goes. One at a time.
class ScopedCqFault {
 public:
  explicit ScopedCqFault(CqFault fault);
  ~ScopedCqFault();
  ScopedCqFault(const ScopedCqFault&) = delete;
  ScopedCqFault& operator=(const ScopedCqFault&) = delete;

  // Completions kDeferReads keeps, not yet handed back. Any thread.
  static size_t deferred();
};

// Fails every ibv_post_send of the process with `err` while it lives (the
// requests are not posted; *bad_wr names the first). One at a time.
class ScopedPostSendFault {
 public:
  explicit ScopedPostSendFault(int err);
  ~ScopedPostSendFault();
  ScopedPostSendFault(const ScopedPostSendFault&) = delete;
  ScopedPostSendFault& operator=(const ScopedPostSendFault&) = delete;

  // The posts failed since it was made. Any thread.
  int failed_posts() const;
};

}  // namespace demi::testing

#endif  // DEMI_TESTING_CQ_FAULT_H_
