// file_signature.cpp — a file's identity and version from stat().
#include "file_signature.h"

#include <sys/stat.h>

namespace epoll_echo::host {

bool FileSignature::operator==(const FileSignature& other) const {
  return device == other.device && inode == other.inode && size == other.size &&
         modifiedNanoseconds == other.modifiedNanoseconds;
}

std::optional<FileSignature> fileSignature(const std::filesystem::path& path) {
  struct stat status;
  if (::stat(path.c_str(), &status) != 0) return std::nullopt;
  FileSignature signature;
  signature.device = status.st_dev;
  signature.inode = status.st_ino;
  signature.size = status.st_size;
  signature.modifiedNanoseconds = static_cast<long long>(status.st_mtim.tv_sec) * 1000000000LL + status.st_mtim.tv_nsec;
  return signature;
}

}  // namespace epoll_echo::host
