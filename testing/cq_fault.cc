#include "testing/cq_fault.h"

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>

namespace demi::testing {

namespace {

using PollFn = int (*)(ibv_cq*, int, ibv_wc*);
using PostSendFn = int (*)(ibv_qp*, ibv_send_wr*, ibv_send_wr**);

constexpr int kMaxContexts = 16;
struct Swapped {
  ibv_context* context = nullptr;
  PollFn poll = nullptr;
  PostSendFn post_send = nullptr;
};
Swapped swapped[kMaxContexts];
int num_swapped = 0;
std::atomic<CqFault> current{CqFault::kNone};
std::atomic<int> post_error{0};  // 0: posts go to the provider.
std::atomic<int> num_failed_posts{0};

// What kDeferReads kept, per CQ. `deferred_count` lets a poll without a
// fault skip the mutex while nothing is kept.
std::mutex deferred_mutex;
std::map<ibv_cq*, std::deque<ibv_wc>>* deferred_wcs = nullptr;
std::atomic<size_t> deferred_count{0};

const Swapped* SwappedOf(ibv_context* context) {
  for (int i = 0; i < num_swapped; ++i) {
    if (swapped[i].context == context) return &swapped[i];
  }
  return nullptr;  // Not a context we swapped: cannot happen.
}

// Hands back up to `num_entries` of what kDeferReads kept for `cq`.
int TakeDeferred(ibv_cq* cq, int num_entries, ibv_wc* wc) {
  std::lock_guard<std::mutex> lock(deferred_mutex);
  auto it = deferred_wcs->find(cq);
  if (it == deferred_wcs->end()) return 0;
  int n = std::min<int>(num_entries, static_cast<int>(it->second.size()));
  for (int i = 0; i < n; ++i) {
    wc[i] = it->second.front();
    it->second.pop_front();
  }
  if (it->second.empty()) deferred_wcs->erase(it);
  deferred_count -= n;
  return n;
}

// Polls the provider and keeps the successful READ completions; returns
// how many others it left at the front of `wc`.
int PollDeferringReads(PollFn poll, ibv_cq* cq, int num_entries, ibv_wc* wc) {
  int n = poll(cq, num_entries, wc);
  if (n <= 0) return n;
  int kept = 0;
  int passed = 0;
  std::lock_guard<std::mutex> lock(deferred_mutex);
  for (int i = 0; i < n; ++i) {
    if (wc[i].status == IBV_WC_SUCCESS && wc[i].opcode == IBV_WC_RDMA_READ) {
      (*deferred_wcs)[cq].push_back(wc[i]);
      ++kept;
    } else {
      wc[passed++] = wc[i];
    }
  }
  deferred_count += kept;
  return passed;
}

int FaultyPoll(ibv_cq* cq, int num_entries, ibv_wc* wc) {
  CqFault fault = current.load(std::memory_order_relaxed);
  if (fault == CqFault::kFail) return -1;
  if (fault == CqFault::kHold) return 0;
  const Swapped* context = SwappedOf(cq->context);
  if (context == nullptr) return -1;
  if (fault == CqFault::kDeferReads) {
    return PollDeferringReads(context->poll, cq, num_entries, wc);
  }
  if (deferred_count.load(std::memory_order_acquire) > 0) {
    // Kept completions first: they came before anything in the CQ now.
    if (int n = TakeDeferred(cq, num_entries, wc); n > 0) return n;
  }
  return context->poll(cq, num_entries, wc);
}

int FaultyPostSend(ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** bad_wr) {
  if (int err = post_error.load(std::memory_order_relaxed); err != 0) {
    ++num_failed_posts;
    *bad_wr = wr;
    return err;
  }
  const Swapped* context = SwappedOf(qp->context);
  if (context == nullptr) return EINVAL;
  return context->post_send(qp, wr, bad_wr);
}

// Once per process, and never undone: a poll or post may be running on
// another thread while we would swap it back.
void SwapOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    int count = 0;
    ibv_context** list = rdma_get_devices(&count);
    if (list == nullptr || count == 0 || count > kMaxContexts) {
      std::cerr << "cq_fault: no RDMA device to swap polls on\n";
      std::abort();
    }
    deferred_wcs = new std::map<ibv_cq*, std::deque<ibv_wc>>;
    for (int i = 0; i < count; ++i) {
      swapped[i] = {list[i], list[i]->ops.poll_cq, list[i]->ops.post_send};
      list[i]->ops.poll_cq = FaultyPoll;
      list[i]->ops.post_send = FaultyPostSend;
    }
    num_swapped = count;
    rdma_free_devices(list);
  });
}

}  // namespace

ScopedCqFault::ScopedCqFault(CqFault fault) {
  SwapOnce();
  current.store(fault, std::memory_order_relaxed);
}

ScopedCqFault::~ScopedCqFault() {
  current.store(CqFault::kNone, std::memory_order_relaxed);
}

size_t ScopedCqFault::deferred() {
  return deferred_count.load(std::memory_order_acquire);
}

ScopedPostSendFault::ScopedPostSendFault(int err) {
  SwapOnce();
  num_failed_posts = 0;
  post_error.store(err, std::memory_order_relaxed);
}

ScopedPostSendFault::~ScopedPostSendFault() {
  post_error.store(0, std::memory_order_relaxed);
}

int ScopedPostSendFault::failed_posts() const {
  return num_failed_posts.load();
}

}  // namespace demi::testing
