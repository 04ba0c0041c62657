// plugin_watcher.h — --watch: inotify on the plugin's directory, reporting when a new file appears
// under the plugin's name (a linker's write-then-rename, or a plain write that was closed).
#pragma once

#include <filesystem>
#include <string>

#include "unique_fd.h"

namespace epoll_echo::host {

// Watches the directory of one file for IN_CLOSE_WRITE and IN_MOVED_TO of that file's name. The
// directory, not the file: a rename replaces the inode, and a watch on the old inode would see
// nothing. Non-blocking; main thread only.
class PluginWatcher {
 public:
  explicit PluginWatcher(const std::filesystem::path& pluginPath);  // throws std::system_error
  int fd() const { return fd_.get(); }
  // Reads every queued event; true if any was about the plugin's name. An overflowed queue
  // counts as one: a change may have been dropped.
  bool consumeChanges();

 private:
  UniqueFd fd_;
  std::string fileName_;
  std::filesystem::path directory_;
};

}  // namespace epoll_echo::host
