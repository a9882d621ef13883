#include "testing/process_resources.h"

#include <demi/libos.h>
#include <malloc.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "testing/child_process.h"

namespace demi::testing {
namespace {

// Runs `command` and calls `line` for each line of its output that names
// `pid`, with the line's words.
template <typename F>
void ForEachLineOf(const char* command, pid_t pid, F line) {
  FILE* out = popen(command, "r");
  CHILD_CHECK(out != nullptr);
  char buffer[4096];
  std::string want = std::to_string(pid);
  while (std::fgets(buffer, sizeof(buffer), out) != nullptr) {
    std::istringstream words(buffer);
    std::vector<std::string> tokens;
    for (std::string word; words >> word;) tokens.push_back(word);
    bool ours = false;
    for (size_t i = 0; i + 1 < tokens.size(); ++i) {
      if (tokens[i] == "pid" && tokens[i + 1] == want) ours = true;
    }
    if (ours) line(tokens);
  }
  CHILD_CHECK(pclose(out) == 0);
}

}  // namespace

std::string Resources::ToString() const {
  return absl::StrFormat("%d QPs, %d CQs, %d MRs of %.1f MiB, heap %zu B", qps,
                         cqs, mrs, mr_bytes / 1048576.0, heap);
}

Resources ResourcesOf(pid_t pid) {
  Resources r;
  ForEachLineOf("rdma resource show qp", pid,
                [&](const std::vector<std::string>&) { ++r.qps; });
  ForEachLineOf("rdma resource show cq", pid,
                [&](const std::vector<std::string>&) { ++r.cqs; });
  ForEachLineOf(
      "rdma resource show mr", pid,
      [&](const std::vector<std::string>& tokens) {
        ++r.mrs;
        for (size_t i = 0; i + 1 < tokens.size(); ++i) {
          uint64_t len = 0;
          if (tokens[i] == "mrlen" && absl::SimpleAtoi(tokens[i + 1], &len)) {
            r.mr_bytes += len;
          }
        }
      });
  r.heap = mallinfo2().uordblks;
  return r;
}

void Progress(absl::Duration d) {
  absl::Time end = absl::Now() + d;
  while (absl::Now() < end) {
    demi_qresult_t qr;
    int n = 0;
    timespec wait = absl::ToTimespec(absl::Milliseconds(50));
    int err = demi_wait_next_n(&qr, 1, &n, &wait);
    CHILD_CHECK(err == 0 || err == ETIMEDOUT);
    CHILD_CHECK(n == 0 || qr.qr_opcode == DEMI_OPC_PUSH);
  }
}

Resources SettledResources() {
  Resources last = ResourcesOf(getpid());
  for (int i = 0; i < 20; ++i) {
    Progress(absl::Milliseconds(500));
    Resources now = ResourcesOf(getpid());
    if (now.qps == last.qps && now.mrs == last.mrs &&
        now.mr_bytes == last.mr_bytes) {
      return now;
    }
    last = now;
  }
  return last;
}

int EnvInt(const char* name, int fallback) {
  const char* text = std::getenv(name);
  int value = 0;
  return text != nullptr && absl::SimpleAtoi(text, &value) && value > 0
             ? value
             : fallback;
}

}  // namespace demi::testing
