#include "demi/buffer_ref.h"

namespace demi {

void BufferRef::GiveBack(Buffer* buffer) { buffer->slab->pool->Unref(buffer); }

}  // namespace demi
