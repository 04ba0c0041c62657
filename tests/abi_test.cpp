// abi_test.cpp — misuse of the C ABI's stateless half: create() with NULL and garbage arguments,
// the size-field rules (copy_struct_from_user), out-of-range config, and the error strings. Each
// case must return the documented code, never crash, and explain itself in the detail text.
// Lifecycle, stats and last_error misuse live in abi_state_test.cpp.
#include <gtest/gtest.h>
#include <sched.h>

#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "support/expect_echo.h"
#include "support/plugin.h"

namespace epoll_echo::test {
namespace {

constexpr size_t kMaxStructSize = 4096;  // the header's upper bound for a size field

class AbiTest : public PluginTest {
 protected:
  // create() on raw bytes: the struct may be larger or smaller than the header's.
  int createRaw(const void* config, epoll_echo_engine_t** out, std::string* detail = nullptr) {
    char buffer[512];
    std::memset(buffer, 'x', sizeof buffer);
    buffer[sizeof buffer - 1] = '\0';
    int code = api().create(static_cast<const epoll_echo_config_t*>(config), out, buffer, sizeof buffer);
    if (detail != nullptr) *detail = buffer;
    return code;
  }

  // Expects create(config) to fail with `expected`, leave the handle NULL and name `field`.
  void expectRejected(const epoll_echo_config_t& config, int expected, const std::string& field) {
    epoll_echo_engine_t* engine = reinterpret_cast<epoll_echo_engine_t*>(0x1);
    std::string detail;
    int code = createRaw(&config, &engine, &detail);
    EXPECT_EQ(code, expected) << describeCode(api(), code) << ": " << detail;
    EXPECT_EQ(engine, nullptr);
    if (code == EPOLL_ECHO_OK) api().destroy(engine);
    EXPECT_FALSE(detail.empty());
    EXPECT_NE(detail.find(field), std::string::npos) << "detail \"" << detail << "\" does not mention " << field;
  }
};

TEST_F(AbiTest, AbiVersionMajorMatchesTheHeader) {
  uint32_t version = api().abi_version();
  EXPECT_EQ(EPOLL_ECHO_ABI_MAJOR_OF(version), static_cast<uint32_t>(EPOLL_ECHO_ABI_MAJOR));
  EXPECT_GE(EPOLL_ECHO_ABI_MINOR_OF(version), static_cast<uint32_t>(EPOLL_ECHO_ABI_MINOR));
}

TEST_F(AbiTest, VersionAndBuildIdAreNonEmpty) {
  ASSERT_NE(api().version(), nullptr);
  unsigned major = 0, minor = 0, patch = 0;
  EXPECT_EQ(std::sscanf(api().version(), "%u.%u.%u", &major, &minor, &patch), 3) << api().version();
  ASSERT_NE(api().build_id(), nullptr);
  const std::string buildId = api().build_id();
  const bool hex =
      !buildId.empty() && buildId.size() % 2 == 0 && buildId.find_first_not_of("0123456789abcdef") == std::string::npos;
  EXPECT_TRUE(buildId == "unknown" || hex) << buildId;
}

TEST_F(AbiTest, StrerrorAndErrorNameCoverTheTable) {
#define EPOLL_ECHO_CHECK_ENTRY(name, value, text) \
  ASSERT_NE(api().strerror(value), nullptr);      \
  EXPECT_STREQ(api().strerror(value), text);      \
  ASSERT_NE(api().error_name(value), nullptr);    \
  EXPECT_STREQ(api().error_name(value), "EPOLL_ECHO_" #name);
  EPOLL_ECHO_ERROR_TABLE(EPOLL_ECHO_CHECK_ENTRY)
#undef EPOLL_ECHO_CHECK_ENTRY
}

TEST_F(AbiTest, StrerrorAndErrorNameOfUnknownCodes) {
  for (int code : {1, 2, -10, -100, 4096, std::numeric_limits<int>::min(), std::numeric_limits<int>::max()}) {
    ASSERT_NE(api().strerror(code), nullptr) << code;
    EXPECT_STREQ(api().strerror(code), "unknown error") << code;
    ASSERT_NE(api().error_name(code), nullptr) << code;
    EXPECT_STREQ(api().error_name(code), "EPOLL_ECHO_UNKNOWN") << code;
  }
}

TEST_F(AbiTest, CreateRejectsNullConfigAndNullOut) {
  epoll_echo_engine_t* engine = reinterpret_cast<epoll_echo_engine_t*>(0x1);
  char detail[128] = {};
  EXPECT_EQ(api().create(nullptr, &engine, detail, sizeof detail), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(engine, nullptr);
  EXPECT_STRNE(detail, "");
  epoll_echo_config_t config = loopbackConfig();
  EXPECT_EQ(api().create(&config, nullptr, detail, sizeof detail), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(api().create(nullptr, nullptr, nullptr, 0), EPOLL_ECHO_EINVAL);
}

TEST_F(AbiTest, CreateWritesNoDetailWithoutRoom) {
  epoll_echo_config_t config = loopbackConfig();
  config.port = 70000;
  epoll_echo_engine_t* engine = nullptr;
  EXPECT_EQ(api().create(&config, &engine, nullptr, 100), EPOLL_ECHO_EINVAL);  // NULL detail: no write
  char detail[8];
  std::memset(detail, 'x', sizeof detail);
  EXPECT_EQ(api().create(&config, &engine, detail, 0), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(std::string(detail, sizeof detail), std::string(sizeof detail, 'x')) << "wrote into a 0-byte buffer";
  EXPECT_EQ(api().create(&config, &engine, detail, 4), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(detail[3], '\0') << "detail not NUL-terminated within detail_size";
  EXPECT_EQ(std::string(detail + 4, 4), "xxxx") << "wrote past detail_size";
}

TEST_F(AbiTest, CreateRejectsBadSizes) {
  for (uint32_t size : {0u, 4u, 7u, 4097u, 65536u, std::numeric_limits<uint32_t>::max()}) {
    epoll_echo_config_t config = loopbackConfig();
    config.size = size;  // the plugin must check the size before reading past sizeof(config)
    epoll_echo_engine_t* engine = reinterpret_cast<epoll_echo_engine_t*>(0x1);
    std::string detail;
    EXPECT_EQ(createRaw(&config, &engine, &detail), EPOLL_ECHO_ESIZE) << "size " << size;
    EXPECT_EQ(engine, nullptr);
    EXPECT_NE(detail.find("size"), std::string::npos) << detail;
  }
}

// A newer caller's struct: accepted when its unknown tail is zero, rejected otherwise.
TEST_F(AbiTest, CreateAppliesTheZeroTailRuleToLargerStructs) {
  alignas(8) unsigned char raw[kMaxStructSize] = {};
  epoll_echo_config_t config = loopbackConfig();
  for (size_t size : {sizeof config + 4, sizeof config + 64, kMaxStructSize}) {
    std::memset(raw, 0, sizeof raw);
    config.size = static_cast<uint32_t>(size);
    std::memcpy(raw, &config, sizeof config);
    epoll_echo_engine_t* engine = nullptr;
    std::string detail;
    EXPECT_EQ(createRaw(raw, &engine, &detail), EPOLL_ECHO_OK) << "size " << size << ": " << detail;
    api().destroy(engine);

    raw[size - 1] = 0x01;  // the last unknown byte
    engine = reinterpret_cast<epoll_echo_engine_t*>(0x1);
    EXPECT_EQ(createRaw(raw, &engine, &detail), EPOLL_ECHO_ESIZE) << "size " << size;
    EXPECT_EQ(engine, nullptr);
    EXPECT_FALSE(detail.empty());
  }
}

// An older caller's struct ends early: the missing fields are zero, i.e. the defaults.
TEST_F(AbiTest, CreateAcceptsOlderSmallerStructsWithDefaults) {
  cpu_set_t cpus;
  ASSERT_EQ(sched_getaffinity(0, sizeof cpus, &cpus), 0);
  const uint32_t cpuCount = static_cast<uint32_t>(CPU_COUNT(&cpus));

  alignas(8) unsigned char raw[sizeof(epoll_echo_config_t)];
  std::memset(raw, 0xff, sizeof raw);  // garbage beyond the declared size must be ignored
  epoll_echo_config_t config = loopbackConfig(3);
  config.size = offsetof(epoll_echo_config_t, listeners);  // only size and port
  std::memcpy(raw, &config, config.size);
  epoll_echo_engine_t* handle = nullptr;
  std::string detail;
  ASSERT_EQ(createRaw(raw, &handle, &detail), EPOLL_ECHO_OK) << detail;
  epoll_echo_stats_t stats;
  std::memset(&stats, 0, sizeof stats);
  stats.size = sizeof stats;
  ASSERT_EQ(api().stats(handle, &stats), EPOLL_ECHO_OK);
  EXPECT_EQ(stats.state, EPOLL_ECHO_STATE_CREATED);
  EXPECT_EQ(stats.listeners, cpuCount) << "listeners 0 must mean the CPUs this process may run on";
  api().destroy(handle);

  config.size = offsetof(epoll_echo_config_t, backlog);  // size, port, listeners
  std::memcpy(raw, &config, config.size);
  ASSERT_EQ(createRaw(raw, &handle, &detail), EPOLL_ECHO_OK) << detail;
  ASSERT_EQ(api().stats(handle, &stats), EPOLL_ECHO_OK);
  EXPECT_EQ(stats.listeners, 3u);
  api().destroy(handle);
}

// An ABI 1.2 caller's config ends at bind_address: whatever lies beyond is not read, so its engine
// has no connection cap (and no idle timeout), as every engine had before 1.3.
TEST_F(AbiTest, Abi12ConfigHasNoConnectionCap) {
  alignas(8) unsigned char raw[sizeof(epoll_echo_config_t)];
  epoll_echo_config_t config = loopbackConfig(1);
  config.max_connections = 1;  // beyond the declared size: must be ignored
  config.idle_timeout_ms = 1;
  config.size = offsetof(epoll_echo_config_t, max_connections);
  std::memcpy(raw, &config, sizeof config);
  epoll_echo_engine_t* handle = nullptr;
  std::string detail;
  ASSERT_EQ(createRaw(raw, &handle, &detail), EPOLL_ECHO_OK) << detail;
  ASSERT_EQ(api().start(handle), EPOLL_ECHO_OK);
  epoll_echo_stats_t stats{};
  stats.size = sizeof stats;
  ASSERT_EQ(api().stats(handle, &stats), EPOLL_ECHO_OK);
  const auto deadline = deadlineIn(std::chrono::seconds(10));
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(connectLoopback(static_cast<uint16_t>(stats.port), deadline, &detail));
    ASSERT_TRUE(clients.back()) << detail;
    char byte = 'a';
    ASSERT_TRUE(sendAll(clients.back().get(), &byte, 1, deadline, &detail)) << detail;
    ASSERT_TRUE(receiveExactly(clients.back().get(), &byte, 1, deadline, &detail)) << "client " << i << ": " << detail;
  }
  ASSERT_EQ(api().stats(handle, &stats), EPOLL_ECHO_OK);
  EXPECT_EQ(stats.total.accept_cap_pauses, 0u);
  api().destroy(handle);
}

TEST_F(AbiTest, CreateRejectsOutOfRangeFields) {
  epoll_echo_config_t config = loopbackConfig();
  config.port = 70000;
  expectRejected(config, EPOLL_ECHO_EINVAL, "port");
  config = loopbackConfig();
  config.listeners = 5000;
  expectRejected(config, EPOLL_ECHO_EINVAL, "listeners");
  config = loopbackConfig();
  config.listeners = 1025;
  expectRejected(config, EPOLL_ECHO_EINVAL, "listeners");
  config = loopbackConfig();
  config.high_water_bytes = 100;
  expectRejected(config, EPOLL_ECHO_EINVAL, "high_water");
  config = loopbackConfig();
  config.read_budget_bytes = 4095;
  expectRejected(config, EPOLL_ECHO_EINVAL, "read_budget");
  config = loopbackConfig();
  config.reserved0 = 1;
  expectRejected(config, EPOLL_ECHO_EINVAL, "reserved0");
}

TEST_F(AbiTest, CreateAcceptsBoundaryValues) {
  epoll_echo_config_t config = loopbackConfig(1024);
  config.port = 65535;
  config.high_water_bytes = 4096;
  config.read_budget_bytes = 4096;
  config.accept_budget = 1;
  TestEngine engine(api());
  std::string detail;
  EXPECT_EQ(engine.create(config, &detail), EPOLL_ECHO_OK) << detail;
}

TEST_F(AbiTest, CreateRejectsBadBindAddresses) {
  epoll_echo_config_t config = loopbackConfig();
  std::strcpy(config.bind_address, "not-an-ip");
  expectRejected(config, EPOLL_ECHO_EADDRESS, "not-an-ip");
  std::strcpy(config.bind_address, "localhost");  // numeric only: no resolver inside the plugin
  expectRejected(config, EPOLL_ECHO_EADDRESS, "localhost");
  std::strcpy(config.bind_address, "127.0.0.256");
  expectRejected(config, EPOLL_ECHO_EADDRESS, "127.0.0.256");

  std::memset(config.bind_address, '1', sizeof config.bind_address);  // no NUL anywhere
  epoll_echo_engine_t* engine = reinterpret_cast<epoll_echo_engine_t*>(0x1);
  std::string detail;
  int code = createRaw(&config, &engine, &detail);
  EXPECT_TRUE(code == EPOLL_ECHO_EINVAL || code == EPOLL_ECHO_EADDRESS) << describeCode(api(), code);
  EXPECT_EQ(engine, nullptr);
  EXPECT_NE(detail.find("bind"), std::string::npos) << detail;
}

TEST_F(AbiTest, CreateAcceptsNumericAddressForms) {
  for (const char* address : {"127.0.0.1", "0.0.0.0", "::1", "[::1]", "::", ""}) {
    epoll_echo_config_t config = loopbackConfig();
    std::strcpy(config.bind_address, address);
    TestEngine engine(api());
    std::string detail;
    EXPECT_EQ(engine.create(config, &detail), EPOLL_ECHO_OK) << "\"" << address << "\": " << detail;
  }
}

// A size that ends inside a field would have the plugin read half of it (size 10: half of
// `listeners`); no header ever declared such a struct, so it is ESIZE, in and out.
TEST_F(AbiTest, SizesThatEndInsideAFieldAreRefused) {
  for (uint32_t size : {10u, 14u, static_cast<uint32_t>(offsetof(epoll_echo_config_t, bind_address) + 8)}) {
    epoll_echo_config_t config = loopbackConfig();
    config.size = size;
    epoll_echo_engine_t* engine = reinterpret_cast<epoll_echo_engine_t*>(0x1);
    std::string detail;
    EXPECT_EQ(createRaw(&config, &engine, &detail), EPOLL_ECHO_ESIZE) << "size " << size;
    EXPECT_EQ(engine, nullptr);
    EXPECT_NE(detail.find("size " + std::to_string(size)), std::string::npos) << detail;
  }
  TestEngine engine(api());
  std::string detail;
  ASSERT_EQ(engine.create(loopbackConfig(), &detail), EPOLL_ECHO_OK) << detail;
  epoll_echo_stats_t stats{};
  stats.size = static_cast<uint32_t>(offsetof(epoll_echo_stats_t, total) + 4);  // half of total.accepted
  EXPECT_EQ(api().stats(engine.handle(), &stats), EPOLL_ECHO_ESIZE);
  epoll_echo_worker_stats_t workerStats{};
  workerStats.size = 12;
  EXPECT_EQ(api().worker_stats(engine.handle(), 0, &workerStats), EPOLL_ECHO_ESIZE);
  epoll_echo_connection_state_t state{};
  state.size = static_cast<uint32_t>(offsetof(epoll_echo_connection_state_t, pending_bytes) + 4);
  state.fd = -1;
  EXPECT_EQ(api().import_connection(engine.handle(), &state, nullptr), EPOLL_ECHO_ESIZE);
}

// IPv6 zones, as getaddrinfo() and ping accept them: a link-local address needs one to be bound
// at all. The zone is an interface name or index; "::1%lo" is accepted too (its zone is unused).
TEST_F(AbiTest, CreateAcceptsIpv6AddressesWithAZone) {
  for (const char* address : {"fe80::1%lo", "[fe80::1%lo]", "fe80::1%1", "::1%lo", "[::1%lo]"}) {
    epoll_echo_config_t config = loopbackConfig();
    std::strcpy(config.bind_address, address);
    TestEngine engine(api());
    std::string detail;
    EXPECT_EQ(engine.create(config, &detail), EPOLL_ECHO_OK) << "\"" << address << "\": " << detail;
  }
  epoll_echo_config_t config = loopbackConfig();
  for (const char* address : {"fe80::1%", "fe80::1%no-such-interface", "fe80::1%99999999999", "127.0.0.1%lo",
                              "fe80::1%lo%lo"}) {
    std::strcpy(config.bind_address, address);
    expectRejected(config, EPOLL_ECHO_EADDRESS, address);
  }
}

TEST_F(AbiTest, ServesOnAnIpv6LoopbackAddressWithAZone) {
  std::string error;
  if (!listenTcp("::1", 0, 1, &error)) GTEST_SKIP() << "no IPv6 loopback here: " << error;
  epoll_echo_config_t config = loopbackConfig();
  std::strcpy(config.bind_address, "::1%lo");
  TestEngine engine(api());
  ASSERT_TRUE(engine.createAndStart(config));
  expectEchoOnNewConnection(engine.port(), "zoned", "::1");
}

TEST_F(AbiTest, NullEngineIsRejectedEverywhere) {
  EXPECT_EQ(api().start(nullptr), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(api().stop(nullptr), EPOLL_ECHO_EINVAL);
  api().destroy(nullptr);
  epoll_echo_stats_t stats{};
  stats.size = sizeof stats;
  EXPECT_EQ(api().stats(nullptr, &stats), EPOLL_ECHO_EINVAL);
  epoll_echo_worker_stats_t workerStats{};
  workerStats.size = sizeof workerStats;
  EXPECT_EQ(api().worker_stats(nullptr, 0, &workerStats), EPOLL_ECHO_EINVAL);
  char buffer[16];
  EXPECT_EQ(api().last_error(nullptr, buffer, sizeof buffer), EPOLL_ECHO_EINVAL);
}

}  // namespace
}  // namespace epoll_echo::test
