// man_page_test.cpp — docs/epoll-server.1 cannot drift from the program: every option that
// `epoll-server --help` lists must appear in the man page, and groff must render it cleanly.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "support/process.h"
#include "support/timeouts.h"

namespace epoll_echo::test {
namespace {

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// "--port", "--stats-interval", "-h", ...: every option name at the start of a --help entry.
std::set<std::string> helpOptions(const std::string& help) {
  std::set<std::string> options;
  std::istringstream lines(help);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string word;
    if (!(words >> word) || word.empty() || word[0] != '-') continue;  // descriptions and wrapped text
    options.insert(word);
    if (words >> word && word == "[" && words >> word) options.insert(word);  // "-h [ --help ]"
  }
  return options;
}

// roff spells a literal '-' as "\-".
std::string roffEscaped(const std::string& option) {
  std::string escaped;
  for (char c : option) escaped += c == '-' ? std::string("\\-") : std::string(1, c);
  return escaped;
}

TEST(ManPageTest, ListsEveryOptionOfHelp) {
  const Completed help = runToCompletion(EPOLL_ECHO_SERVER_PATH, {"--help"}, deadlineIn(kServerTimeout));
  ASSERT_TRUE(help.status && help.status->succeeded()) << help.err;
  const std::set<std::string> options = helpOptions(help.out);
  ASSERT_GE(options.size(), 9u) << help.out;  // the parser above still understands --help's layout
  const std::string page = readFile(EPOLL_ECHO_MAN_PAGE);
  ASSERT_FALSE(page.empty()) << EPOLL_ECHO_MAN_PAGE;
  for (const std::string& option : options) {
    EXPECT_NE(page.find(roffEscaped(option)), std::string::npos)
        << option << " is missing from " << EPOLL_ECHO_MAN_PAGE;
  }
}

std::optional<std::string> findInPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::istringstream directories(path ? path : "/usr/bin:/bin");
  std::string directory;
  while (std::getline(directories, directory, ':')) {
    const std::filesystem::path candidate = std::filesystem::path(directory) / program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return std::nullopt;
}

TEST(ManPageTest, RendersWithoutWarnings) {
  const std::optional<std::string> groff = findInPath("groff");
  if (!groff) GTEST_SKIP() << "groff is not installed (Debian package groff-base)";
  // -ww: every warning; -z: format but print nothing, so stderr holds only the diagnostics.
  const Completed render =
      runToCompletion(*groff, {"-man", "-Tutf8", "-ww", "-z", EPOLL_ECHO_MAN_PAGE}, deadlineIn(kServerTimeout));
  ASSERT_TRUE(render.status.has_value());
  EXPECT_TRUE(render.status->succeeded()) << render.status->describe() << "\n" << render.err;
  EXPECT_EQ(render.err, "");
}

}  // namespace
}  // namespace epoll_echo::test
