// What must be unique across the libOSes of a process (one per thread):
// queue descriptors, and the range each libOS draws its tokens from. So a
// thread handed another thread's qd finds no queue under it (EBADF), and
// another thread's token is no token of its own (EINVAL).
#ifndef DEMI_DEMI_PROCESS_IDS_H_
#define DEMI_DEMI_PROCESS_IDS_H_

#include <cstdint>

namespace demi {

// A qd no live queue of any thread has (QdCounter's order). Takes a
// process-wide lock: for socket, accept and close, never per message.
int TakeQd();
// `qd` names no queue any more.
void GiveBackQd(int qd);

// The first token of a new libOS: its number in the top kTokenIdBits, so
// that the ranges of 2^16 - 2 libOSes made in a row never meet (a range
// holds 2^48 tokens), and no token is 0 or UINT64_MAX. Numbers go round,
// skipping those of live libOSes: another thread's token is never one of
// this thread's, however many threads came and went. (Only with all 2^16 - 2
// live at once would two share one.)
inline constexpr int kTokenIdBits = 16;
uint64_t TakeTokenRange();
// The libOS whose range starts at `first` is gone: after the next round,
// its number may be taken again.
void GiveBackTokenRange(uint64_t first);

}  // namespace demi

#endif  // DEMI_DEMI_PROCESS_IDS_H_
