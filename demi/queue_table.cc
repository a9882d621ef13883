#include "demi/queue_table.h"

#include <cerrno>
#include <vector>

#include "demi/process_ids.h"
#include "rdma/status_util.h"

namespace demi {

QueueTable::~QueueTable() { Clear(); }

Queue* QueueTable::Insert(std::unique_ptr<Queue> queue) {
  queue->qd = TakeQd();
  Queue* raw = queue.get();
  queues_.emplace(raw->qd, std::move(queue));
  return raw;
}

absl::StatusOr<Queue*> QueueTable::Find(int qd) {
  Queue* queue = Open(qd);
  if (queue == nullptr) return rdma::ErrnoError(EBADF, "not an open queue");
  return queue;
}

bool QueueTable::Remember(int qd) {
  auto it = queues_.find(qd);
  if (it == queues_.end()) return false;
  found_qd_ = qd;
  found_ = it->second.get();
  return true;
}

void QueueTable::Erase(int qd) {
  auto it = queues_.find(qd);
  if (it == queues_.end()) return;
  if (found_ == it->second.get()) found_ = nullptr;
  queues_.erase(it);
  // Only once the queue is gone may another thread's new queue take it.
  GiveBackQd(qd);
}

void QueueTable::Clear() {
  found_ = nullptr;
  std::vector<int> qds;
  qds.reserve(queues_.size());
  for (const auto& entry : queues_) qds.push_back(entry.first);
  queues_.clear();
  for (int qd : qds) GiveBackQd(qd);
}

}  // namespace demi
