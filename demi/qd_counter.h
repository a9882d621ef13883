// Hands out queue descriptors: positive ints, counting up from 1 and
// wrapping from INT_MAX back to 1, skipping any still in use. So no qd ever
// names two queues, even on a server that has made 2^31 connections, and a
// closed qd names a new queue only after 2^31 - 1 others were made.
#ifndef DEMI_DEMI_QD_COUNTER_H_
#define DEMI_DEMI_QD_COUNTER_H_

#include <climits>

namespace demi {

class QdCounter {
 public:
  // The next qd for which `in_use(qd)` is false.
  template <typename InUse>
  int Next(InUse in_use) {
    while (true) {
      int qd = next_;
      next_ = next_ == INT_MAX ? 1 : next_ + 1;
      if (!in_use(qd)) return qd;
    }
  }

  // Where the count goes on from (a positive int): for tests of the wrap.
  void SetNext(int next) { next_ = next > 0 ? next : 1; }

 private:
  int next_ = 1;
};

}  // namespace demi

#endif  // DEMI_DEMI_QD_COUNTER_H_
