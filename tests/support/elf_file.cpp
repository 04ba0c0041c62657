// elf_file.cpp — reading and damaging ELF files for the plugin-file tests (see elf_file.h).
#include "support/elf_file.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <vector>

namespace epoll_echo::test {
namespace {

Elf64_Ehdr headerOf(const std::string& file) {
  Elf64_Ehdr header;
  if (file.size() < sizeof header || std::memcmp(file.data(), ELFMAG, SELFMAG) != 0 || file[EI_CLASS] != ELFCLASS64) {
    throw std::runtime_error("not a 64-bit ELF file");
  }
  std::memcpy(&header, file.data(), sizeof header);
  return header;
}

std::string withHeader(const std::string& file, const Elf64_Ehdr& header) {
  std::string patched = file;
  std::memcpy(patched.data(), &header, sizeof header);
  return patched;
}

}  // namespace

std::string readWholeFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void writeWholeFile(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

ElfLayout readElfLayout(const std::string& file) {
  const Elf64_Ehdr header = headerOf(file);
  ElfLayout layout;
  layout.programHeadersEnd = header.e_phoff + uint64_t{header.e_phnum} * header.e_phentsize;
  if (layout.programHeadersEnd > file.size()) throw std::runtime_error("program headers past the end");
  for (unsigned index = 0; index < header.e_phnum; ++index) {
    Elf64_Phdr segment;
    std::memcpy(&segment, file.data() + header.e_phoff + index * header.e_phentsize, sizeof segment);
    if (segment.p_type == PT_LOAD || segment.p_type == PT_DYNAMIC) {
      layout.loadableEnd = std::max<uint64_t>(layout.loadableEnd, segment.p_offset + segment.p_filesz);
    }
  }
  layout.sectionHeadersOffset = header.e_shoff;
  layout.sectionHeadersSize = uint64_t{header.e_shnum} * header.e_shentsize;
  return layout;
}

std::set<uint64_t> truncationCuts(const std::string& file, bool belowLoadableEndOnly) {
  const ElfLayout layout = readElfLayout(file);
  std::set<uint64_t> cuts = {1,    3,     sizeof(Elf64_Ehdr) - 1, sizeof(Elf64_Ehdr), layout.programHeadersEnd - 1,
                             1000, 30000, layout.loadableEnd - 1, layout.loadableEnd, file.size() - 1};
  for (uint64_t cut = 0; cut < file.size(); cut += 4096) cuts.insert(cut);
  const uint64_t limit = belowLoadableEndOnly ? layout.loadableEnd : file.size();
  std::set<uint64_t> kept;
  for (uint64_t cut : cuts) {
    if (cut < limit) kept.insert(cut);
  }
  return kept;
}

std::set<uint64_t> sampleCuts(const std::set<uint64_t>& cuts, std::size_t count) {
  if (cuts.size() <= count || count < 2) return cuts;
  const std::vector<uint64_t> all(cuts.begin(), cuts.end());
  std::set<uint64_t> sample;
  for (std::size_t i = 0; i < count; ++i) sample.insert(all[i * (all.size() - 1) / (count - 1)]);
  return sample;
}

uint16_t foreignMachine() {
#if defined(__aarch64__)
  return EM_X86_64;
#else
  return EM_AARCH64;
#endif
}

std::string withForeignMachine(const std::string& file) {
  Elf64_Ehdr header = headerOf(file);
  header.e_machine = foreignMachine();
  return withHeader(file, header);
}

std::string withoutSectionHeaders(const std::string& file) {
  Elf64_Ehdr header = headerOf(file);
  header.e_shoff = 0;
  header.e_shnum = 0;
  header.e_shstrndx = SHN_UNDEF;
  return withHeader(file, header);
}

std::string withCorruptSectionHeaders(const std::string& file) {
  const ElfLayout layout = readElfLayout(file);
  if (layout.sectionHeadersOffset + layout.sectionHeadersSize > file.size()) {
    throw std::runtime_error("section headers past the end");
  }
  std::string corrupt = file;
  std::fill_n(corrupt.begin() + static_cast<std::ptrdiff_t>(layout.sectionHeadersOffset), layout.sectionHeadersSize,
              '\xff');
  return corrupt;
}

}  // namespace epoll_echo::test
