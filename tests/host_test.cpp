// host_test.cpp — end-to-end tests of a running epoll-server: the built binary is a child process
// on 127.0.0.1 with --port 0, and the tests read the port from its start log line.
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>

#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/echo_traffic.h"
#include "support/expect_echo.h"
#include "support/net.h"
#include "support/process.h"
#include "support/server_process.h"
#include "support/timeouts.h"

namespace epoll_echo::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

using Fields = std::vector<std::pair<std::string, std::string>>;

// The keys of both stats formats, in order ("event" aside).
const std::vector<std::string> kStatsKeys = {"state",
                                             "port",
                                             "listeners",
                                             "accepted",
                                             "active",
                                             "closed",
                                             "bytes_in",
                                             "bytes_out",
                                             "backpressure_pauses",
                                             "accept_errors",
                                             "accept_pauses",
                                             "syscalls",
                                             "wakeups",
                                             "accept_cap_pauses",
                                             "idle_closed",
                                             "recv_buffer_waits",
                                             "completion_overflows",
                                             "build_id",
                                             "reloads",
                                             "active_per_worker"};

// "stats state=running port=1 ..." -> {{"state","running"}, {"port","1"}, ...}; empty if malformed.
Fields textStatsFields(const std::string& line) {
  std::istringstream in(line);
  std::string token;
  Fields fields;
  if (!(in >> token) || token != "stats") return {};
  while (in >> token) {
    const std::size_t equals = token.find('=');
    if (equals == std::string::npos) return {};
    fields.emplace_back(token.substr(0, equals), token.substr(equals + 1));
  }
  return fields;
}

// {"event":"stats","state":"running","port":1,...} -> the same pairs, quotes removed ("event" first).
Fields jsonStatsFields(const std::string& line) {
  if (line.size() < 2 || line.front() != '{' || line.back() != '}') return {};
  std::istringstream in(line.substr(1, line.size() - 2));
  const auto unquote = [](const std::string& text) {
    return text.size() >= 2 && text.front() == '"' && text.back() == '"' ? text.substr(1, text.size() - 2) : text;
  };
  Fields fields;
  std::string member;
  const auto addMember = [&] {
    const std::size_t colon = member.find(':');
    if (colon == std::string::npos) return false;
    fields.emplace_back(unquote(member.substr(0, colon)), unquote(member.substr(colon + 1)));
    member.clear();
    return true;
  };
  int depth = 0;  // inside [...]: a comma separates array elements, not members
  for (char c; in.get(c);) {
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (c == ',' && depth == 0) {
      if (!addMember()) return {};
    } else {
      member += c;
    }
  }
  if (!addMember()) return {};
  return fields;
}

// "3,0,5" or "[3,0,5]" -> {3, 0, 5}; empty if malformed.
std::vector<uint64_t> countList(std::string text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  std::vector<uint64_t> counts;
  std::istringstream in(text);
  for (std::string count; std::getline(in, count, ',');) {
    if (count.empty() || count.find_first_not_of("0123456789") != std::string::npos) return {};
    counts.push_back(std::stoull(count));
  }
  return counts;
}

// True when `fields` has exactly kStatsKeys in order and the `expected` values.
bool statsFieldsMatch(const Fields& fields, const std::map<std::string, std::string>& expected) {
  if (fields.size() != kStatsKeys.size()) return false;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (fields[i].first != kStatsKeys[i]) return false;
    const auto wanted = expected.find(fields[i].first);
    if (wanted != expected.end() && wanted->second != fields[i].second) return false;
  }
  return true;
}

std::vector<std::string> completeLines(const std::string& text) {
  std::vector<std::string> lines;
  for (std::size_t start = 0, end; (end = text.find('\n', start)) != std::string::npos; start = end + 1) {
    lines.push_back(text.substr(start, end - start));
  }
  return lines;
}

// Runs one epoll-server; ServerProcess kills and reaps it whatever the test does.
class HostServerTest : public ::testing::Test {
 protected:
  void startServer(const std::vector<std::string>& flags) {
    ASSERT_TRUE(server_.start(loopbackFlags(flags)));
    ASSERT_EQ(server_.startLine().address, "127.0.0.1") << server_.log();
  }

