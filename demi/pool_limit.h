// DEMI_POOL_LIMIT_MB: how much registered memory the pool may hold.
#ifndef DEMI_DEMI_POOL_LIMIT_H_
#define DEMI_DEMI_POOL_LIMIT_H_

#include <cstddef>

namespace demi {

// The pool limit in bytes that `text` (DEMI_POOL_LIMIT_MB's value, or null
// when it is unset) asks for: a positive whole number of MiB. Anything else
// gives kDefaultPoolLimit: null, not a number, 0, negative, or more bytes
// than a size_t counts. Pure; thread-safe.
size_t PoolLimitFromText(const char* text);

// PoolLimitFromText of the environment's DEMI_POOL_LIMIT_MB.
size_t PoolLimitFromEnv();

}  // namespace demi

#endif  // DEMI_DEMI_POOL_LIMIT_H_
