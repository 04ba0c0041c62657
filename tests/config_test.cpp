// Unit tests of config validation and of bind address parsing.
#include "config.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>

#include "engine_error.h"
#include "socket_address.h"

namespace epoll_echo {
namespace {

epoll_echo_config_t zeroConfig() {
  epoll_echo_config_t raw{};
  raw.size = sizeof raw;
  return raw;
}

int codeOf(const epoll_echo_config_t& raw, std::string* detail = nullptr) {
  try {
    makeEngineConfig(raw);
    return EPOLL_ECHO_OK;
  } catch (const EngineError& error) {
    if (detail) *detail = error.what();
    return error.code();
  }
}

TEST(ConfigTest, ZeroFieldsMeanDefaults) {
  const EngineConfig config = makeEngineConfig(zeroConfig());
  EXPECT_EQ(config.port, 0);
  EXPECT_GE(config.workers, 1u);
  EXPECT_EQ(config.backlog, SOMAXCONN);
  EXPECT_EQ(config.highWaterBytes, kDefaultHighWaterBytes);
  EXPECT_EQ(config.readBudgetBytes, kDefaultReadBudgetBytes);
  EXPECT_EQ(config.acceptBudget, kDefaultAcceptBudget);
  EXPECT_TRUE(config.bindAddress.empty());
  EXPECT_EQ(config.maxConnections, 0u) << "0 = no cap";
  EXPECT_EQ(config.idleTimeoutMs, 0u) << "0 = no idle timeout";
}

TEST(ConfigTest, ConnectionLimitsAreTakenAsGiven) {
  epoll_echo_config_t raw = zeroConfig();
  raw.max_connections = 50;
  raw.idle_timeout_ms = UINT32_MAX;
  const EngineConfig config = makeEngineConfig(raw);
  EXPECT_EQ(config.maxConnections, 50u);
  EXPECT_EQ(config.idleTimeoutMs, UINT32_MAX);
}

TEST(ConfigTest, RefusesOutOfRangeFieldsNamingThem) {
  struct Case {
    void (*mutate)(epoll_echo_config_t&);
    const char* field;
  } cases[] = {
      {[](epoll_echo_config_t& c) { c.port = 65536; }, "port"},
      {[](epoll_echo_config_t& c) { c.listeners = kMaxWorkers + 1; }, "listeners"},
      {[](epoll_echo_config_t& c) { c.high_water_bytes = 100; }, "high_water_bytes"},
      {[](epoll_echo_config_t& c) { c.read_budget_bytes = 1; }, "read_budget_bytes"},
      {[](epoll_echo_config_t& c) { c.backlog = 0x80000000u; }, "backlog"},
      {[](epoll_echo_config_t& c) { c.reserved0 = 1; }, "reserved0"},
  };
  for (const Case& test : cases) {
    epoll_echo_config_t raw = zeroConfig();
    test.mutate(raw);
    std::string detail;
    EXPECT_EQ(codeOf(raw, &detail), EPOLL_ECHO_EINVAL) << test.field;
    EXPECT_NE(detail.find(test.field), std::string::npos) << detail;
  }
}

TEST(ConfigTest, RefusesABindAddressThatIsNotNumeric) {
  epoll_echo_config_t raw = zeroConfig();
  std::strcpy(raw.bind_address, "localhost");
  EXPECT_EQ(codeOf(raw), EPOLL_ECHO_EADDRESS);
}

TEST(ConfigTest, RefusesABindAddressWithoutTerminator) {
  epoll_echo_config_t raw = zeroConfig();
  std::memset(raw.bind_address, '1', sizeof raw.bind_address);
  EXPECT_EQ(codeOf(raw), EPOLL_ECHO_EINVAL);
}

TEST(ConfigTest, AcceptsTheLargestValidValues) {
  epoll_echo_config_t raw = zeroConfig();
  raw.port = 65535;
  raw.listeners = kMaxWorkers;
  std::strcpy(raw.bind_address, "[::1]");
  const EngineConfig config = makeEngineConfig(raw);
  EXPECT_EQ(config.port, 65535);
  EXPECT_EQ(config.workers, kMaxWorkers);
}

TEST(SocketAddressTest, ParsesIpv4Ipv6AndBracketedIpv6) {
  auto v4 = SocketAddress::parse("127.0.0.1", 80);
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->family(), AF_INET);
  EXPECT_EQ(v4->toString(), "127.0.0.1:80");
  auto v6 = SocketAddress::parse("::1", 8080);
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->family(), AF_INET6);
  EXPECT_EQ(v6->toString(), "[::1]:8080");
  auto bracketed = SocketAddress::parse("[::1]", 1);
  ASSERT_TRUE(bracketed);
  EXPECT_EQ(bracketed->port(), 1);
}

TEST(SocketAddressTest, RefusesNamesAndGarbage) {
  for (const char* text : {"localhost", "", "1.2.3", "::g", "[::1", "127.0.0.1:80"}) {
    EXPECT_FALSE(SocketAddress::parse(text, 0)) << text;
  }
}

}  // namespace
}  // namespace epoll_echo
