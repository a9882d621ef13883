#include "demi/qtoken_table.h"

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

void QTokenTable::CompactDoneOrder() {
  done_order_.RetainIf([this](demi_qtoken_t t) { return IsDone(t); });
}

}  // namespace demi
