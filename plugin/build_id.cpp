// Finds this object's NT_GNU_BUILD_ID note among the loaded objects with dl_iterate_phdr().
#include "build_id.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace epoll_echo {
namespace {

struct Search {
  uintptr_t base = 0;
  std::string hex;
};

std::string hexOf(const unsigned char* bytes, size_t count) {
  static const char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (size_t i = 0; i < count; ++i) {
    hex += kDigits[bytes[i] >> 4];
    hex += kDigits[bytes[i] & 0xf];
  }
  return hex;
}

// Walks the notes of one PT_NOTE segment; returns the build-id in hex or "".
std::string buildIdInNotes(const char* notes, size_t size) {
  size_t offset = 0;
  auto align4 = [](size_t value) { return (value + 3) & ~size_t{3}; };
  while (offset + sizeof(ElfW(Nhdr)) <= size) {
    const auto* header = reinterpret_cast<const ElfW(Nhdr)*>(notes + offset);
    const size_t nameAt = offset + sizeof(ElfW(Nhdr));
    const size_t descAt = nameAt + align4(header->n_namesz);
    if (descAt + header->n_descsz > size) return "";
    if (header->n_type == NT_GNU_BUILD_ID && header->n_namesz == 4 && std::memcmp(notes + nameAt, "GNU", 4) == 0) {
      return hexOf(reinterpret_cast<const unsigned char*>(notes + descAt), header->n_descsz);
    }
    offset = descAt + align4(header->n_descsz);
  }
  return "";
}

int visitObject(dl_phdr_info* info, size_t, void* data) {
  auto* search = static_cast<Search*>(data);
  if (info->dlpi_addr != search->base) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& segment = info->dlpi_phdr[i];
    if (segment.p_type != PT_NOTE) continue;
    search->hex = buildIdInNotes(reinterpret_cast<const char*>(info->dlpi_addr + segment.p_vaddr), segment.p_memsz);
    if (!search->hex.empty()) return 1;
  }
  return 1;
}

std::string findBuildId() {
  Dl_info self{};
  if (::dladdr(reinterpret_cast<void*>(&findBuildId), &self) == 0 || self.dli_fbase == nullptr) return "unknown";
  // dl_iterate_phdr reports the load bias; for a shared object the first segment sits at
  // vaddr 0, so the bias equals the base dladdr() gives.
  Search search;
  search.base = reinterpret_cast<uintptr_t>(self.dli_fbase);
  ::dl_iterate_phdr(visitObject, &search);
  return search.hex.empty() ? "unknown" : search.hex;
}

}  // namespace

const char* loadedBuildId() noexcept {
  try {
    static const std::string id = findBuildId();
    return id.c_str();
  } catch (...) {
    return "unknown";
  }
}

}  // namespace epoll_echo
