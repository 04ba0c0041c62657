// plugin_image.cpp — copying a plugin file into a sealed memfd, checking it, and finding out
// whether the loader still maps it.
#include "plugin_image.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string_view>

#include "elf_check.h"

// Linux 6.3 and later: the memfd may be mapped executable even where vm.memfd_noexec = 1 makes
// new memfds non-executable by default. Older kernels refuse the flag (EINVAL).
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

namespace epoll_echo::host {
namespace {

// Far above any build of the plugin (a few MiB with debug information); a larger "plugin" is a
// mistake, and the copy lives in memory.
constexpr off_t kMaxPluginSize = off_t{1} << 30;

std::string errnoText(const char* call) { return std::string(call) + ": " + std::strerror(errno); }

int createMemfd(const std::string& name) {
  const int fd = ::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  if (fd >= 0 || errno != EINVAL) return fd;
  return ::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);  // a kernel before 6.3
}

bool sameVersion(const struct stat& before, const struct stat& after) {
  return before.st_ino == after.st_ino && before.st_size == after.st_size &&
         before.st_mtim.tv_sec == after.st_mtim.tv_sec && before.st_mtim.tv_nsec == after.st_mtim.tv_nsec &&
         before.st_ctim.tv_sec == after.st_ctim.tv_sec && before.st_ctim.tv_nsec == after.st_ctim.tv_nsec;
}

// Writes all of `data` to `fd`; false with errno set on failure.
bool writeAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t written = ::write(fd, data, size);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return false;
    data += written;
    size -= static_cast<size_t>(written);
  }
  return true;
}

}  // namespace

PluginImage::PluginImage(const std::filesystem::path& path) : sourcePath_(path) {
  // O_NONBLOCK: a FIFO at the path must not block the server in open(); it is refused below.
  UniqueFd source(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (source.get() < 0) {
    if (errno == ENOENT) throw PluginError("cannot load plugin " + path.string() + ": no such file");
    throw PluginError("cannot load plugin " + path.string() + ": " + errnoText("open"));
  }
  copyFrom(source.get());
  seal();
  check();
}

std::string PluginImage::loadPath() const { return "/proc/self/fd/" + std::to_string(memory_.get()); }

void PluginImage::copyFrom(int source) {
  const std::string prefix = "cannot load plugin " + sourcePath_.string() + ": ";
  struct stat before;
  if (::fstat(source, &before) != 0) throw PluginError(prefix + errnoText("fstat"));
  if (!S_ISREG(before.st_mode)) throw PluginError(prefix + "not a regular file");
  // Reads of a regular file never return EAGAIN; the flag only mattered for open().
  if (before.st_size > kMaxPluginSize) {
    throw PluginError(prefix + "the file has " + std::to_string(before.st_size) +
                      " bytes, more than a plugin can have");
  }
  // The name shows in /proc/PID/maps as "/memfd:libepoll_echo.so (deleted)"; at most 249 bytes.
  const std::string name = sourcePath_.filename().string().substr(0, 200);
  memory_ = UniqueFd(createMemfd(name));
  if (memory_.get() < 0) {
    // EACCES: vm.memfd_noexec = 2 forbids executable memfds, so no plugin can be loaded this way.
    const std::string hint = errno == EACCES ? " (see sysctl vm.memfd_noexec)" : "";
    throw PluginError(prefix + errnoText("memfd_create") + hint);
  }
  char buffer[64 * 1024];
  off_t copied = 0;
  for (;;) {
    const ssize_t got = ::read(source, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw PluginError(prefix + errnoText("read"));
    if (got == 0) break;
    if (!writeAll(memory_.get(), buffer, static_cast<size_t>(got))) throw PluginError(prefix + errnoText("write"));
    copied += got;
    if (copied > kMaxPluginSize) break;  // growing while read: caught below
  }
  // A writer that is still busy (a `cp` over the file) changes its size or times meanwhile: the
  // copy may mix two versions. A rename over the path does not matter: the open file is the old one.
  struct stat after;
  if (::fstat(source, &after) != 0) throw PluginError(prefix + errnoText("fstat"));
  if (!sameVersion(before, after) || copied != before.st_size) {
    throw PluginError("plugin " + sourcePath_.string() + " changed while it was being copied (" +
                      std::to_string(before.st_size) + " bytes when the copy began, " + std::to_string(after.st_size) +
                      " at its end): it is still being written");
  }
}

void PluginImage::seal() {
  if (::fcntl(memory_.get(), F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    throw PluginError("cannot load plugin " + sourcePath_.string() + ": " + errnoText("fcntl F_ADD_SEALS"));
  }
  struct stat status;
  if (::fstat(memory_.get(), &status) != 0) {
    throw PluginError("cannot load plugin " + sourcePath_.string() + ": " + errnoText("fstat"));
  }
  device_ = status.st_dev;
  inode_ = status.st_ino;
  size_ = status.st_size;
}

void PluginImage::check() const {
  std::string problem;
  if (size_ == 0) {
    problem = findElfProblem({});
  } else {
    // Safe to map and read: the seals guarantee the memfd cannot shrink under the mapping.
    void* bytes = ::mmap(nullptr, static_cast<size_t>(size_), PROT_READ, MAP_PRIVATE, memory_.get(), 0);
    if (bytes == MAP_FAILED) {
      throw PluginError("cannot load plugin " + sourcePath_.string() + ": " + errnoText("mmap"));
    }
    problem = findElfProblem(std::string_view(static_cast<const char*>(bytes), static_cast<size_t>(size_)));
    ::munmap(bytes, static_cast<size_t>(size_));
  }
  if (!problem.empty()) throw PluginError("plugin " + sourcePath_.string() + " " + problem);
}

bool PluginImage::isMapped() const {
  if (memory_.get() < 0) return false;
  std::ifstream maps("/proc/self/maps");
  // "start-end perms offset major:minor inode path", the device in hex.
  for (std::string line; std::getline(maps, line);) {
    unsigned deviceMajor = 0;
    unsigned deviceMinor = 0;
    uintmax_t inode = 0;
    if (std::sscanf(line.c_str(), "%*s %*s %*s %x:%x %ju", &deviceMajor, &deviceMinor, &inode) != 3) continue;
    if (inode == inode_ && deviceMajor == major(device_) && deviceMinor == minor(device_)) return true;
  }
  return false;
}

void PluginImage::keepOpenForever() { static_cast<void>(memory_.release()); }

}  // namespace epoll_echo::host
