#include "demi/qtoken_table.h"

#include <algorithm>
#include <cstring>

namespace demi {
namespace {

// Copies the header of `from` and the part of its value that its opcode
// fills in: a pop's segments, an accept's result. Most of a result's 244
// bytes are segments nobody filled.
void CopyResult(const demi_qresult_t& from, demi_qresult_t* to) {
  to->qr_opcode = from.qr_opcode;
  to->qr_qd = from.qr_qd;
  to->qr_qt = from.qr_qt;
  to->qr_ret = from.qr_ret;
  const demi_sgarray_t& sga = from.qr_value.sga;
  demi_sgarray_t& out = to->qr_value.sga;
  switch (from.qr_opcode) {
    case DEMI_OPC_POP:
      out.sga_buf = sga.sga_buf;
      out.sga_numsegs =
          std::min<uint32_t>(sga.sga_numsegs, DEMI_SGARRAY_MAXSIZE);
      for (uint32_t i = 0; i < out.sga_numsegs; ++i) {
        out.sga_segs[i] = sga.sga_segs[i];
      }
      out.sga_addr = sga.sga_addr;
      break;
    case DEMI_OPC_ACCEPT:
      to->qr_value.ares = from.qr_value.ares;
      break;
    default:  // No value: an empty sga, as before.
      out.sga_buf = nullptr;
      out.sga_numsegs = 0;
      break;
  }
}

}  // namespace

QTokenTable::Entry* QTokenTable::LookupOld(demi_qtoken_t qt) {
  if (qt == 0 || qt >= base_) return nullptr;
  auto it = old_.find(qt);
  return it == old_.end() ? nullptr : &it->second;
}

void QTokenTable::Forget(demi_qtoken_t qt, Entry& entry) {
  --live_;
  if (qt < base_) {
    old_.erase(qt);
    return;
  }
  entry.state = Entry::kGone;
  while (base_ < next_ && Slot(base_).state == Entry::kGone) ++base_;
}

demi_qtoken_t QTokenTable::Add(int qd, demi_opcode_t opcode) {
  // Make room: the oldest token still in the ring moves out of it.
  while (next_ - base_ >= kRingSize) {
    Entry& oldest = Slot(base_);
    if (oldest.state != Entry::kGone) old_.emplace(base_, oldest);
    oldest.state = Entry::kGone;
    ++base_;
  }
  demi_qtoken_t qt = next_++;
  Entry& entry = Slot(qt);
  entry.state = Entry::kPending;
  // The completions below fill in only their own fields: an empty result
  // here, without zeroing all of qr_value (most of it is segments).
  entry.result.qr_opcode = opcode;
  entry.result.qr_ret = 0;
  demi_sgarray_t& sga = entry.result.qr_value.sga;
  sga.sga_buf = nullptr;
  sga.sga_numsegs = 0;
  sga.sga_addr = {};
  entry.result.qr_qd = qd;
  entry.result.qr_qt = qt;
  ++live_;
  return qt;
}

bool QTokenTable::IsDone(demi_qtoken_t qt) {
  Entry* entry = Lookup(qt);
  return entry != nullptr && entry->state == Entry::kDone;
}

QTokenTable::Entry* QTokenTable::Pending(demi_qtoken_t qt) {
  Entry* entry = Lookup(qt);
  return entry != nullptr && entry->state == Entry::kPending ? entry : nullptr;
}

void QTokenTable::Finish(demi_qtoken_t qt, Entry& entry) {
  entry.state = Entry::kDone;
  done_order_.push_back(qt);
}

void QTokenTable::Complete(demi_qtoken_t qt, demi_qresult_t result) {
  Entry* entry = Pending(qt);
  if (entry == nullptr) return;
  result.qr_qd = entry->result.qr_qd;
  result.qr_qt = qt;
  if (result.qr_opcode == DEMI_OPC_INVALID) {
    result.qr_opcode = entry->result.qr_opcode;
  }
  entry->result = result;
  Finish(qt, *entry);
}

void QTokenTable::Fail(demi_qtoken_t qt, int err) {
  Entry* entry = Pending(qt);
  if (entry == nullptr) return;
  entry->result.qr_opcode = DEMI_OPC_FAILED;
  entry->result.qr_ret = err;
  Finish(qt, *entry);
}

void QTokenTable::Succeed(demi_qtoken_t qt, demi_opcode_t opcode) {
  Entry* entry = Pending(qt);
  if (entry == nullptr) return;
  entry->result.qr_opcode = opcode;
  Finish(qt, *entry);
}

void QTokenTable::CompletePop(demi_qtoken_t qt, void* handle, void* data,
                              uint32_t length, const sockaddr_in& from) {
  Entry* entry = Pending(qt);
  if (entry == nullptr) return;
  entry->result.qr_opcode = DEMI_OPC_POP;
  demi_sgarray_t& sga = entry->result.qr_value.sga;
  sga.sga_buf = handle;
  sga.sga_numsegs = 1;
  sga.sga_segs[0].sgaseg_buf = data;
  sga.sga_segs[0].sgaseg_len = length;
  sga.sga_addr = from;
  Finish(qt, *entry);
}

void QTokenTable::Erase(demi_qtoken_t qt) {
  if (Entry* entry = Lookup(qt)) Forget(qt, *entry);
}

void QTokenTable::Consume(demi_qtoken_t qt, Entry& entry, demi_qresult_t* out) {
  CopyResult(entry.result, out);
  Forget(qt, entry);
}

bool QTokenTable::Take(demi_qtoken_t qt, demi_qresult_t* out) {
  Entry* entry = Lookup(qt);
  if (entry == nullptr || entry->state != Entry::kDone) return false;
  Consume(qt, *entry, out);
  // Tokens taken by demi_wait stay in done_order_; keep it proportional.
  if (!done_order_.empty() && done_order_.front() == qt) {
    done_order_.pop_front();
  } else if (done_order_.size() > 2 * live_ + 1024) {
    done_order_.RetainIf([this](demi_qtoken_t t) { return IsDone(t); });
  }
  return true;
}

bool QTokenTable::TakeNextDoneSlow(demi_qresult_t* out) {
  while (!done_order_.empty()) {
    demi_qtoken_t qt = done_order_.front();
    done_order_.pop_front();
    Entry* entry = Lookup(qt);
    if (entry != nullptr && entry->state == Entry::kDone) {
      Consume(qt, *entry, out);
      return true;
    }
  }
  return false;
}

}  // namespace demi
