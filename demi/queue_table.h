// A thread's queue descriptors: qd -> Queue. Whether a qd names a queue the
// application may use (EBADF otherwise) is decided here and nowhere else.
#ifndef DEMI_DEMI_QUEUE_TABLE_H_
#define DEMI_DEMI_QUEUE_TABLE_H_

#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "demi/queue.h"

namespace demi {

// Not thread-safe; owned by RdmaLibOs. Queue descriptors come from the
// process's counter (process_ids.h), so another thread's qd is no qd here;
// each goes back when its queue is erased or the table destroyed.
class QueueTable {
 public:
  QueueTable() = default;
  ~QueueTable();
  QueueTable(const QueueTable&) = delete;
  QueueTable& operator=(const QueueTable&) = delete;

  // A new queue of the kind `State` names, under a fresh qd.
  template <typename State>
  Queue* Add() {
    auto queue = std::make_unique<Queue>();
    queue->state.emplace<State>();
    return Insert(std::move(queue));
  }

  // The queue `qd` names, open or closed (for the engine's own lists);
  // nullptr if none.
  Queue* Get(int qd) const {
    auto it = queues_.find(qd);
    return it == queues_.end() ? nullptr : it->second.get();
  }

  // The queue `qd` names if the application may use it: not closed, and not
  // an accepted connection that demi_accept has not handed out; nullptr
  // otherwise. Inline for the queue of the last call, which is nearly
  // always the one asked for (Push and Pop pay no hash then).
  Queue* Open(int qd) {
    if ((found_ == nullptr || qd != found_qd_) && !Remember(qd)) {
      return nullptr;
    }
    return found_->closed || found_->unclaimed ? nullptr : found_;
  }
  // The same as a Status: EBADF if `qd` is not open.
  absl::StatusOr<Queue*> Find(int qd);

  // Destroys the queue `qd` names (if any) and gives its qd back.
  void Erase(int qd);
  // Erases every queue.
  void Clear();

  // Calls `f(Queue&)` for each queue, in no order. `f` must not add or
  // erase queues.
  template <typename F>
  void ForEach(F&& f) const {
    for (const auto& entry : queues_) f(*entry.second);
  }

 private:
  Queue* Insert(std::unique_ptr<Queue> queue);
  // Makes `qd` the remembered queue; false if there is no such queue.
  bool Remember(int qd);

  absl::flat_hash_map<int, std::unique_ptr<Queue>> queues_;
  // The queue Open found last. Null when nothing is remembered: found_qd_
  // is then meaningless, since every int is a qd an application may pass
  // (-1, INT_MIN, a closed one).
  int found_qd_ = 0;
  Queue* found_ = nullptr;
};

}  // namespace demi

#endif  // DEMI_DEMI_QUEUE_TABLE_H_
