// elf_check.cpp — the header checks glibc's loader relies on without making them itself: it maps
// every PT_LOAD segment by its file offset and size, and a segment past the end of the file is
// mapped anyway, then touched (SIGBUS), so the file's size is compared with every segment here.
#include "elf_check.h"

#include <elf.h>
#include <link.h>

#include <cstdint>
#include <cstring>

// The linker's symbol for this program's own ELF header: the class, byte order and machine that
// a loadable plugin must share with it.
extern "C" const ElfW(Ehdr) __ehdr_start __attribute__((visibility("hidden")));

namespace epoll_echo::host {
namespace {

using Header = ElfW(Ehdr);
using ProgramHeader = ElfW(Phdr);

std::string bytes(uint64_t count) { return std::to_string(count) + (count == 1 ? " byte" : " bytes"); }

const char* machineName(unsigned machine) {
  switch (machine) {
    case EM_386:
      return "i386";
    case EM_X86_64:
      return "x86-64";
    case EM_ARM:
      return "ARM";
    case EM_AARCH64:
      return "AArch64";
    case EM_RISCV:
      return "RISC-V";
    case EM_PPC:
      return "PowerPC";
    case EM_PPC64:
      return "PowerPC64";
    case EM_S390:
      return "s390";
    case EM_MIPS:
      return "MIPS";
    case EM_LOONGARCH:
      return "LoongArch";
    default:
      return "an unknown machine";
  }
}

std::string describeMachine(unsigned machine) {
  return std::string(machineName(machine)) + " (ELF machine " + std::to_string(machine) + ")";
}

// A prefix of the magic is a file whose first bytes were written, not a file of another kind.
std::string checkMagic(std::string_view file) {
  const std::string_view magic(ELFMAG, SELFMAG);
  if (file.empty()) return "is truncated: the file is empty";
  if (file.substr(0, SELFMAG) != magic.substr(0, file.size() < SELFMAG ? file.size() : SELFMAG)) {
    return "is not an ELF file (it does not start with \\x7fELF)";
  }
  if (file.size() < sizeof(Header)) {
    return "is truncated: its ELF header needs " + bytes(sizeof(Header)) + ", the file has " + bytes(file.size());
  }
  return "";
}

std::string checkIdentity(const Header& header) {
  const Header& self = __ehdr_start;
  if (header.e_ident[EI_CLASS] != ELFCLASS32 && header.e_ident[EI_CLASS] != ELFCLASS64) {
    return "has an invalid ELF class (" + std::to_string(header.e_ident[EI_CLASS]) + ")";
  }
  if (header.e_ident[EI_CLASS] != self.e_ident[EI_CLASS]) {
    const bool is64 = header.e_ident[EI_CLASS] == ELFCLASS64;
    return std::string("is a ") + (is64 ? "64" : "32") + "-bit ELF file, this epoll-server is " + (is64 ? "32" : "64") +
           "-bit";
  }
  if (header.e_ident[EI_DATA] != self.e_ident[EI_DATA]) {
    return "has the other byte order (ELF data encoding " + std::to_string(header.e_ident[EI_DATA]) +
           ") than this epoll-server";
  }
  if (header.e_machine != self.e_machine) {
    return "is built for " + describeMachine(header.e_machine) + ", this epoll-server runs on " +
           describeMachine(self.e_machine);
  }
  if (header.e_type != ET_DYN) {
    return "is not a shared library (ELF type " + std::to_string(header.e_type) + ", a shared library has " +
           std::to_string(ET_DYN) + ")";
  }
  return "";
}

// Where segment `index` (numbered as `readelf -l` numbers them) ends in the file; "" if inside.
std::string checkSegmentInFile(const ProgramHeader& segment, unsigned index, const char* type, uint64_t fileSize) {
  // Compared without adding first: a corrupt offset near 2^64 would wrap around.
  if (segment.p_offset > fileSize || segment.p_filesz > fileSize - segment.p_offset) {
    return "is truncated: its segment " + std::to_string(index) + " (" + type + ") ends at byte " +
           std::to_string(segment.p_offset + segment.p_filesz) + ", the file has " + bytes(fileSize);
  }
  return "";
}

std::string checkProgramHeaders(std::string_view file, const Header& header) {
  if (header.e_phnum == 0) return "has no program headers: it is not a loadable shared library";
  if (header.e_phentsize != sizeof(ProgramHeader)) {
    return "has program headers of " + bytes(header.e_phentsize) + " each, expected " + bytes(sizeof(ProgramHeader));
  }
  const uint64_t tableSize = uint64_t{header.e_phnum} * sizeof(ProgramHeader);
  if (header.e_phoff > file.size() || tableSize > file.size() - header.e_phoff) {
    return "is truncated: its program headers end at byte " + std::to_string(header.e_phoff + tableSize) +
           ", the file has " + bytes(file.size());
  }
  bool hasLoad = false;
  bool hasDynamic = false;
  for (unsigned index = 0; index < header.e_phnum; ++index) {
    ProgramHeader segment;
    std::memcpy(&segment, file.data() + header.e_phoff + index * sizeof segment, sizeof segment);
    const char* type = segment.p_type == PT_LOAD ? "PT_LOAD" : segment.p_type == PT_DYNAMIC ? "PT_DYNAMIC" : nullptr;
    if (type == nullptr) continue;
    if (std::string problem = checkSegmentInFile(segment, index, type, file.size()); !problem.empty()) return problem;
    hasLoad = hasLoad || segment.p_type == PT_LOAD;
    hasDynamic = hasDynamic || segment.p_type == PT_DYNAMIC;
  }
  if (!hasLoad) return "has no loadable segment (PT_LOAD): it is not a loadable shared library";
  if (!hasDynamic) return "has no dynamic segment (PT_DYNAMIC): it is not a shared library";
  return "";
}

}  // namespace

std::string findElfProblem(std::string_view file) {
  if (std::string problem = checkMagic(file); !problem.empty()) return problem;
  Header header;
  std::memcpy(&header, file.data(), sizeof header);  // the bytes need not be aligned
  if (std::string problem = checkIdentity(header); !problem.empty()) return problem;
  return checkProgramHeaders(file, header);
}

}  // namespace epoll_echo::host
