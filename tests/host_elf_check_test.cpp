// host_elf_check_test.cpp — unit tests of the host's check of a plugin's ELF headers (host/elf_check.h):
// the built plugin cut at every 4 KiB boundary and at odd offsets, and damaged in the ways a bad
// build or a wrong file can be. The end-to-end side (the server refusing or serving these files)
// is in host_startup_test.cpp and hot_swap_plugin_file_test.cpp.
#include <elf.h>

#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "elf_check.h"
#include "support/elf_file.h"

namespace epoll_echo::test {
namespace {

using host::findElfProblem;

class ElfCheckTest : public ::testing::Test {
 protected:
  // Patches the 64-bit header field at `offset` in a copy of the plugin.
  template <typename Value>
  std::string patched(std::size_t offset, Value value) const {
    std::string copy = plugin_;
    std::memcpy(copy.data() + offset, &value, sizeof value);
    return copy;
  }

  // The file with program header `index` changed by `change`.
  template <typename Change>
  std::string withSegment(unsigned index, Change change) const {
    Elf64_Ehdr header;
    std::memcpy(&header, plugin_.data(), sizeof header);
    std::string copy = plugin_;
    Elf64_Phdr segment;
    char* at = copy.data() + header.e_phoff + index * sizeof segment;
    std::memcpy(&segment, at, sizeof segment);
    change(segment);
    std::memcpy(at, &segment, sizeof segment);
    return copy;
  }

  unsigned segmentIndex(uint32_t type) const {
    Elf64_Ehdr header;
    std::memcpy(&header, plugin_.data(), sizeof header);
    for (unsigned index = 0; index < header.e_phnum; ++index) {
      Elf64_Phdr segment;
      std::memcpy(&segment, plugin_.data() + header.e_phoff + index * sizeof segment, sizeof segment);
      if (segment.p_type == type) return index;
    }
    ADD_FAILURE() << "no segment of type " << type;
    return 0;
  }

