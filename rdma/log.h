// A tiny stderr logger (absl/log is not in Abseil 20220623). DEMI_LOG(level)
// prints when `level` is at or above the threshold set by the environment
// variable DEMI_LOG_LEVEL (DEBUG, INFO, WARNING, ERROR; default WARNING).
#ifndef DEMI_RDMA_LOG_H_
#define DEMI_RDMA_LOG_H_

#include <sstream>

namespace demi::rdma {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// The threshold from DEMI_LOG_LEVEL, read once.
LogLevel LogThreshold();

// Collects one message and writes it to stderr, as one line, when destroyed.
class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;

  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};

}  // namespace demi::rdma

#define DEMI_LOG_LEVEL_DEBUG ::demi::rdma::LogLevel::kDebug
#define DEMI_LOG_LEVEL_INFO ::demi::rdma::LogLevel::kInfo
#define DEMI_LOG_LEVEL_WARNING ::demi::rdma::LogLevel::kWarning
#define DEMI_LOG_LEVEL_ERROR ::demi::rdma::LogLevel::kError

#define DEMI_LOG(level)                                                  \
  if (DEMI_LOG_LEVEL_##level < ::demi::rdma::LogThreshold()) {           \
  } else                                                                 \
    ::demi::rdma::LogMessage(DEMI_LOG_LEVEL_##level, __FILE__, __LINE__) \
        .stream()

#endif  // DEMI_RDMA_LOG_H_
