#include "demi/credits.h"

#include <algorithm>

namespace demi {

bool ConnectionCredits::Reserve() {
  if (reserved_ || pool_->allotted + kBaseCredits > pool_->capacity) {
    return false;
  }
  reserved_ = true;
  allotment_ = kBaseCredits;
  pool_->allotted += kBaseCredits;
  return true;
}

bool ConnectionCredits::GrantInitial() {
  if (!reserved_ || peer_credits_ != 0 || pool_->headroom() < kBaseCredits) {
    return false;
  }
  peer_credits_ = kBaseCredits;
  pool_->promised += kBaseCredits;
  return true;
}

void ConnectionCredits::Close() {
  if (!reserved_) return;
  reserved_ = false;
  pool_->promised -= peer_credits_ + owed_;
  pool_->allotted -= allotment_;
  pool_->grown -= allotment_ - kBaseCredits;
  allotment_ = peer_credits_ = owed_ = unbacked_ = 0;
}

bool ConnectionCredits::OnArrival(bool starved) {
  if (peer_credits_ == 0) return false;
  --peer_credits_;
  --pool_->promised;
  if (starved) {
    urgent_ = true;
    Grow();
  }
  return true;
}

void ConnectionCredits::OnConsumed() {
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

void ConnectionCredits::Grow() {
  uint32_t room = std::min({allotment_, kMaxConnCredits - allotment_,
                            pool_->growth_limit - pool_->grown,
                            pool_->capacity - pool_->allotted});
  allotment_ += room;
  unbacked_ += room;
  pool_->allotted += room;
  pool_->grown += room;
}

bool ConnectionCredits::Back() {
  uint32_t n = std::min(unbacked_, pool_->headroom());
  unbacked_ -= n;
  owed_ += n;
  pool_->promised += n;
  return unbacked_ > 0;
}

uint16_t ConnectionCredits::TakeReturn() {
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

bool ConnectionCredits::ReturnNow() const {
  // Half an allotment at a time, even to a starved peer: what it still has
  // on the way keeps coming meanwhile, and a peer with nothing left on the
  // way gets what is owed by ReturnSoon.
  return owed_ >= kMinCreditReturn && (allotment_ > kBaseCredits || urgent_) &&
         owed_ * 2 >= allotment_;
}

}  // namespace demi
