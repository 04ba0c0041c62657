// log.h — the host's two output streams: log lines ("epoll-server: ...") on stderr, stats lines on
// stdout (so a script can read stdout alone). Each line is one write(): lines never interleave.
#pragma once

#include <string>

namespace epoll_echo::host {

// Writes "epoll-server: <line>\n" to stderr. [any-thread]; errors are ignored (nowhere to report).
void logLine(const std::string& line);

// Writes "<line>\n" to stdout. [any-thread]; a closed stdout (EPIPE, SIGPIPE ignored) is ignored.
void printLine(const std::string& line);

}  // namespace epoll_echo::host