  UniqueFd connectToServer() {
    std::string error;
    UniqueFd socket = connectLoopback(server_.port(), deadlineIn(kIoTimeout), &error);
    EXPECT_TRUE(socket) << error;
    return socket;
  }

  // Asks for stats with SIGUSR1 until a stats line satisfies `wanted` (the engine counts
  // asynchronously, so a line may predate the last echo). Bounded in tries and time.
  bool statsLineMatching(const std::function<bool(const std::string&)>& wanted) {
    const Deadline deadline = deadlineIn(kServerTimeout);
    // Bounded by the deadline: the worker bumps its counters just after its send, so on a busy
    // machine the client may see the echo well before a stats line shows it.
    for (int attempt = 0; attempt < 100000 && Clock::now() < deadline; ++attempt) {
      const std::size_t before = completeLines(server_.child().capturedStdout()).size();
      EXPECT_TRUE(server_.sendSignal(SIGUSR1));
      const auto oneMore = [&] { return completeLines(server_.child().capturedStdout()).size() > before; };
      if (!server_.child().waitUntil(oneMore, deadline)) return false;
      if (wanted(completeLines(server_.child().capturedStdout()).back())) return true;
    }
    return false;
  }

  ServerProcess server_;
};

TEST_F(HostServerTest, EchoesWithOneListener) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--maxListeners", "1"}));
  EXPECT_EQ(server_.listeners(), 1);
  UniqueFd client = connectToServer();
  ASSERT_TRUE(client);
  expectEcho(client.get(), "hello, epoll-server\n");
}

TEST_F(HostServerTest, EchoesWithFourListeners) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--maxListeners", "4"}));
  EXPECT_EQ(server_.listeners(), 4);
  // Many connections so SO_REUSEPORT spreads them over the workers; every byte is checked.
  std::string error;
  std::vector<EchoJob> jobs =
      makeEchoJobs(server_.port(), 16, scaledForSanitizers(256 * 1024), true, 7, deadlineIn(kServerTimeout), &error);
  ASSERT_EQ(jobs.size(), 16u) << error;
  EXPECT_EQ(runEchoJobs(jobs, deadlineIn(kBulkTimeout)), "");
}

TEST_F(HostServerTest, AcceptsTheSeedServersSingleDashFlags) {
  ASSERT_NO_FATAL_FAILURE(startServer({"-maxListeners", "2"}));
  EXPECT_EQ(server_.listeners(), 2);
}

class HostStopTest : public HostServerTest, public ::testing::WithParamInterface<int> {};

TEST_P(HostStopTest, StopSignalClosesEveryConnectionAndExitsZero) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--maxListeners", "2"}));
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(connectToServer());
    ASSERT_TRUE(clients.back());
    expectEcho(clients.back().get(), "before stop " + std::to_string(i));  // accepted by a worker
  }
  ASSERT_TRUE(server_.sendSignal(GetParam()));
  for (UniqueFd& client : clients) {
    std::string error;
    EXPECT_TRUE(waitForEof(client.get(), deadlineIn(kIoTimeout), &error)) << error;
  }
  ASSERT_TRUE(server_.waitForCleanExit());
  EXPECT_NE(server_.log().find(std::string("stopped on SIG") + sigabbrev_np(GetParam())), std::string::npos)
      << server_.log();
}

INSTANTIATE_TEST_SUITE_P(Signals, HostStopTest, ::testing::Values(SIGINT, SIGTERM),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string("Sig") + sigabbrev_np(info.param);
                         });

