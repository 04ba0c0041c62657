// process_sampler.cpp — /proc parsing: the comm field of /proc/PID/stat may hold spaces and
// parentheses, so fields are counted from the last ')'.
#include "process_sampler.h"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace epoll_echo::bench {
namespace {

double sumThreadRunSeconds(const std::string& base) {
  DIR* tasks = ::opendir((base + "/task").c_str());
  if (tasks == nullptr) return 0;
  unsigned long long nanoseconds = 0;
  while (const dirent* entry = ::readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream schedstat(base + "/task/" + entry->d_name + "/schedstat");
    unsigned long long run = 0;
    if (schedstat >> run) nanoseconds += run;
  }
  ::closedir(tasks);
  return static_cast<double>(nanoseconds) / 1e9;
}

}  // namespace

ProcessSample sampleProcess(pid_t pid) {
  ProcessSample sample;
  const std::string base = "/proc/" + std::to_string(pid);
  std::ifstream statFile(base + "/stat");
  std::string stat;
  if (!std::getline(statFile, stat)) return sample;
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return sample;
  std::istringstream fields(stat.substr(close + 2));  // field 3 (state) onwards
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int index = 3; index <= 15 && fields >> field; ++index) {
    if (index == 14) utime = std::stoull(field);
    if (index == 15) stime = std::stoull(field);
  }
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  sample.userSeconds = static_cast<double>(utime) / ticks;
  sample.systemSeconds = static_cast<double>(stime) / ticks;
  std::ifstream statusFile(base + "/status");
  std::string line;
  while (std::getline(statusFile, line)) {
    if (line.rfind("VmRSS:", 0) == 0) sample.rssKib = std::stoull(line.substr(6));
  }
  sample.runSeconds = sumThreadRunSeconds(base);
  sample.valid = true;
  return sample;
}

}  // namespace epoll_echo::bench