  const std::string plugin_ = readWholeFile(EPOLL_ECHO_PLUGIN_PATH);
  const ElfLayout layout_ = readElfLayout(plugin_);
};

TEST_F(ElfCheckTest, TheBuiltPluginPasses) { EXPECT_EQ(findElfProblem(plugin_), ""); }

TEST_F(ElfCheckTest, EveryCutBeforeTheLastLoadableByteIsTruncationAndEveryLaterCutPasses) {
  const std::set<uint64_t> cuts = truncationCuts(plugin_, false);
  ASSERT_GT(cuts.size(), 20u);
  for (const uint64_t cut : cuts) {
    SCOPED_TRACE("cut at " + std::to_string(cut) + " of " + std::to_string(plugin_.size()) + ", loadable end " +
                 std::to_string(layout_.loadableEnd));
    const std::string problem = findElfProblem(std::string_view(plugin_).substr(0, cut));
    if (cut >= layout_.loadableEnd) {
      EXPECT_EQ(problem, "");
    } else if (cut == 0) {
      EXPECT_EQ(problem, "is truncated: the file is empty");
    } else {
      EXPECT_EQ(problem.rfind("is truncated: ", 0), 0u) << problem;
      EXPECT_NE(problem.find(", the file has " + std::to_string(cut) + (cut == 1 ? " byte" : " bytes")),
                std::string::npos)
          << problem;
    }
  }
}

TEST_F(ElfCheckTest, ATruncationNamesTheSegmentWhereItsBytesEnd) {
  Elf64_Ehdr header;
  std::memcpy(&header, plugin_.data(), sizeof header);
  const uint64_t cut = layout_.loadableEnd - 1;
  // The first PT_LOAD (in program header order) that the cut leaves short.
  std::string expected;
  for (unsigned index = 0; index < header.e_phnum && expected.empty(); ++index) {
    Elf64_Phdr segment;
    std::memcpy(&segment, plugin_.data() + header.e_phoff + index * sizeof segment, sizeof segment);
    if (segment.p_type == PT_LOAD && segment.p_offset + segment.p_filesz > cut) {
      expected = "is truncated: its segment " + std::to_string(index) + " (PT_LOAD) ends at byte " +
                 std::to_string(segment.p_offset + segment.p_filesz) + ", the file has " + std::to_string(cut) +
                 " bytes";
    }
  }
  EXPECT_EQ(findElfProblem(std::string_view(plugin_).substr(0, cut)), expected);
  EXPECT_EQ(findElfProblem(std::string_view(plugin_).substr(0, 10)),
            "is truncated: its ELF header needs 64 bytes, the file has 10 bytes");
  EXPECT_EQ(findElfProblem(std::string_view(plugin_).substr(0, layout_.programHeadersEnd - 1)),
            "is truncated: its program headers end at byte " + std::to_string(layout_.programHeadersEnd) +
                ", the file has " + std::to_string(layout_.programHeadersEnd - 1) + " bytes");
}

TEST_F(ElfCheckTest, ZerosAndTextAreNotElfFiles) {
  EXPECT_EQ(findElfProblem(std::string(4096, '\0')), "is not an ELF file (it does not start with \\x7fELF)");
  EXPECT_EQ(findElfProblem("#!/bin/sh\necho not a library\n"), "is not an ELF file (it does not start with \\x7fELF)");
  EXPECT_EQ(findElfProblem("\x7f"
                           "E"),
            "is truncated: its ELF header needs 64 bytes, the file has 2 bytes");
}

TEST_F(ElfCheckTest, AnotherMachineClassOrTypeIsNamed) {
  const std::string foreign = findElfProblem(withForeignMachine(plugin_));
  EXPECT_EQ(foreign.rfind("is built for ", 0), 0u) << foreign;
  EXPECT_NE(foreign.find("(ELF machine " + std::to_string(foreignMachine()) + "), this epoll-server runs on "),
            std::string::npos)
      << foreign;
  EXPECT_EQ(findElfProblem(patched<unsigned char>(EI_CLASS, ELFCLASS32)),
            "is a 32-bit ELF file, this epoll-server is 64-bit");
  EXPECT_EQ(findElfProblem(patched<unsigned char>(EI_CLASS, 7)), "has an invalid ELF class (7)");
  EXPECT_EQ(findElfProblem(patched<unsigned char>(EI_DATA, ELFDATA2MSB)),
            "has the other byte order (ELF data encoding 2) than this epoll-server");
  EXPECT_EQ(findElfProblem(patched<Elf64_Half>(offsetof(Elf64_Ehdr, e_type), ET_EXEC)),
            "is not a shared library (ELF type 2, a shared library has 3)");
}

TEST_F(ElfCheckTest, BrokenProgramHeadersAreRefused) {
  EXPECT_EQ(findElfProblem(patched<Elf64_Half>(offsetof(Elf64_Ehdr, e_phnum), 0)),
            "has no program headers: it is not a loadable shared library");
  EXPECT_EQ(findElfProblem(patched<Elf64_Half>(offsetof(Elf64_Ehdr, e_phentsize), 32)),
            "has program headers of 32 bytes each, expected 56 bytes");
  EXPECT_EQ(findElfProblem(withSegment(segmentIndex(PT_DYNAMIC), [](Elf64_Phdr& s) { s.p_type = PT_NULL; })),
            "has no dynamic segment (PT_DYNAMIC): it is not a shared library");
  // An offset near 2^64 must not wrap around to a small end.
  const unsigned load = segmentIndex(PT_LOAD);
  const std::string wrapped = findElfProblem(withSegment(load, [](Elf64_Phdr& s) { s.p_offset = ~uint64_t{0} - 10; }));
  EXPECT_EQ(wrapped.rfind("is truncated: its segment " + std::to_string(load) + " (PT_LOAD) ends at byte ", 0), 0u)
      << wrapped;
  const std::string dynamicPast =
      findElfProblem(withSegment(segmentIndex(PT_DYNAMIC), [&](Elf64_Phdr& s) { s.p_offset = plugin_.size(); }));
  EXPECT_NE(dynamicPast.find("(PT_DYNAMIC) ends at byte"), std::string::npos) << dynamicPast;
}

// The loader never reads section headers: a file without them, or with garbage in them, loads.
TEST_F(ElfCheckTest, MissingOrCorruptSectionHeadersDoNotMatter) {
  EXPECT_EQ(findElfProblem(withoutSectionHeaders(plugin_)), "");
  EXPECT_EQ(findElfProblem(withCorruptSectionHeaders(plugin_)), "");
}

}  // namespace
}  // namespace epoll_echo::test
