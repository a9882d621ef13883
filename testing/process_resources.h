// What a test process holds of the device and the heap, as `rdma resource
// show` and malloc count it: scale tests check that it stays bounded and
// that connections give all of theirs back.
#ifndef DEMI_TESTING_PROCESS_RESOURCES_H_
#define DEMI_TESTING_PROCESS_RESOURCES_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace demi::testing {

struct Resources {
  int qps = 0;
  int cqs = 0;
  int mrs = 0;
  uint64_t mr_bytes = 0;
  size_t heap = 0;  // Bytes malloc has handed out (not under ASan).

  std::string ToString() const;
};

// What `rdma resource show` lists for `pid`, and this process's heap.
Resources ResourcesOf(pid_t pid);

// Drives the progress engine for `d` (closes drain, QPs are destroyed).
// Only pushes may complete meanwhile: nothing else is expected.
void Progress(absl::Duration d);

// This process's resources once they stop changing (closed connections
// take a moment to drain).
Resources SettledResources();

// A positive integer from the environment, or `fallback`: the full forms
// of long tests are chosen this way.
int EnvInt(const char* name, int fallback);

}  // namespace demi::testing

#endif  // DEMI_TESTING_PROCESS_RESOURCES_H_
