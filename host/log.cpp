// log.cpp — unbuffered, whole-line writes; nothing is lost if the process ends with _exit().
#include "log.h"

#include <unistd.h>

#include <cerrno>

namespace epoll_echo::host {
namespace {

void writeAll(int fd, const std::string& text) {
  const char* data = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    const ssize_t written = ::write(fd, data, left);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return;
    data += written;
    left -= static_cast<std::size_t>(written);
  }
}

}  // namespace

void logLine(const std::string& line) { writeAll(STDERR_FILENO, "epoll-server: " + line + "\n"); }

void printLine(const std::string& line) { writeAll(STDOUT_FILENO, line + "\n"); }

}  // namespace epoll_echo::host
