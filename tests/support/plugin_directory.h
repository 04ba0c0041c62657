// plugin_directory.h — for the hot-swap tests: a private directory holding a copy of the built
// plugin that a server runs from, new builds put in place as a linker does (written under another
// name, renamed over the plugin), and the plugin files a running server has mapped.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <set>
#include <string>

#include "support/temporary_directory.h"

namespace epoll_echo::test {

// Which of a server's mappings mappedPluginFiles() counts as plugin files.
enum class PluginMappings {
  // The plugin file itself, or a memory copy named after it ("/memfd:libepoll_echo.so (deleted)").
  PluginAndItsCopies,
  // Any memory file, and any .so in the directory: also a copy or a build under another name.
  AnyMemoryFileOrLibraryInTheDirectory,
};

// Owns the directory and everything in it (removed by the destructor). Use from one thread.
class PluginDirectory {
 public:
  static constexpr const char* kPluginName = "libepoll_echo.so";
  static constexpr const char* kStagingName = "staging.tmp";  // where install() writes first

  // `prefix` names the directory; the built plugin is copied in as kPluginName.
  explicit PluginDirectory(const std::string& prefix);

  const std::filesystem::path& path() const { return temporary_.path(); }
  const std::filesystem::path& plugin() const { return plugin_; }

  // Puts `bytes` in place as the plugin: a new inode, as a rebuild leaves it.
  void install(const std::string& bytes) const;
  void installCopyOf(const std::filesystem::path& source) const;

  // Distinct plugin files mapped in process `pid`, as "major:minor inode path".
  std::set<std::string> mappedPluginFiles(pid_t pid, PluginMappings which) const;

  // The names in the directory.
  std::set<std::string> entries() const;

 private:
  TemporaryDirectory temporary_;
  std::filesystem::path plugin_;
};

}  // namespace epoll_echo::test
