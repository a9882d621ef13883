// An rdma_cm id's context is the qd of the queue it belongs to, so that an
// event finds its queue through the QueueTable, and finds none once the
// queue is gone (a pointer would dangle).
#ifndef DEMI_DEMI_CM_CONTEXT_H_
#define DEMI_DEMI_CM_CONTEXT_H_

#include <rdma/rdma_cma.h>

#include <cstdint>

namespace demi {

inline void* ContextOf(int qd) {
  return reinterpret_cast<void*>(static_cast<intptr_t>(qd));
}

inline int QdOf(const rdma_cm_id* id) {
  return static_cast<int>(reinterpret_cast<intptr_t>(id->context));
}

}  // namespace demi

#endif  // DEMI_DEMI_CM_CONTEXT_H_
