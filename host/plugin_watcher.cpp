// plugin_watcher.cpp — the inotify side of --watch; debouncing and retries are the reload
// policy's (reload_policy.h), reloading is the server's.
#include "plugin_watcher.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace epoll_echo::host {

PluginWatcher::PluginWatcher(const std::filesystem::path& pluginPath)
    : fileName_(pluginPath.filename().string()), directory_(pluginPath.parent_path()) {
  if (directory_.empty()) directory_ = ".";
  fd_ = UniqueFd(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (fd_.get() < 0) throw std::system_error(errno, std::generic_category(), "inotify_init1");
  if (::inotify_add_watch(fd_.get(), directory_.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
    throw std::system_error(errno, std::generic_category(), "inotify_add_watch " + directory_.string());
  }
}

bool PluginWatcher::consumeChanges() {
  // Aligned as the kernel writes inotify_event records; room for many events per read.
  alignas(inotify_event) char buffer[16 * (sizeof(inotify_event) + 256)];
  bool changed = false;
  for (;;) {
    const ssize_t got = ::read(fd_.get(), buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return changed;  // EAGAIN: drained
    for (ssize_t offset = 0; offset < got;) {
      inotify_event event;
      std::memcpy(&event, buffer + offset, sizeof event);
      const char* name = buffer + offset + sizeof event;
      if ((event.mask & IN_Q_OVERFLOW) != 0 || (event.len > 0 && fileName_ == name)) changed = true;
      offset += static_cast<ssize_t>(sizeof event + event.len);
    }
  }
}

}  // namespace epoll_echo::host
