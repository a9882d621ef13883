// One reference to a pool piece, given back when the BufferRef goes: a
// received message, a send's header or a push holds its pieces this way,
// so that no path (an error, an abort, a teardown) can forget one.
#ifndef DEMI_DEMI_BUFFER_REF_H_
#define DEMI_DEMI_BUFFER_REF_H_

#include <utility>

#include "demi/sga_pool.h"

namespace demi {

// Move-only; null when empty.
class BufferRef {
 public:
  BufferRef() = default;
  // Takes over one reference to `buffer` (may be null) from the caller.
  explicit BufferRef(Buffer* buffer) : buffer_(buffer) {}
  // A new reference to `buffer`, beside the ones others hold.
  static BufferRef Share(Buffer* buffer) {
    ++buffer->refs;
    return BufferRef(buffer);
  }
  BufferRef(BufferRef&& other) noexcept : buffer_(other.release()) {}
  BufferRef& operator=(BufferRef&& other) noexcept {
    reset(other.release());
    return *this;
  }
  BufferRef(const BufferRef&) = delete;
  BufferRef& operator=(const BufferRef&) = delete;
  ~BufferRef() {
    if (buffer_ != nullptr) GiveBack(buffer_);
  }

  Buffer* get() const { return buffer_; }
  Buffer* operator->() const { return buffer_; }
  explicit operator bool() const { return buffer_ != nullptr; }

  // Hands the reference to the caller.
  Buffer* release() { return std::exchange(buffer_, nullptr); }
  // Gives back the reference held (if any), and holds `buffer`'s instead.
  void reset(Buffer* buffer = nullptr) {
    Buffer* old = std::exchange(buffer_, buffer);
    if (old != nullptr) GiveBack(old);
  }

 private:
  // Out of line: what is inlined where a BufferRef goes (every send slot,
  // every receive) stays a test and a branch. Defined beside the pool, in
  // sga_pool.cc.
  static void GiveBack(Buffer* buffer);

  Buffer* buffer_ = nullptr;
};

}  // namespace demi

#endif  // DEMI_DEMI_BUFFER_REF_H_
