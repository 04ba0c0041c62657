// file_signature.h — what identifies one version of a file on disk, so the reload policy can tell a
// file that is still being written from one that has stopped changing.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>

namespace epoll_echo::host {

// A writer that is still busy changes size or mtime, and a rename brings a new inode.
struct FileSignature {
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = 0;
  long long modifiedNanoseconds = 0;
  bool operator==(const FileSignature& other) const;
  bool operator!=(const FileSignature& other) const { return !(*this == other); }
};

// stat() of `path`; nullopt when it does not exist (or cannot be read).
std::optional<FileSignature> fileSignature(const std::filesystem::path& path);

}  // namespace epoll_echo::host
