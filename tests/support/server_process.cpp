// server_process.cpp — the epoll-server harness: start-line parsing, counted log waits, clean stop.
#include "support/server_process.h"

#include <sstream>

#include "support/timeouts.h"

namespace epoll_echo::test {

std::size_t countOccurrences(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++count;
  return count;
}

std::optional<StartLine> parseStartLine(const std::string& log) {
  const std::string prefix = "epoll-server: listening on ";
  const std::size_t at = log.find(prefix);
  const std::size_t end = at == std::string::npos ? at : log.find('\n', at);
  if (end == std::string::npos) return std::nullopt;
  const std::string line = log.substr(at + prefix.size(), end - at - prefix.size());
  // The address may itself hold colons ("[::1]:8080"): the port follows the last one before " (".
  const std::size_t open = line.find(" (");
  const std::size_t colon = open == std::string::npos ? open : line.rfind(':', open);
  if (colon == std::string::npos) return std::nullopt;
  StartLine result;
  result.address = line.substr(0, colon);
  std::istringstream rest(line.substr(colon + 1));
  unsigned port = 0;
  char parenthesis = 0;
  std::string word;
  if (!(rest >> port >> parenthesis >> result.listeners >> word) || parenthesis != '(' || port > 65535) {
    return std::nullopt;
  }
  if (word != (result.listeners == 1 ? "listener," : "listeners,")) return std::nullopt;
  result.port = static_cast<uint16_t>(port);
  return result;
}

std::vector<std::string> loopbackFlags(const std::vector<std::string>& flags) {
  std::vector<std::string> all = {"--bind", "127.0.0.1", "--port", "0"};
  all.insert(all.end(), flags.begin(), flags.end());
  return all;
}

void ServerProcess::spawn(const std::vector<std::string>& flags, const ServerCommand& command) {
  std::vector<std::string> arguments = command.programArguments;
  arguments.insert(arguments.end(), flags.begin(), flags.end());
  child_.emplace(command.program, arguments, command.environment);
}

::testing::AssertionResult ServerProcess::start(const std::vector<std::string>& flags, const ServerCommand& command) {
  spawn(flags, command);
  return waitForStart();
}

::testing::AssertionResult ServerProcess::waitForStart() {
  std::optional<StartLine> parsed;
  const auto started = [&] { return (parsed = parseStartLine(log())).has_value(); };
  if (!child_->waitUntil(started, deadlineIn(kServerTimeout))) {
    return ::testing::AssertionFailure() << "no start line; stderr:\n" << log();
  }
  startLine_ = *parsed;
  if (startLine_.port == 0) return ::testing::AssertionFailure() << "start line with port 0:\n" << log();
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult ServerProcess::waitForLog(const std::string& text, std::size_t count) {
  const auto enough = [&] { return countOccurrences(log(), text) >= count; };
  if (child_->waitUntil(enough, deadlineIn(kServerTimeout))) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" logged " << countOccurrences(log(), text)
                                       << " times, expected " << count << "; stderr:\n"
                                       << log();
}

::testing::AssertionResult ServerProcess::stop(int signal) {
  if (!child_->sendSignal(signal)) return ::testing::AssertionFailure() << "the server was already gone:\n" << log();
  return waitForCleanExit();
}

::testing::AssertionResult ServerProcess::waitForCleanExit() {
  const std::optional<ExitStatus> status = child_->waitForExit(deadlineIn(kServerTimeout));
  if (!status) return ::testing::AssertionFailure() << "still running after the stop signal; stderr:\n" << log();
  if (!status->succeeded()) return ::testing::AssertionFailure() << status->describe() << "; stderr:\n" << log();
  return ::testing::AssertionSuccess();
}

}  // namespace epoll_echo::test