TEST_F(HostServerTest, BusyPortFailsWithinASecond) {
  std::string error;
  UniqueFd occupant = listenTcp("127.0.0.1", 0, 16, &error);
  ASSERT_TRUE(occupant) << error;
  const std::string port = std::to_string(localPort(occupant.get()));
  // One second is the requirement; sanitizer builds start several times slower.
  const auto limit = sanitizerScaledLimit(milliseconds(1000));
  ChildProcess server(EPOLL_ECHO_SERVER_PATH, {"--bind", "127.0.0.1", "--port", port, "--maxListeners", "2"});
  const auto status = server.waitForExit(deadlineIn(limit));
  ASSERT_TRUE(status) << "still running with port " << port << " taken; stderr:\n" << server.capturedStderr();
  EXPECT_TRUE(status->exited && status->code == 1) << status->describe();
  EXPECT_NE(server.capturedStderr().find("127.0.0.1:" + port), std::string::npos) << server.capturedStderr();
  EXPECT_NE(server.capturedStderr().find("Address already in use"), std::string::npos) << server.capturedStderr();
  EXPECT_EQ(server.capturedStderr().find("listening on"), std::string::npos);
}

TEST_F(HostServerTest, Sigusr1PrintsATextStatsLine) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--maxListeners", "1"}));
  UniqueFd client = connectToServer();
  ASSERT_TRUE(client);
  expectEcho(client.get(), std::string(100, 'x'));
  const std::map<std::string, std::string> expected = {
      {"state", "running"},      {"listeners", "1"},     {"accepted", "1"},
      {"active", "1"},           {"closed", "0"},        {"bytes_in", "100"},
      {"bytes_out", "100"},      {"accept_errors", "0"}, {"recv_buffer_waits", "0"},
      {"active_per_worker", "1"}};
  EXPECT_TRUE(statsLineMatching([&](const std::string& line) {
    return statsFieldsMatch(textStatsFields(line), expected);
  })) << "stdout:\n"
      << server_.child().capturedStdout();
}

TEST_F(HostServerTest, Sigusr1PrintsAJsonStatsLine) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--maxListeners", "1", "--stats-format", "json"}));
  UniqueFd client = connectToServer();
  ASSERT_TRUE(client);
  expectEcho(client.get(), std::string(64, 'j'));
  const std::map<std::string, std::string> expected = {
      {"state", "running"}, {"listeners", "1"},     {"accepted", "1"},
      {"active", "1"},      {"closed", "0"},        {"bytes_in", "64"},
      {"bytes_out", "64"},  {"accept_errors", "0"}, {"active_per_worker", "[1]"}};
  EXPECT_TRUE(statsLineMatching([&](const std::string& line) {
    Fields fields = jsonStatsFields(line);
    if (fields.empty() || fields.front() != std::make_pair(std::string("event"), std::string("stats"))) return false;
    fields.erase(fields.begin());
    return statsFieldsMatch(fields, expected);
  })) << "stdout:\n"
      << server_.child().capturedStdout();
}

// The kernel spreads connections over the workers' SO_REUSEPORT sockets by a hash: the stats line
// shows where they went, one count per worker, adding up to `active`.
TEST_F(HostServerTest, StatsLineCountsTheConnectionsOfEachWorker) {
  constexpr int kClients = 12;
  ASSERT_NO_FATAL_FAILURE(startServer({"--maxListeners", "3"}));
  std::vector<UniqueFd> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(connectToServer());
    ASSERT_TRUE(clients.back());
    expectEcho(clients.back().get(), "client " + std::to_string(i));
  }
  std::vector<uint64_t> perWorker;
  EXPECT_TRUE(statsLineMatching([&](const std::string& line) {
    const Fields fields = textStatsFields(line);
    if (!statsFieldsMatch(fields, {{"active", std::to_string(kClients)}})) return false;
    perWorker = countList(fields.back().second);
    return perWorker.size() == 3;
  })) << "stdout:\n"
      << server_.child().capturedStdout();
  uint64_t sum = 0;
  for (const uint64_t count : perWorker) sum += count;
  EXPECT_EQ(sum, static_cast<uint64_t>(kClients));
}

