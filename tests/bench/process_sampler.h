// process_sampler.h — reads another process's CPU time (utime, stime from /proc/PID/stat) and
// resident memory (VmRSS from /proc/PID/status), to charge the server for the measured window;
// also the threads' exact run time from schedstat.
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace epoll_echo::bench {

struct ProcessSample {
  bool valid = false;
  double userSeconds = 0;
  double systemSeconds = 0;
  uint64_t rssKib = 0;
  // Sum of /proc/PID/task/*/schedstat run times: nanosecond precision where utime/stime count
  // 10 ms ticks; 0 when the kernel has no schedstat.
  double runSeconds = 0;
};

// Returns valid = false when the process is gone or /proc cannot be read.
ProcessSample sampleProcess(pid_t pid);

}  // namespace epoll_echo::bench
