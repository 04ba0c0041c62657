// host_options_test.cpp — unit tests of epoll-server's flag parsing (host/options.cpp): defaults,
// accepted values at the edges of each range, and refusals that name the flag and the range.
#include <initializer_list>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "epoll_echo.h"
#include "options.h"

namespace epoll_echo::host {
namespace {

constexpr uint32_t kCpus = 6;

CommandLine parse(std::initializer_list<const char*> arguments, uint32_t cpus = kCpus) {
  std::vector<const char*> argv{"epoll-server"};
  argv.insert(argv.end(), arguments);
  return parseCommandLine(static_cast<int>(argv.size()), argv.data(), cpus);
}

Options parseValid(std::initializer_list<const char*> arguments) {
  const CommandLine result = parse(arguments);
  EXPECT_EQ(result.action, Action::kRun) << result.message;
  return result.options;
}

void expectRefusal(std::initializer_list<const char*> arguments, const std::string& expected) {
  const CommandLine result = parse(arguments);
  EXPECT_EQ(result.action, Action::kUsageError) << expected;
  EXPECT_NE(result.message.find(expected), std::string::npos) << result.message;
  EXPECT_EQ(result.message.find('\n'), std::string::npos) << "not one line: " << result.message;
}

TEST(HostOptionsTest, DefaultsMatchTheSeedServer) {
  const Options options = parseValid({});
  EXPECT_EQ(options.port, 8080u);
  EXPECT_EQ(options.workers, kCpus);
  EXPECT_EQ(options.bindAddress, "");
  EXPECT_EQ(options.pluginPath, "");
  EXPECT_EQ(options.statsIntervalSeconds, 0u);
  EXPECT_EQ(options.statsFormat, StatsFormat::kText);
}

TEST(HostOptionsTest, ListenerDefaultIsClampedToTheAllowedRange) {
  EXPECT_EQ(parse({}, 0).options.workers, 1u);
  EXPECT_EQ(parse({}, 4096).options.workers, 1024u);
}

TEST(HostOptionsTest, AcceptsEveryFlag) {
  const Options options = parseValid({"--port", "9000", "--maxListeners", "16", "--bind", "::1", "--plugin",
                                      "/opt/libepoll_echo.so", "--stats-interval", "5", "--stats-format", "json"});
  EXPECT_EQ(options.port, 9000u);
  EXPECT_EQ(options.workers, 16u);
  EXPECT_EQ(options.bindAddress, "::1");
  EXPECT_EQ(options.pluginPath, "/opt/libepoll_echo.so");
  EXPECT_EQ(options.statsIntervalSeconds, 5u);
  EXPECT_EQ(options.statsFormat, StatsFormat::kJson);
}

TEST(HostOptionsTest, AcceptsTheEdgesOfEachRange) {
  EXPECT_EQ(parseValid({"--port", "0"}).port, 0u);
  EXPECT_EQ(parseValid({"--port=65535"}).port, 65535u);
  EXPECT_EQ(parseValid({"--maxListeners", "1"}).workers, 1u);
  EXPECT_EQ(parseValid({"--maxListeners", "1024"}).workers, 1024u);
  EXPECT_EQ(parseValid({"--stats-interval", "86400"}).statsIntervalSeconds, 86400u);
  EXPECT_EQ(parseValid({"--bind", "[::1]"}).bindAddress, "[::1]");
  EXPECT_EQ(parseValid({"--bind", "0.0.0.0"}).bindAddress, "0.0.0.0");
  EXPECT_EQ(parseValid({"--bind", "fe80::1%eth0"}).bindAddress, "fe80::1%eth0");
  EXPECT_EQ(parseValid({"--bind", "[fe80::1%2]"}).bindAddress, "[fe80::1%2]");
}

TEST(HostOptionsTest, MaxConnectionsIsACountZeroMeaningNoCap) {
  EXPECT_EQ(parseValid({}).maxConnections, 0u);
  EXPECT_EQ(parseValid({"--max-connections", "50"}).maxConnections, 50u);
  EXPECT_EQ(parseValid({"--max-connections", "4294967295"}).maxConnections, 4294967295u);
  expectRefusal({"--max-connections", "4294967296"},
                "--max-connections 4294967296 is out of range: allowed 0-4294967295 (0 = no cap)");
  expectRefusal({"--max-connections", "-1"}, "--max-connections -1 is out of range");
  expectRefusal({"--max-connections", "many"}, "--max-connections 'many' is not a number");
  expectRefusal({"--max-connections"}, "max-connections");
}

TEST(HostOptionsTest, IdleTimeoutTakesSecondsToTheMillisecond) {
  EXPECT_EQ(parseValid({}).idleTimeoutMs, 0u);
  EXPECT_EQ(parseValid({"--idle-timeout", "0"}).idleTimeoutMs, 0u);
  EXPECT_EQ(parseValid({"--idle-timeout", "0.5"}).idleTimeoutMs, 500u);
  EXPECT_EQ(parseValid({"--idle-timeout", "1.25"}).idleTimeoutMs, 1250u);
  EXPECT_EQ(parseValid({"--idle-timeout", "0.001"}).idleTimeoutMs, 1u);
  EXPECT_EQ(parseValid({"--idle-timeout", "300"}).idleTimeoutMs, 300000u);
  EXPECT_EQ(parseValid({"--idle-timeout", "4294967.295"}).idleTimeoutMs, 4294967295u);
  const std::string range = "allowed 0 (off) or 0.001-4294967.295 seconds, to the millisecond";
  expectRefusal({"--idle-timeout", "4294967.296"}, "--idle-timeout 4294967.296 is out of range: " + range);
  expectRefusal({"--idle-timeout", "99999999999999999999"}, "is out of range");
  expectRefusal({"--idle-timeout", "0.0005"}, "--idle-timeout 0.0005 is finer than a millisecond: " + range);
  expectRefusal({"--idle-timeout", "-1"}, "--idle-timeout -1 is out of range");
  for (const char* bad : {"", ".5", "5.", "1e3", "inf", "nan", "0x10", "5s", "1.2.3", " 5"}) {
    expectRefusal({"--idle-timeout", bad}, std::string("--idle-timeout '") + bad + "' is not a number of seconds");
  }
}

TEST(HostOptionsTest, PassesBufferLimitsToTheEngineZeroMeaningItsDefault) {
  EXPECT_EQ(parseValid({}).highWaterBytes, 0u);
  EXPECT_EQ(parseValid({}).readBudgetBytes, 0u);
  EXPECT_EQ(parseValid({"--high-water", "4096"}).highWaterBytes, 4096u);
  EXPECT_EQ(parseValid({"--high-water", "4294967295"}).highWaterBytes, 4294967295u);
  EXPECT_EQ(parseValid({"--read-budget", "65536"}).readBudgetBytes, 65536u);
  EXPECT_EQ(parseValid({"--read-budget", "0"}).readBudgetBytes, 0u);
  expectRefusal({"--high-water", "4095"},
                "--high-water 4095 is out of range: allowed 0 (the engine's default) or 4096-4294967295 bytes");
  expectRefusal({"--read-budget", "1"}, "--read-budget 1 is out of range: allowed 0 (the engine's default)");
  expectRefusal({"--high-water", "4294967296"}, "--high-water 4294967296 is out of range");
  expectRefusal({"--read-budget", "64K"}, "--read-budget '64K' is not a number");
}

TEST(HostOptionsTest, AcceptsTheGoFlagPackagesSingleDashSpelling) {
  const Options options = parseValid({"-port", "9999", "-maxListeners", "4"});
  EXPECT_EQ(options.port, 9999u);
  EXPECT_EQ(options.workers, 4u);
}

TEST(HostOptionsTest, RefusesOutOfRangeNumbersNamingTheRange) {
  expectRefusal({"--port", "65536"}, "--port 65536 is out of range: allowed 0-65535");
  expectRefusal({"--port", "-80"}, "--port -80 is out of range: allowed 0-65535");
  expectRefusal({"--port", "99999999999999999999999"}, "is out of range: allowed 0-65535");
  expectRefusal({"--maxListeners", "0"}, "--maxListeners 0 is out of range: allowed 1-1024");
  expectRefusal({"--maxListeners", "1025"}, "--maxListeners 1025 is out of range: allowed 1-1024");
  expectRefusal({"--stats-interval", "86401"}, "--stats-interval 86401 is out of range: allowed 0-86400");
}

TEST(HostOptionsTest, RefusesWhatIsNotANumber) {
  expectRefusal({"--port", "80a"}, "--port '80a' is not a number: allowed 0-65535");
  expectRefusal({"--port", " 80"}, "--port ' 80' is not a number");
  expectRefusal({"--port", "+80"}, "--port '+80' is not a number");
  expectRefusal({"--port", ""}, "--port '' is not a number");
  expectRefusal({"--maxListeners", "2.5"}, "--maxListeners '2.5' is not a number: allowed 1-1024");
}

TEST(HostOptionsTest, BalanceIsKernelUnlessExactIsAsked) {
  EXPECT_EQ(parseValid({}).balance, EPOLL_ECHO_BALANCE_KERNEL);
  EXPECT_EQ(parseValid({"--balance", "kernel"}).balance, EPOLL_ECHO_BALANCE_KERNEL);
  EXPECT_EQ(parseValid({"--balance", "exact"}).balance, EPOLL_ECHO_BALANCE_EXACT);
}

TEST(HostOptionsTest, RefusesBadWordsAndAddresses) {
  expectRefusal({"--balance", "even"}, "--balance 'even' is not a balance: allowed kernel");
  expectRefusal({"--stats-format", "yaml"}, "--stats-format 'yaml' is not a format: allowed text or json");
  expectRefusal({"--bind", "localhost"}, "--bind 'localhost' is not a numeric address");
  expectRefusal({"--bind", "127.0.0.1:80"}, "--bind '127.0.0.1:80' is not a numeric address");
  expectRefusal({"--bind", "127.0.0.1%lo"}, "--bind '127.0.0.1%lo' is not a numeric address");
  expectRefusal({"--bind", "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd:eeee:ffff:0000"},
                "is not a numeric address");
  expectRefusal({"--plugin", ""}, "--plugin needs a path");
}

TEST(HostOptionsTest, RefusesUnknownRepeatedAndStrayArguments) {
  expectRefusal({"--verbose"}, "unrecognised option '--verbose'");
  expectRefusal({"--po", "80"}, "unrecognised option '--po'");  // no prefix guessing
  expectRefusal({"--port", "1", "--port", "2"}, "'--port' cannot be specified more than once");
  expectRefusal({"--port"}, "the required argument for option '--port' is missing: allowed 0-65535");
  expectRefusal({"serve"}, "unexpected argument 'serve'");
  expectRefusal({"--port", "--bind", "127.0.0.1"},
                "--port needs a value, but is followed by the flag --bind: allowed 0-65535");
  expectRefusal({"-maxListeners", "-port", "9000"}, "--maxListeners needs a value, but is followed by the flag -port");
}

TEST(HostOptionsTest, HelpWinsAndDescribesEveryFlag) {
  const CommandLine result = parse({"--port", "1", "--help"});
  ASSERT_EQ(result.action, Action::kHelp);
  for (const char* text : {"--port", "--maxListeners", "--bind", "--plugin", "--stats-interval", "--stats-format",
                           "--metrics-listen", "--version", "(=8080)", "(=6)"}) {
    EXPECT_NE(result.message.find(text), std::string::npos) << text;
  }
  EXPECT_EQ(parse({"-h"}).action, Action::kHelp);
}

TEST(HostOptionsTest, MetricsListenTakesAnIpv4OrBracketedIpv6AddressAndAPort) {
  EXPECT_FALSE(parseValid({}).metricsListen);
  const Options ipv4 = parseValid({"--metrics-listen", "127.0.0.1:9100"});
  ASSERT_TRUE(ipv4.metricsListen);
  EXPECT_EQ(ipv4.metricsListen->host, "127.0.0.1");
  EXPECT_EQ(ipv4.metricsListen->port, 9100);
  const Options ipv6 = parseValid({"--metrics-listen", "[::1]:0"});
  ASSERT_TRUE(ipv6.metricsListen);
  EXPECT_EQ(ipv6.metricsListen->host, "::1");
  EXPECT_EQ(ipv6.metricsListen->port, 0);
  EXPECT_EQ(parseValid({"--metrics-listen", "0.0.0.0:65535"}).metricsListen->port, 65535);
}

TEST(HostOptionsTest, RefusesBadMetricsAddresses) {
  const std::string range = "allowed ADDRESS:PORT with a numeric IPv4 address or a bracketed IPv6 one";
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", "[::1]", "[::1]9100", ""}) {
    expectRefusal({"--metrics-listen", bad}, "--metrics-listen '" + std::string(bad) + "' has no port: " + range);
  }
  for (const char* bad :
       {"localhost:9100", "::1:9100", ":9100", "[127.0.0.1]:9100", "[fe80::1%lo]:9100", "1.2.3:9100"}) {
    expectRefusal({"--metrics-listen", bad}, "--metrics-listen '" + std::string(bad) + "' is not a numeric address");
  }
  expectRefusal({"--metrics-listen", "127.0.0.1:65536"}, "--metrics-listen 65536 is out of range: " + range);
  expectRefusal({"--metrics-listen", "127.0.0.1:-1"}, "--metrics-listen -1 is out of range");
  expectRefusal({"--metrics-listen", "127.0.0.1:91x"}, "--metrics-listen '91x' is not a number");
}

TEST(HostOptionsTest, VersionKeepsThePluginPath) {
  const CommandLine result = parse({"--version", "--plugin", "/x/libepoll_echo.so"});
  EXPECT_EQ(result.action, Action::kVersion);
  EXPECT_EQ(result.options.pluginPath, "/x/libepoll_echo.so");
  EXPECT_NE(std::string(hostVersion()), "");
}

}  // namespace
}  // namespace epoll_echo::host