TEST_F(HostServerTest, StatsIntervalPrintsWithoutASignal) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--maxListeners", "1", "--stats-interval", "1"}));
  const auto twoLines = [&] {
    const std::vector<std::string> lines = completeLines(server_.child().capturedStdout());
    return lines.size() >= 2 && statsFieldsMatch(textStatsFields(lines[0]), {{"state", "running"}}) &&
           statsFieldsMatch(textStatsFields(lines[1]), {{"state", "running"}});
  };
  EXPECT_TRUE(server_.child().waitUntil(twoLines, deadlineIn(kServerTimeout))) << server_.child().capturedStdout();
}

TEST_F(HostServerTest, SighupReloadsAndServingContinues) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--maxListeners", "1"}));
  UniqueFd client = connectToServer();
  ASSERT_TRUE(client);
  ASSERT_TRUE(server_.sendSignal(SIGHUP));
  EXPECT_TRUE(server_.waitForLog("reloaded: build "));
  expectEcho(client.get(), "still here");
  UniqueFd another = connectToServer();
  ASSERT_TRUE(another);
  expectEcho(another.get(), "and accepting");
  EXPECT_TRUE(server_.stop(SIGTERM));
}

TEST_F(HostServerTest, SecondStopSignalDuringASlowStopExitsAtOnce) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--plugin", HOST_FAKE_PLUGIN_SLOW_STOP}));
  ASSERT_TRUE(server_.sendSignal(SIGTERM));
  // Wait until the first signal was handled: two pending SIGTERMs would merge into one.
  ASSERT_TRUE(server_.waitForLog("SIGTERM received: stopping"));
  ASSERT_TRUE(server_.sendSignal(SIGINT));
  const auto status = server_.child().waitForExit(deadlineIn(seconds(5)));  // the fake's stop takes 120 s
  ASSERT_TRUE(status) << "the second signal did not end the process; stderr:\n" << server_.log();
  EXPECT_TRUE(status->exited && status->code == 128 + SIGINT) << status->describe();
  EXPECT_NE(server_.log().find("SIGINT received again while stopping"), std::string::npos) << server_.log();
}

// The lowest descriptor number `pid` does not use: with RLIMIT_NOFILE at this value its next
// open/accept fails with EMFILE.
int lowestFreeDescriptor(pid_t pid) {
  std::set<int> used;
  const std::string path = "/proc/" + std::to_string(pid) + "/fd";
  DIR* directory = opendir(path.c_str());
  if (directory == nullptr) return -1;
  while (const dirent* entry = readdir(directory)) {
    if (entry->d_name[0] != '.') used.insert(std::stoi(entry->d_name));
  }
  closedir(directory);
  int lowest = 0;
  while (used.count(lowest) != 0) ++lowest;
  return lowest;
}

TEST_F(HostServerTest, WarnsWhenAcceptsFailForLackOfDescriptors) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--maxListeners", "1"}));
  const int limit = lowestFreeDescriptor(server_.pid());
  ASSERT_GT(limit, 2);
  rlimit current{};
  ASSERT_EQ(prlimit(server_.pid(), RLIMIT_NOFILE, nullptr, &current), 0);
  rlimit lowered = current;
  lowered.rlim_cur = static_cast<rlim_t>(limit);
  ASSERT_EQ(prlimit(server_.pid(), RLIMIT_NOFILE, &lowered, nullptr), 0) << strerror(errno);
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 4; ++i) clients.push_back(connectToServer());  // the kernel completes the handshake
  const auto warned = [&] {
    const std::string& text = server_.log();
    const std::size_t at = text.find("epoll-server: warning: ");
    return at != std::string::npos && text.find("failed accept", at) != std::string::npos &&
           text.find("out of file descriptors", at) != std::string::npos;
  };
  EXPECT_TRUE(server_.child().waitUntil(warned, deadlineIn(kServerTimeout))) << server_.log();
  ASSERT_EQ(prlimit(server_.pid(), RLIMIT_NOFILE, &current, nullptr), 0);
  EXPECT_TRUE(server_.stop(SIGTERM));
}

