// exported_symbols_test.cpp — the built plugin exports exactly the header's functions and no
// STB_GNU_UNIQUE symbol (which would make dlclose a no-op), its build id is the ELF note's, and
// dlclose really unmaps it. The ELF file is parsed here: no dependency on nm or readelf.
#include <elf.h>
#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support/expect_echo.h"
#include "support/plugin.h"

namespace epoll_echo::test {
namespace {

struct DynamicSymbol {
  std::string name;
  unsigned binding;
  unsigned type;
  unsigned visibility;
  bool defined;
};

std::vector<char> readFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

// A bounds-checked view of a 64-bit little-endian ELF image (what this machine builds).
class ElfImage {
 public:
  explicit ElfImage(std::vector<char> bytes) : bytes_(std::move(bytes)) {
    valid_ = bytes_.size() >= sizeof(Elf64_Ehdr) && std::memcmp(bytes_.data(), ELFMAG, SELFMAG) == 0 &&
             bytes_[EI_CLASS] == ELFCLASS64 && bytes_[EI_DATA] == ELFDATA2LSB;
    if (valid_) std::memcpy(&header_, bytes_.data(), sizeof header_);
  }
  bool valid() const { return valid_; }

  std::vector<Elf64_Shdr> sections() const {
    std::vector<Elf64_Shdr> result;
    for (unsigned i = 0; valid_ && i < header_.e_shnum; ++i) {
      Elf64_Shdr section;
      if (!copy(header_.e_shoff + i * sizeof(Elf64_Shdr), &section, sizeof section)) break;
      result.push_back(section);
    }
    return result;
  }

  std::vector<DynamicSymbol> dynamicSymbols() const {
    std::vector<DynamicSymbol> result;
    auto all = sections();
    for (const auto& section : all) {
      if (section.sh_type != SHT_DYNSYM || section.sh_link >= all.size()) continue;
      const auto& strings = all[section.sh_link];
      for (Elf64_Xword offset = 0; offset + sizeof(Elf64_Sym) <= section.sh_size; offset += sizeof(Elf64_Sym)) {
        Elf64_Sym symbol;
        if (!copy(section.sh_offset + offset, &symbol, sizeof symbol)) break;
        result.push_back({stringAt(strings, symbol.st_name), static_cast<unsigned>(ELF64_ST_BIND(symbol.st_info)),
                          static_cast<unsigned>(ELF64_ST_TYPE(symbol.st_info)),
                          static_cast<unsigned>(ELF64_ST_VISIBILITY(symbol.st_other)), symbol.st_shndx != SHN_UNDEF});
      }
    }
    return result;
  }

  // The NT_GNU_BUILD_ID note's descriptor as lowercase hex, or "" when there is none.
  std::string gnuBuildId() const {
    for (const auto& section : sections()) {
      if (section.sh_type != SHT_NOTE) continue;
      for (Elf64_Xword offset = 0; offset + sizeof(Elf64_Nhdr) <= section.sh_size;) {
        Elf64_Nhdr note;
        if (!copy(section.sh_offset + offset, &note, sizeof note)) break;
        Elf64_Xword nameStart = offset + sizeof note;
        Elf64_Xword descStart = nameStart + ((note.n_namesz + 3) & ~3u);
        if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 && descStart + note.n_descsz <= section.sh_size) {
          std::string hex;
          for (Elf64_Word i = 0; i < note.n_descsz; ++i) {
            char digits[3];
            std::snprintf(digits, sizeof digits, "%02x",
                          static_cast<unsigned char>(bytes_[section.sh_offset + descStart + i]));
            hex += digits;
          }
          return hex;
        }
        offset = descStart + ((note.n_descsz + 3) & ~3u);
      }
    }
    return "";
  }

 private:
  bool copy(Elf64_Xword offset, void* out, size_t size) const {
    if (offset > bytes_.size() || size > bytes_.size() - offset) return false;
    std::memcpy(out, bytes_.data() + offset, size);
    return true;
  }
  std::string stringAt(const Elf64_Shdr& table, Elf64_Word index) const {
    Elf64_Xword start = table.sh_offset + index;
    if (index >= table.sh_size || start >= bytes_.size()) return "<bad name>";
    Elf64_Xword end = start;
    while (end < bytes_.size() && end < table.sh_offset + table.sh_size && bytes_[end] != '\0') ++end;
    return std::string(bytes_.data() + start, bytes_.data() + end);
  }

  std::vector<char> bytes_;
  Elf64_Ehdr header_{};
  bool valid_ = false;
};

// Removes /* */ and // comments and preprocessor lines (with their continuations). Hand-written:
// std::regex trips g++ 12's -Wmaybe-uninitialized under ASan, and the build uses -Werror.
std::string stripCommentsAndDirectives(const std::string& text) {
  std::string code;
  bool lineStart = true;
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, 2, "/*") == 0) {
      size_t end = text.find("*/", i + 2);
      i = end == std::string::npos ? text.size() : end + 2;
      code += ' ';
    } else if (text.compare(i, 2, "//") == 0 || (lineStart && text[i] == '#')) {
      while (i < text.size() && !(text[i] == '\n' && text[i - 1] != '\\')) ++i;
    } else {
      if (text[i] == '\n')
        lineStart = true;
      else if (text[i] != ' ' && text[i] != '\t')
        lineStart = false;
      code += text[i++];
    }
  }
  return code;
}

