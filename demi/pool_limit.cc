#include "demi/pool_limit.h"

#include <cstdint>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "demi/limits.h"

namespace demi {

size_t PoolLimitFromText(const char* text) {
  size_t mb = 0;
  // Above SIZE_MAX >> 20 the shift wraps (2^44 MiB gives 0, and every
  // allocation fails): out of range, like a number SimpleAtoi rejects.
  if (text != nullptr && absl::SimpleAtoi(text, &mb) && mb > 0 &&
      mb <= (SIZE_MAX >> 20)) {
    return mb << 20;
  }
  return kDefaultPoolLimit;
}

size_t PoolLimitFromEnv() {
  return PoolLimitFromText(std::getenv("DEMI_POOL_LIMIT_MB"));
}

}  // namespace demi
