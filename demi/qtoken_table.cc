#include "demi/qtoken_table.h"

#include <cstring>

namespace demi {

demi_qtoken_t QTokenTable::Add(int qd, demi_opcode_t opcode) {
  demi_qtoken_t qt = next_++;
  Entry& entry = entries_[qt];
  entry.result.qr_opcode = opcode;
  entry.result.qr_qd = qd;
  entry.result.qr_qt = qt;
  return qt;
}

bool QTokenTable::IsDone(demi_qtoken_t qt) const {
  auto it = entries_.find(qt);
  return it != entries_.end() && it->second.done;
}

void QTokenTable::Complete(demi_qtoken_t qt, demi_qresult_t result) {
  auto it = entries_.find(qt);
  if (it == entries_.end() || it->second.done) return;
  Entry& entry = it->second;
  result.qr_qd = entry.result.qr_qd;
  result.qr_qt = qt;
  if (result.qr_opcode == DEMI_OPC_INVALID) {
    result.qr_opcode = entry.result.qr_opcode;
  }
  entry.result = result;
  entry.done = true;
  done_order_.push_back(qt);
}

void QTokenTable::Fail(demi_qtoken_t qt, int err) {
  demi_qresult_t result;
  std::memset(&result, 0, sizeof(result));
  result.qr_opcode = DEMI_OPC_FAILED;
  result.qr_ret = err;
  Complete(qt, result);
}

absl::optional<demi_qresult_t> QTokenTable::Take(demi_qtoken_t qt) {
  auto it = entries_.find(qt);
  if (it == entries_.end() || !it->second.done) return absl::nullopt;
  demi_qresult_t result = it->second.result;
  entries_.erase(it);
  // Tokens taken by demi_wait stay in done_order_; keep it proportional.
  if (!done_order_.empty() && done_order_.front() == qt) {
    done_order_.pop_front();
  } else if (done_order_.size() > 2 * entries_.size() + 1024) {
    std::deque<demi_qtoken_t> live;
    for (demi_qtoken_t t : done_order_) {
      if (IsDone(t)) live.push_back(t);
    }
    done_order_.swap(live);
  }
  return result;
}

absl::optional<demi_qresult_t> QTokenTable::TakeNextDone() {
  while (!done_order_.empty()) {
    demi_qtoken_t qt = done_order_.front();
    done_order_.pop_front();
    if (absl::optional<demi_qresult_t> result = Take(qt)) return result;
  }
  return absl::nullopt;
}

}  // namespace demi
