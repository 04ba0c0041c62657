// injected_fault.h — one fault-injection variable (plugin/fault_injection.h) set in this process
// for a test's lifetime. The test-only plugin build reads it when its workers set up (on threads
// that exist only inside the test, after it is set), so each test sets its own and unsets it.
#pragma once

#include <stdlib.h>

#include <string>

namespace epoll_echo::test {

class InjectedFault {
 public:
  InjectedFault(const char* name, const std::string& value) : name_(name) { ::setenv(name, value.c_str(), 1); }
  ~InjectedFault() { ::unsetenv(name_); }
  InjectedFault(const InjectedFault&) = delete;
  InjectedFault& operator=(const InjectedFault&) = delete;

 private:
  const char* name_;
};

}  // namespace epoll_echo::test
