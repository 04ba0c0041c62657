// event_sources.cpp — signalfd, timerfd and eventfd wrappers; all CLOEXEC and non-blocking so the
// main loop's poll() is the only place the host waits.
#include "event_sources.h"

#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace epoll_echo::host {
namespace {

[[noreturn]] void throwErrno(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

int checked(int fd, const char* what) {
  if (fd < 0) throwErrno(what);
  return fd;
}

}  // namespace

sigset_t serverSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int signal : {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2}) sigaddset(&set, signal);
  return set;
}

void blockServerSignals() {
  const sigset_t set = serverSignals();
  const int error = pthread_sigmask(SIG_BLOCK, &set, nullptr);
  if (error != 0) throw std::system_error(error, std::generic_category(), "pthread_sigmask SIG_BLOCK");
}

SignalFd::SignalFd() {
  const sigset_t set = serverSignals();
  fd_ = UniqueFd(checked(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK), "signalfd"));
}

std::optional<int> SignalFd::read() {
  signalfd_siginfo info;
  ssize_t got;
  do {
    got = ::read(fd_.get(), &info, sizeof info);
  } while (got < 0 && errno == EINTR);
  if (got < 0 && errno == EAGAIN) return std::nullopt;
  if (got != static_cast<ssize_t>(sizeof info)) throwErrno("read signalfd");
  return static_cast<int>(info.ssi_signo);
}

TimerFd::TimerFd(std::chrono::milliseconds period) {
  fd_ = UniqueFd(checked(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK), "timerfd_create"));
  itimerspec spec{};
  spec.it_interval.tv_sec = static_cast<time_t>(period.count() / 1000);
  spec.it_interval.tv_nsec = static_cast<long>(period.count() % 1000) * 1000000L;
  spec.it_value = spec.it_interval;
  checked(::timerfd_settime(fd_.get(), 0, &spec, nullptr), "timerfd_settime");
}

uint64_t TimerFd::consumeExpirations() {
  uint64_t expirations = 0;
  if (::read(fd_.get(), &expirations, sizeof expirations) != static_cast<ssize_t>(sizeof expirations)) return 0;
  return expirations;
}

OneShotTimer::OneShotTimer() {
  fd_ = UniqueFd(checked(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK), "timerfd_create"));
}

void OneShotTimer::arm(std::chrono::milliseconds delay) {
  itimerspec spec{};
  // A zero it_value would disarm the timer: one nanosecond still means "now".
  const long long nanoseconds = std::max<long long>(1, delay.count() * 1000000LL);
  spec.it_value.tv_sec = static_cast<time_t>(nanoseconds / 1000000000LL);
  spec.it_value.tv_nsec = static_cast<long>(nanoseconds % 1000000000LL);
  checked(::timerfd_settime(fd_.get(), 0, &spec, nullptr), "timerfd_settime");
}

void OneShotTimer::disarm() {
  const itimerspec spec{};
  checked(::timerfd_settime(fd_.get(), 0, &spec, nullptr), "timerfd_settime");
  consumeExpiry();  // an expiry that fired before disarming must not be seen later
}

bool OneShotTimer::consumeExpiry() {
  uint64_t expirations = 0;
  return ::read(fd_.get(), &expirations, sizeof expirations) == static_cast<ssize_t>(sizeof expirations) &&
         expirations > 0;
}

EventFd::EventFd() { fd_ = UniqueFd(checked(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd")); }

void EventFd::raise() {
  const uint64_t one = 1;
  // Only fails when the counter would overflow 2^64-2: it is already raised then.
  [[maybe_unused]] const ssize_t written = ::write(fd_.get(), &one, sizeof one);
}

bool EventFd::consume() {
  uint64_t value = 0;
  return ::read(fd_.get(), &value, sizeof value) == static_cast<ssize_t>(sizeof value) && value > 0;
}

}  // namespace epoll_echo::host
