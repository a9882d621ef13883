#include "demi/qtoken_table.h"

#include "absl/base/attributes.h"

namespace demi {

QTokenTable::Entry* QTokenTable::LookupOld(demi_qtoken_t qt) {
  auto it = old_.find(qt);
  return it == old_.end() ? nullptr : &it->second;
}

void QTokenTable::ForgetOld(demi_qtoken_t qt) { old_.erase(qt); }

void QTokenTable::Evict(Entry& entry) {
  old_.emplace(entry.qt, entry);
  entry.state = Entry::kGone;
}

bool QTokenTable::IsDone(demi_qtoken_t qt) {
  Entry* entry = Lookup(qt);
  return entry != nullptr && entry->state == Entry::kDone;
}

bool QTokenTable::IsPendingSetup(demi_qtoken_t qt) {
  Entry* entry = Lookup(qt);
  return entry != nullptr && entry->state == Entry::kPending &&
         (entry->opcode == DEMI_OPC_CONNECT ||
          entry->opcode == DEMI_OPC_ACCEPT);
}

void QTokenTable::Fail(demi_qtoken_t qt, int err) {
  if (Entry* entry = Pending(qt)) {
    entry->opcode = DEMI_OPC_FAILED;
    entry->err = err;
    Finish(qt, *entry);
  }
}

void QTokenTable::CompleteAccept(demi_qtoken_t qt, int qd,
                                 const sockaddr_in& peer) {
  if (Entry* entry = Pending(qt)) {
    entry->opcode = DEMI_OPC_ACCEPT;
    entry->accepted = qd;
    entry->addr = peer;
    Finish(qt, *entry);
  }
}

void QTokenTable::Erase(demi_qtoken_t qt) {
  if (Entry* entry = Lookup(qt)) Forget(qt, *entry);
}

// Inline in both takes: a call per result costs as much as its writes.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void QTokenTable::Consume(
    demi_qtoken_t qt, Entry& entry, demi_qresult_t* out) {
  out->qr_opcode = entry.opcode;
  out->qr_qd = entry.qd;
  out->qr_qt = qt;
  out->qr_ret = entry.err;
  demi_sgarray_t& sga = out->qr_value.sga;
  switch (entry.opcode) {
    case DEMI_OPC_POP:
      sga.sga_buf = entry.handle;
      sga.sga_numsegs = 1;
      sga.sga_segs[0].sgaseg_buf = entry.data;
      sga.sga_segs[0].sgaseg_len = entry.length;
      sga.sga_addr = entry.addr;
      break;
    case DEMI_OPC_ACCEPT:
      out->qr_value.ares.qd = entry.accepted;
      out->qr_value.ares.addr = entry.addr;
      break;
    default:  // No value: an empty sga.
      sga.sga_buf = nullptr;
      sga.sga_numsegs = 0;
      break;
  }
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
