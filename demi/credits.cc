#include "demi/credits.h"

#include <algorithm>

namespace demi {

bool ConnectionCredits::Reserve() {
  if (reserved_ || !pool_->HasRoom()) return false;
  reserved_ = true;
  ++pool_->connections;
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
  --pool_->connections;
  pool_->promised -= peer_credits_ + owed_;
  pool_->allotted -= allotment_;
  pool_->grown -= allotment_ - kBaseCredits;
  allotment_ = peer_credits_ = owed_ = unbacked_ = 0;
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

}  // namespace demi
