// plugin_image.h — the private copy of a plugin file that the host really loads: the file's bytes
// in a sealed memfd, checked (elf_check.h) and handed to dlopen() as /proc/self/fd/N.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "event_sources.h"

namespace epoll_echo::host {

// A plugin that cannot be used; what() is one line naming the path and the symbol or versions.
class PluginError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Owns one sealed in-memory copy of a plugin file. Why a copy: glibc hands back an already-loaded
// object for a path or inode it has open (a reload would get the old code), `cp` over the file
// would rewrite pages a running engine executes, and a file that changes after it was checked
// could still crash the loader. The memfd has its own inode, lives only in this process (nothing
// is written anywhere, nothing is left behind however the process ends), and its seals forbid
// any write, shrink or grow, so the bytes checked are the bytes mapped.
// Keep it open while the library is loaded: glibc knows the object by "/proc/self/fd/N", and a
// reused N would make a later dlopen() of that name return the old object. Main thread only.
class PluginImage {
 public:
  // Copies `path` (a symlink is followed) and checks the copy with findElfProblem(). Throws
  // PluginError: "cannot load plugin PATH: no such file", "plugin PATH is truncated: ...",
  // "plugin PATH changed while it was being copied ...".
  explicit PluginImage(const std::filesystem::path& path);
  PluginImage(PluginImage&&) noexcept = default;
  PluginImage& operator=(PluginImage&&) noexcept = default;

  const std::filesystem::path& sourcePath() const { return sourcePath_; }
  std::string loadPath() const;  // "/proc/self/fd/N", for dlopen()

  // True while any page of the copy is mapped in this process (/proc/self/maps, by device and
  // inode): after dlclose() this proves the loader really unmapped it. False if maps is unreadable.
  bool isMapped() const;

  // Leaves the memfd open until the process ends, for a copy that stays mapped: its fd number,
  // and so its /proc/self/fd/N name, is then never reused.
  void keepOpenForever();

 private:
  void copyFrom(int source);
  void seal();
  void check() const;

  std::filesystem::path sourcePath_;
  UniqueFd memory_;
  dev_t device_ = 0;
  ino_t inode_ = 0;
  off_t size_ = 0;
};

}  // namespace epoll_echo::host
