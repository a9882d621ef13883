#include "testing/cq_fault.h"

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include <atomic>
#include <cstdlib>
#include <iostream>

namespace demi::testing {

namespace {

using PollFn = int (*)(ibv_cq*, int, ibv_wc*);

constexpr int kMaxContexts = 16;
struct Swapped {
  ibv_context* context = nullptr;
  PollFn provider = nullptr;
};
Swapped swapped[kMaxContexts];
int num_swapped = 0;
std::atomic<CqFault> current{CqFault::kNone};

int FaultyPoll(ibv_cq* cq, int num_entries, ibv_wc* wc) {
  switch (current.load(std::memory_order_relaxed)) {
    case CqFault::kFail:
      return -1;
    case CqFault::kHold:
      return 0;
    case CqFault::kNone:
      break;
  }
  for (int i = 0; i < num_swapped; ++i) {
    if (swapped[i].context == cq->context) {
      return swapped[i].provider(cq, num_entries, wc);
    }
  }
  return -1;  // Not a context we swapped: cannot happen.
}

}  // namespace

ScopedCqFault::ScopedCqFault(CqFault fault) {
  if (num_swapped == 0) {
    // Once per process, and never undone: a poll may be running on
    // another thread while we would swap it back.
    int count = 0;
    ibv_context** list = rdma_get_devices(&count);
    if (list == nullptr || count == 0 || count > kMaxContexts) {
      std::cerr << "ScopedCqFault: no RDMA device to swap polls on\n";
      std::abort();
    }
    for (int i = 0; i < count; ++i) {
      swapped[i] = {list[i], list[i]->ops.poll_cq};
      list[i]->ops.poll_cq = FaultyPoll;
    }
    num_swapped = count;
    rdma_free_devices(list);
  }
  current.store(fault, std::memory_order_relaxed);
}

ScopedCqFault::~ScopedCqFault() {
  current.store(CqFault::kNone, std::memory_order_relaxed);
}

}  // namespace demi::testing
