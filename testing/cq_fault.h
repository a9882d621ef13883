// Completion queues that fail on demand, for the faults no device produces
// when asked: a CQ in error (mlx5's CQ_POLL_ERR after an overrun) and
// completions that never come. It swaps the provider's poll_cq in every
// device context librdmacm shares (rdma_get_devices: the contexts the
// library's CQs are made on), so the library's own ibv_poll_cq calls meet
// the fault; everything else about the device stays real.
#ifndef DEMI_TESTING_CQ_FAULT_H_
#define DEMI_TESTING_CQ_FAULT_H_

namespace demi::testing {

enum class CqFault {
  kNone,  // Polls go to the provider.
  kFail,  // Every poll returns -1.
  kHold,  // Every poll returns 0: completions stay in the CQ, unseen.
};

// Applies `fault` to every CQ of the process while it lives; the provider's
// polls come back when it goes. One at a time.
class ScopedCqFault {
 public:
  explicit ScopedCqFault(CqFault fault);
  ~ScopedCqFault();
  ScopedCqFault(const ScopedCqFault&) = delete;
  ScopedCqFault& operator=(const ScopedCqFault&) = delete;
};

}  // namespace demi::testing

#endif  // DEMI_TESTING_CQ_FAULT_H_
