#include "rdma/log.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace demi::rdma {
namespace {

LogLevel ParseLevel(const char* text) {
  if (text == nullptr) return LogLevel::kWarning;
  if (std::strcmp(text, "DEBUG") == 0) return LogLevel::kDebug;
  if (std::strcmp(text, "INFO") == 0) return LogLevel::kInfo;
  if (std::strcmp(text, "ERROR") == 0) return LogLevel::kError;
  return LogLevel::kWarning;
}

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "D";
    case LogLevel::kInfo:
      return "I";
    case LogLevel::kWarning:
      return "W";
    case LogLevel::kError:
      return "E";
  }
  return "?";
}

}  // namespace

LogLevel LogThreshold() {
  static const LogLevel threshold = ParseLevel(std::getenv("DEMI_LOG_LEVEL"));
  return threshold;
}

LogMessage::LogMessage(LogLevel level, const char* file, int line) {
  const char* base = std::strrchr(file, '/');
  stream_ << "demi " << LevelName(level) << " "
          << (base != nullptr ? base + 1 : file) << ":" << line << "] ";
}

LogMessage::~LogMessage() {
  stream_ << '\n';
  std::string text = stream_.str();
  std::fwrite(text.data(), 1, text.size(), stderr);
}

}  // namespace demi::rdma
