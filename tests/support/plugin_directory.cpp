// plugin_directory.cpp — the hot-swap tests' plugin directory and /proc/PID/maps reading.
#include "support/plugin_directory.h"

#include <fstream>
#include <sstream>

#include "support/elf_file.h"

namespace epoll_echo::test {

namespace fs = std::filesystem;

PluginDirectory::PluginDirectory(const std::string& prefix)
    : temporary_(prefix), plugin_(temporary_.path() / kPluginName) {
  fs::copy_file(EPOLL_ECHO_PLUGIN_PATH, plugin_);
}

void PluginDirectory::install(const std::string& bytes) const {
  const fs::path staging = path() / kStagingName;
  writeWholeFile(staging, bytes);
  fs::rename(staging, plugin_);
}

void PluginDirectory::installCopyOf(const fs::path& source) const { install(readWholeFile(source)); }

std::set<std::string> PluginDirectory::mappedPluginFiles(pid_t pid, PluginMappings which) const {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::set<std::string> files;
  for (std::string line; std::getline(maps, line);) {
    std::istringstream fields(line);
    std::string range, permissions, offset, device, inode, mapped;
    if (!(fields >> range >> permissions >> offset >> device >> inode >> mapped)) continue;
    bool counted = false;
    if (which == PluginMappings::PluginAndItsCopies) {
      counted = mapped == plugin_.string() || mapped == std::string("/memfd:") + kPluginName;
    } else {
      const bool inDirectory = mapped.rfind(path().string(), 0) == 0 && fs::path(mapped).extension() == ".so";
      counted = mapped.rfind("/memfd:", 0) == 0 || inDirectory;
    }
    if (counted) files.insert(device + " " + inode + " " + mapped);
  }
  return files;
}

std::set<std::string> PluginDirectory::entries() const {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(path())) names.insert(entry.path().filename().string());
  return names;
}

}  // namespace epoll_echo::test
