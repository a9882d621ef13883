// Credit-based flow control over one shared receive queue (SRQ) per device.
//
// A peer may send only with a credit, and every credit it holds stands for
// a buffer posted in the SRQ, so a sender never relies on receiver-not-ready
// retries. Each connection has an allotment: credits its peer holds, credits
// on their way back to it, and messages taken but not yet given back. It
// starts at kBaseCredits, grows (doubling, up to kMaxConnCredits) when the
// peer says it is starved, within a device-wide growth budget, and shrinks
// back while the peer uses less than half of it. The SRQ is refilled to the
// sum of all allotments, so memory grows with what connections use, not
// with how many there are.
//
// Pure bookkeeping, no verbs: SharedReceive posts the buffers.
#ifndef DEMI_DEMI_CREDITS_H_
#define DEMI_DEMI_CREDITS_H_

#include <algorithm>
#include <cstdint>

#include "demi/limits.h"

namespace demi {

// The device-wide counts, shared by the connections of one SRQ.
struct CreditPool {
  uint32_t capacity = 0;      // The most buffers the SRQ holds.
  uint32_t growth_limit = 0;  // The most of `grown`.
  uint32_t connections = 0;   // Connections holding an allotment.
  uint32_t max_connections = UINT32_MAX;
  uint32_t posted = 0;  // Buffers in the SRQ.
  // Credits peers hold or that are on their way to them. Never more than
  // `posted`: that is what makes every credit good.
  uint32_t promised = 0;
  uint32_t allotted = 0;  // Sum of the allotments: the SRQ's refill level.
  uint32_t grown = 0;     // Allotments beyond kBaseCredits, summed.
  // Buffers posted beyond the allotments: credits are backed at once, and
  // the SRQ is refilled in batches, not a buffer per message.
  uint32_t spare = 0;

  // A peer that sends without credits takes buffers promised to others
  // (until its connection is aborted): then there is no headroom.
  uint32_t headroom() const {
    return posted > promised ? posted - promised : 0;
  }
  // Whether one more connection may take its base allotment here.
  bool HasRoom() const {
    return connections < max_connections && allotted + kBaseCredits <= capacity;
  }
  // Buffers the SRQ lacks to back every allotment and the spares.
  uint32_t deficit() const {
    uint32_t target = allotted + spare < capacity ? allotted + spare : capacity;
    return target > posted ? target - posted : 0;
  }
};

// One connection's side of the ledger. Not thread-safe.
class ConnectionCredits {
 public:
  explicit ConnectionCredits(CreditPool* pool) : pool_(pool) {}
  ~ConnectionCredits() { Close(); }
  ConnectionCredits(const ConnectionCredits&) = delete;
  ConnectionCredits& operator=(const ConnectionCredits&) = delete;

  // Adds kBaseCredits to the pool's allotment. False if the SRQ is full
  // (see CreditPool::HasRoom).
  bool Reserve();
  // Grants the base credits to the peer (it learns them from the connect
  // data), if posted buffers back them: call after Reserve and a refill.
  bool GrantInitial();
  // Gives the allotment back (the connection is gone). Idempotent.
  void Close();

  // A message arrived. False if the peer had no credit for it (a protocol
  // violation); `starved` is the header's kFlagStarved.
  bool OnArrival(bool starved);
  // A message has been dealt with (popped, or handled if it was control):
  // its credit may go back to the peer, unless the allotment shrinks.
  void OnConsumed();
  // Moves consumed credits to those owed as far as posted buffers back
  // them. Returns whether some still wait for buffers.
  bool Back();
  // The credits to put in the next header; the peer holds them from now.
  uint16_t TakeReturn();

  // Whether a CREDIT message should go now: half of an allotment that grew
  // is owed, or of the base one and the peer said it is starved (at least
  // kMinCreditReturn either way). A streaming peer keeps its pipe full, and
  // its credits come back in few messages.
  bool ReturnNow() const;
  // Whether the peer cannot send data until credits come back (and enough
  // are owed for a CREDIT message): the progress engine sends them if
  // nothing else carried them by its next pass (a reply usually does).
  bool ReturnSoon() const {
    return owed_ >= kMinCreditReturn && peer_credits_ <= 1;
  }
  // Whether the peer holds no credit at all while some are owed: it cannot
  // send even a control message (the rendezvous completion a push of this
  // side waits for, which this side's application may wait for before it
  // pops what would return more), nor ask for credits. See
  // Connection::CreditReturnDue.
  bool PeerStranded() const { return owed_ > 0 && peer_credits_ == 0; }

  uint32_t allotment() const { return allotment_; }
  uint32_t peer_credits() const { return peer_credits_; }
  uint32_t owed() const { return owed_; }
  uint32_t unbacked() const { return unbacked_; }

 private:
  void Grow();

  CreditPool* pool_;
  bool reserved_ = false;
  bool urgent_ = false;        // The peer said it is starved since the
                               // last return of credits,
  bool was_urgent_ = false;    // or before it.
  bool shrunk_ = false;        // The allotment shrank since the last return.
  uint32_t allotment_ = 0;     // peer_credits_ + owed_ + unbacked_ + taken.
  uint32_t peer_credits_ = 0;  // Granted, not yet used.
  uint32_t owed_ = 0;          // Backed, to return in the next header.
  uint32_t unbacked_ = 0;      // Consumed or grown; waiting for buffers.
};

// Inline: each runs once or twice per message.
inline bool ConnectionCredits::OnArrival(bool starved) {
  if (peer_credits_ == 0) return false;
  --peer_credits_;
  --pool_->promised;
  if (starved) {
    urgent_ = true;
    Grow();
  }
  return true;
}

inline void ConnectionCredits::OnConsumed() {
  // A peer that leaves half its credits unused does not need them all;
  // what it gives up lets others grow. By one credit per return at most,
  // and not while the peer was starved before the last return or since: a
  // streaming peer holds many credits right after a return too, and
  // shrinking its allotment then would starve it again.
  if (allotment_ > kBaseCredits && !urgent_ && !was_urgent_ && !shrunk_ &&
      peer_credits_ * 2 >= allotment_) {
    shrunk_ = true;
    --allotment_;
    --pool_->allotted;
    --pool_->grown;
    return;
  }
  ++unbacked_;
}

inline bool ConnectionCredits::Back() {
  uint32_t n = std::min(unbacked_, pool_->headroom());
  unbacked_ -= n;
  owed_ += n;
  pool_->promised += n;
  return unbacked_ > 0;
}

inline uint16_t ConnectionCredits::TakeReturn() {
  uint32_t credits = std::min<uint32_t>(owed_, UINT16_MAX);
  owed_ -= credits;
  peer_credits_ += credits;
  if (credits > 0) {
    was_urgent_ = urgent_;
    urgent_ = false;
    shrunk_ = false;
  }
  return static_cast<uint16_t>(credits);
}

inline bool ConnectionCredits::ReturnNow() const {
  // Half an allotment at a time, even to a starved peer: what it still has
  // on the way keeps coming meanwhile, and a peer with nothing left on the
  // way gets what is owed by ReturnSoon.
  return owed_ >= kMinCreditReturn && (allotment_ > kBaseCredits || urgent_) &&
         owed_ * 2 >= allotment_;
}

}  // namespace demi

#endif  // DEMI_DEMI_CREDITS_H_