// At --max-connections the next client waits in the accept queue, neither served nor reset, the
// log says why (rate-limited like the accept-error warning), and a close lets it in.
TEST_F(HostServerTest, MaxConnectionsMakesTheNextClientWaitAndWarns) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--maxListeners", "2", "--max-connections", "2"}));
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 2; ++i) {
    clients.push_back(connectToServer());
    ASSERT_TRUE(clients.back());
    ASSERT_NO_FATAL_FAILURE(expectEcho(clients.back().get(), "served"));
  }
  UniqueFd waiting = connectToServer();
  ASSERT_TRUE(waiting);
  std::string error;
  ASSERT_TRUE(sendAll(waiting.get(), "late", deadlineIn(kIoTimeout), &error)) << error;
  const auto warned = [&] {
    return server_.child().capturedStderr().find("warning: the connection cap (--max-connections 2) was reached") !=
           std::string::npos;
  };
  ASSERT_TRUE(server_.child().waitUntil(warned, deadlineIn(kIoTimeout))) << server_.child().capturedStderr();
  pollfd probe{waiting.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&probe, 1, 0), 0) << "the client beyond the cap was served or reset";
  clients.front().reset();
  std::string echoed(4, '\0');
  ASSERT_TRUE(receiveExactly(waiting.get(), echoed.data(), echoed.size(), deadlineIn(kIoTimeout), &error)) << error;
  EXPECT_EQ(echoed, "late");
}

// --idle-timeout takes fractions of a second; the silent client gets its echo, then a FIN, and
// the stats line counts it.
TEST_F(HostServerTest, IdleTimeoutClosesASilentClientAndCountsIt) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--maxListeners", "1", "--idle-timeout", "0.3"}));
  UniqueFd client = connectToServer();
  ASSERT_TRUE(client);
  ASSERT_NO_FATAL_FAILURE(expectEcho(client.get(), "then silence"));
  std::string error;
  EXPECT_TRUE(waitForEof(client.get(), deadlineIn(kIoTimeout), &error)) << error;
  EXPECT_TRUE(statsLineMatching([&](const std::string& line) {
    return statsFieldsMatch(textStatsFields(line), {{"idle_closed", "1"}, {"closed", "1"}, {"active", "0"}});
  })) << "stdout:\n"
      << server_.child().capturedStdout();
}

// A reload keeps the cap: the connections handed over count in the new engine at once, so the
// client beyond the cap still waits after SIGHUP, until one of them leaves.
TEST_F(HostServerTest, ReloadedEngineKeepsCountingHandedOverConnectionsTowardTheCap) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--maxListeners", "1", "--max-connections", "2"}));
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 2; ++i) {
    clients.push_back(connectToServer());
    ASSERT_TRUE(clients.back());
    ASSERT_NO_FATAL_FAILURE(expectEcho(clients.back().get(), "served"));
  }
  ASSERT_TRUE(server_.sendSignal(SIGHUP));
  ASSERT_TRUE(server_.child().waitForStderr("2 connections handed over", deadlineIn(kIoTimeout)))
      << server_.child().capturedStderr();
  UniqueFd waiting = connectToServer();
  ASSERT_TRUE(waiting);
  std::string error;
  ASSERT_TRUE(sendAll(waiting.get(), "late", deadlineIn(kIoTimeout), &error)) << error;
  for (UniqueFd& client : clients) ASSERT_NO_FATAL_FAILURE(expectEcho(client.get(), "still served"));
  EXPECT_TRUE(statsLineMatching([&](const std::string& line) {
    const Fields fields = textStatsFields(line);
    return statsFieldsMatch(fields, {{"reloads", "1"}, {"active", "2"}}) &&
           std::any_of(fields.begin(), fields.end(),
                       [](const auto& field) { return field.first == "accept_cap_pauses" && field.second != "0"; });
  })) << server_.child().capturedStdout();
  pollfd probe{waiting.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&probe, 1, 0), 0) << "the new engine accepted past the cap";
  clients.front().reset();
  std::string echoed(4, '\0');
  ASSERT_TRUE(receiveExactly(waiting.get(), echoed.data(), echoed.size(), deadlineIn(kIoTimeout), &error)) << error;
  EXPECT_EQ(echoed, "late");
}

}  // namespace
}  // namespace epoll_echo::test
