// What a post of staged sends took, for the two stages (a connection's
// SendQueue and a datagram socket's): both post their staged requests in
// one chain, perhaps with the next request behind them.
#ifndef DEMI_DEMI_STAGED_CHAIN_H_
#define DEMI_DEMI_STAGED_CHAIN_H_

#include <infiniband/verbs.h>

#include <cstdint>

namespace demi {

// How many of `staged[0, n)` (each holding its request in `wr`, chained in
// that order, then `last`, which may be null) a post that returned `rc`
// and named `bad` posted: everything before the request it names; all of
// them if it succeeded or stopped at `last`, none if it names none.
template <typename Staged>
uint32_t StagedPosted(int rc, const ibv_send_wr* bad, const Staged* staged,
                      uint32_t n, const ibv_send_wr* last) {
  if (rc == 0 || (last != nullptr && bad == last)) return n;
  for (uint32_t i = 0; i < n; ++i) {
    if (bad == &staged[i].wr) return i;
  }
  return 0;
}

}  // namespace demi

#endif  // DEMI_DEMI_STAGED_CHAIN_H_
