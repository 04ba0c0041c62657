// timeouts.h — the one place the tests' deadlines are defined. Each bounds a wait that normally ends
// in milliseconds: generous enough that a sanitizer build on two busy cores never fails for lack of
// speed, short enough that a broken build still fails in bounded time. Tests check behaviour, never
// speed; a limit that is itself a requirement (a refusal within a second) stays in its test.
#pragma once

#include <chrono>

namespace epoll_echo::test {

// True in ASan/UBSan/TSan builds, which run several times slower: tests scale volumes down.
constexpr bool kSanitizedBuild =
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    true;
#else
    false;
#endif
#else
    false;
#endif

// A requirement's time limit as a sanitizer build can meet it (they start several times slower).
constexpr std::chrono::milliseconds sanitizerScaledLimit(std::chrono::milliseconds limit) {
  return kSanitizedBuild ? 4 * limit : limit;
}

// One client step on loopback: a connect, a send, a receive, an EOF, or an engine counter settling.
constexpr std::chrono::seconds kIoTimeout{15};

// One step of a server process: its start line, a log line, a reload, a stop, a run to completion.
constexpr std::chrono::seconds kServerTimeout{30};

// Megabytes over many connections at once, or a loop that keeps a load running until it settles.
constexpr std::chrono::seconds kBulkTimeout{60};

}  // namespace epoll_echo::test
