// elf_file.h — the tests' own view of an ELF shared library (<elf.h>, independent of the host's
// checker): where its loadable bytes end, and damaged variants of it for refusal tests.
#pragma once

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>

namespace epoll_echo::test {

std::string readWholeFile(const std::filesystem::path& path);                      // throws std::runtime_error
void writeWholeFile(const std::filesystem::path& path, const std::string& bytes);  // replaces; throws

// What the dynamic loader needs of a 64-bit ELF file. Throws std::runtime_error if it is not one.
struct ElfLayout {
  uint64_t programHeadersEnd = 0;  // e_phoff + e_phnum * e_phentsize
  uint64_t loadableEnd = 0;        // max over PT_LOAD and PT_DYNAMIC of p_offset + p_filesz
  uint64_t sectionHeadersOffset = 0;
  uint64_t sectionHeadersSize = 0;  // e_shnum * e_shentsize
};
ElfLayout readElfLayout(const std::string& file);

// Where to cut `file` in the truncation tests: every 4 KiB boundary from 0 to its size, a few
// odd offsets (inside the ELF header, inside the program headers, around loadableEnd) and
// size - 1. With `belowLoadableEndOnly`, only the cuts the loader cannot survive.
std::set<uint64_t> truncationCuts(const std::string& file, bool belowLoadableEndOnly);

// At most `count` of `cuts`, evenly spaced, the smallest and the largest always among them: for
// end-to-end tests, where each cut costs a server start or a reload (sanitizer builds of the
// plugin are several times larger, so they have several times more 4 KiB boundaries).
std::set<uint64_t> sampleCuts(const std::set<uint64_t>& cuts, std::size_t count);

// The file with another e_machine (AArch64, or x86-64 on an AArch64 host).
std::string withForeignMachine(const std::string& file);
uint16_t foreignMachine();
// The file without its section header table (e_shoff, e_shnum and e_shstrndx zero), as `strip`
// leaves a file it cannot read; and with the table overwritten by 0xff bytes.
std::string withoutSectionHeaders(const std::string& file);
std::string withCorruptSectionHeaders(const std::string& file);

}  // namespace epoll_echo::test