// The function names the header declares: after stripping, every `epoll_echo_name(` is one.
std::set<std::string> headerFunctions() {
  std::vector<char> bytes = readFile(EPOLL_ECHO_API_HEADER);
  const std::string code = stripCommentsAndDirectives(std::string(bytes.begin(), bytes.end()));
  const std::string prefix = "epoll_echo_";
  std::set<std::string> names;
  for (size_t at = code.find(prefix); at != std::string::npos; at = code.find(prefix, at + 1)) {
    if (at > 0 && (std::isalnum(static_cast<unsigned char>(code[at - 1])) || code[at - 1] == '_')) continue;
    size_t end = at;
    while (end < code.size() && (std::isalnum(static_cast<unsigned char>(code[end])) || code[end] == '_')) ++end;
    size_t next = code.find_first_not_of(" \t\n", end);
    if (next != std::string::npos && code[next] == '(') names.insert(code.substr(at, end - at));
  }
  return names;
}

std::set<std::string> exportedNames(const std::vector<DynamicSymbol>& symbols) {
  std::set<std::string> names;
  for (const auto& symbol : symbols) {
    if (symbol.defined && symbol.binding != STB_LOCAL) names.insert(symbol.name);
  }
  return names;
}

class ExportedSymbolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(image_.valid()) << EPOLL_ECHO_PLUGIN_PATH << " is not a 64-bit little-endian ELF file";
  }
  ElfImage image_{readFile(EPOLL_ECHO_PLUGIN_PATH)};
};

TEST_F(ExportedSymbolsTest, HeaderDeclaresTheFunctionsTheLoaderLooksUp) {
  const auto& table = apiFunctionNames();
  EXPECT_EQ(headerFunctions(), std::set<std::string>(table.begin(), table.end()));
}

TEST_F(ExportedSymbolsTest, ExportsExactlyTheHeaderFunctions) {
  EXPECT_EQ(exportedNames(image_.dynamicSymbols()), headerFunctions());
}

TEST_F(ExportedSymbolsTest, ExportsAreDefaultVisibilityGlobalFunctions) {
  for (const auto& symbol : image_.dynamicSymbols()) {
    if (!symbol.defined || symbol.binding == STB_LOCAL) continue;
    EXPECT_EQ(symbol.binding, static_cast<unsigned>(STB_GLOBAL)) << symbol.name;
    EXPECT_EQ(symbol.type, static_cast<unsigned>(STT_FUNC)) << symbol.name;
    EXPECT_EQ(symbol.visibility, static_cast<unsigned>(STV_DEFAULT)) << symbol.name;
  }
}

// A UNIQUE symbol pins the object in memory: dlclose becomes a no-op and a reload gets old code.
TEST_F(ExportedSymbolsTest, HasNoGnuUniqueSymbol) {
  auto symbols = image_.dynamicSymbols();
  ASSERT_FALSE(symbols.empty());
  for (const auto& symbol : symbols) EXPECT_NE(symbol.binding, static_cast<unsigned>(STB_GNU_UNIQUE)) << symbol.name;
}

TEST_F(ExportedSymbolsTest, BuildIdIsTheElfNote) {
  std::string expected = image_.gnuBuildId();
  ASSERT_FALSE(expected.empty()) << "no NT_GNU_BUILD_ID note (linked without --build-id?)";
  Plugin plugin;
  ASSERT_TRUE(plugin.loaded()) << plugin.error();
  EXPECT_EQ(std::string(plugin.api().build_id()), expected);
}

// Run an engine (threads started and joined, sockets opened) before unloading: any leftover
// thread, static destructor or UNIQUE symbol would keep the object mapped.
TEST_F(ExportedSymbolsTest, DlcloseReallyUnloadsAfterAnEngineRan) {
  ASSERT_FALSE(isPluginResident()) << "the plugin is already loaded before the test";
  for (int round = 0; round < 2; ++round) {
    Plugin plugin;
    ASSERT_TRUE(plugin.loaded()) << plugin.error();
    {
      TestEngine engine(plugin.api());
      ASSERT_TRUE(engine.createAndStart(loopbackConfig(2)));
      ASSERT_NO_FATAL_FAILURE(expectEchoOnNewConnection(engine.port(), "ping"));
      EXPECT_EQ(engine.stop(), EPOLL_ECHO_OK);
    }
    ASSERT_TRUE(isPluginResident());
    ASSERT_TRUE(plugin.unload()) << plugin.error();
    EXPECT_FALSE(isPluginResident()) << "round " << round << ": dlclose left " << EPOLL_ECHO_PLUGIN_PATH << " mapped";
  }
}

}  // namespace
}  // namespace epoll_echo::test
