// EngineError: how set-up code inside the plugin reports a failure (an ABI code plus a detail
// message). Thrown only on control paths; the C boundary turns it into a return code.
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "epoll_echo.h"

namespace epoll_echo {

class EngineError : public std::runtime_error {
 public:
  EngineError(int code, const std::string& detail) : std::runtime_error(detail), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

// "what: strerror(errno)", the house format for a failed system call.
inline std::string describeErrno(const std::string& what, int error) {
  char buffer[128];
  // GNU strerror_r may return a static string instead of filling the buffer.
  const char* text = ::strerror_r(error, buffer, sizeof buffer);
  return what + ": " + text;
}

[[noreturn]] inline void throwErrno(int code, const std::string& what, int error = errno) {
  throw EngineError(code, describeErrno(what, error));
}

}  // namespace epoll_echo
