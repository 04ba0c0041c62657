// backend_test.cpp — choosing the worker backend: the config field and what stats report, AUTO's
// fallback to epoll where io_uring is refused (a seccomp filter, as a container runtime installs),
// the refusal when io_uring was asked for, the host's --backend and start line, and a hand-over
// from an epoll engine to an io_uring one and back while clients keep sending.
#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <thread>
#include <vector>

#include "support/echo_traffic.h"
#include "support/expect_echo.h"
#include "support/plugin.h"
#include "support/process.h"
#include "support/server_process.h"
#include "support/timeouts.h"

namespace epoll_echo::test {
namespace {

class BackendTest : public PluginTest {};

epoll_echo_config_t configWithBackend(uint32_t backend, uint32_t listeners = 1) {
  epoll_echo_config_t config = loopbackConfig(listeners);
  config.backend = backend;
  return config;
}

TEST_F(BackendTest, StatsNameTheBackendServing) {
  for (uint32_t backend : {EPOLL_ECHO_BACKEND_EPOLL, EPOLL_ECHO_BACKEND_IO_URING}) {
    TestEngine engine(api());
    ASSERT_TRUE(engine.createAndStart(configWithBackend(backend)));
    EXPECT_EQ(engine.stats().backend, backend);
    ASSERT_NO_FATAL_FAILURE(expectEchoOnNewConnection(engine.port(), "backend " + std::to_string(backend) + "\n"));
  }
  // Here io_uring works (the io_uring runs of the engine suites need it): AUTO takes it.
  TestEngine automatic(api());
  ASSERT_TRUE(automatic.createAndStart(configWithBackend(EPOLL_ECHO_BACKEND_AUTO)));
  EXPECT_EQ(automatic.stats().backend, EPOLL_ECHO_BACKEND_IO_URING);
}

TEST_F(BackendTest, UnknownBackendIsRefusedNamingTheField) {
  TestEngine engine(api());
  std::string detail;
  EXPECT_EQ(engine.create(configWithBackend(EPOLL_ECHO_BACKEND_AUTO + 1), &detail), EPOLL_ECHO_EINVAL);
  EXPECT_NE(detail.find("backend 3"), std::string::npos) << detail;
}

// The application's own loop drives epoll workers: io_uring asked for by name is refused at
// create, and AUTO serves with epoll there, even where io_uring works.
TEST_F(BackendTest, AnExternalLoopEngineServesWithEpoll) {
  epoll_echo_config_t config = configWithBackend(EPOLL_ECHO_BACKEND_IO_URING);
  config.threading = EPOLL_ECHO_THREADING_EXTERNAL;
  TestEngine refused(api());
  std::string detail;
  EXPECT_EQ(refused.create(config, &detail), EPOLL_ECHO_EINVAL);
  EXPECT_NE(detail.find("cannot serve EPOLL_ECHO_THREADING_EXTERNAL"), std::string::npos) << detail;

  config.backend = EPOLL_ECHO_BACKEND_AUTO;
  TestEngine automatic(api());
  ASSERT_TRUE(automatic.createAndStart(config));
  EXPECT_EQ(automatic.stats().backend, EPOLL_ECHO_BACKEND_EPOLL);
  ASSERT_NO_FATAL_FAILURE(expectEchoOnNewConnection(automatic.port(), "auto in an external loop\n"));
}

// Moves every socket of the running engine `from` into a new engine of `backend`, as a hot-swap
// host does: pause, export, import, start, complete.
void handOver(const PluginApi& api, TestEngine& from, TestEngine& to, uint32_t backend) {
  ASSERT_EQ(api.pause(from.handle()), EPOLL_ECHO_OK) << from.lastError();
  uint32_t listeners = 0, connections = 0;
  ASSERT_EQ(api.handover_counts(from.handle(), &listeners, &connections), EPOLL_ECHO_OK);
  std::string detail;
  ASSERT_EQ(to.create(configWithBackend(backend, listeners), &detail), EPOLL_ECHO_OK) << detail;
  for (uint32_t i = 0; i < listeners; ++i) {
    int32_t fd = -1;
    ASSERT_EQ(api.export_listener(from.handle(), i, &fd), EPOLL_ECHO_OK);
    ASSERT_EQ(api.import_listener(to.handle(), fd), EPOLL_ECHO_OK) << to.lastError();
  }
  for (uint32_t i = 0; i < connections; ++i) {
    epoll_echo_connection_state_t state{};
    state.size = sizeof state;
    ASSERT_EQ(api.export_connection(from.handle(), i, &state, nullptr, 0), EPOLL_ECHO_OK);
    std::string pending(state.pending_bytes, '\0');
    ASSERT_EQ(api.export_connection(from.handle(), i, &state, pending.data(), pending.size()), EPOLL_ECHO_OK);
    ASSERT_EQ(api.import_connection(to.handle(), &state, pending.data()), EPOLL_ECHO_OK) << to.lastError();
  }
  ASSERT_EQ(to.start(), EPOLL_ECHO_OK) << to.lastError();
  ASSERT_EQ(api.handover_complete(from.handle()), EPOLL_ECHO_OK);
  EXPECT_EQ(to.stats().backend, backend);
  EXPECT_EQ(to.stats().total.adopted, connections);
}

// Clients stream on every connection while it moves epoll -> io_uring -> epoll: every byte comes
// back once and in order (runEchoJobs checks each against its stream), nothing is reset.
TEST_F(BackendTest, HandOverBetweenBackendsUnderLoadLosesNothing) {
  TestEngine first(api()), second(api()), third(api());
  ASSERT_TRUE(first.createAndStart(configWithBackend(EPOLL_ECHO_BACKEND_EPOLL, 2)));
  constexpr size_t kClients = 16;
  const uint64_t bytesEach = scaledForSanitizers(8u << 20);
  std::string error;
  auto jobs = makeEchoJobs(first.port(), kClients, bytesEach, false, 77, deadlineIn(kIoTimeout), &error);
  ASSERT_EQ(jobs.size(), kClients) << error;
  std::string traffic = "not run";
  std::thread clients([&] { traffic = runEchoJobs(jobs, deadlineIn(kBulkTimeout)); });
  // Each hand-over starts once the serving engine has echoed something: traffic is flowing.
  const auto echoing = [](const epoll_echo_stats_t& s) { return s.total.bytes_out > 0; };
  bool flowing = false;
  first.waitForStats(echoing, deadlineIn(kIoTimeout), &flowing);
  EXPECT_TRUE(flowing);
  handOver(api(), first, second, EPOLL_ECHO_BACKEND_IO_URING);
  second.waitForStats(echoing, deadlineIn(kIoTimeout), &flowing);
  EXPECT_TRUE(flowing);
  handOver(api(), second, third, EPOLL_ECHO_BACKEND_EPOLL);
  clients.join();
  EXPECT_EQ(traffic, "");
  const epoll_echo_stats_t last = third.stats();
  EXPECT_EQ(last.total.adopted, kClients);
  EXPECT_EQ(first.stats().total.handed_over + second.stats().total.handed_over, 2 * kClients);
  const uint64_t echoed = first.stats().total.bytes_out + second.stats().total.bytes_out + last.total.bytes_out;
  EXPECT_EQ(echoed, kClients * bytesEach);
}

// --- The host, run where io_uring_setup is refused by seccomp_launcher's filter ---

ServerCommand withoutIoUring(int error) {
  ServerCommand command;
  command.program = SECCOMP_LAUNCHER;
  command.programArguments = {std::to_string(error), EPOLL_ECHO_SERVER_PATH};
  return command;
}

TEST(BackendHostTest, StartLineNamesTheBackend) {
  for (const std::string backend : {"epoll", "io_uring"}) {
    ServerProcess server;
    ASSERT_TRUE(server.start(loopbackFlags({"--maxListeners", "1", "--backend", backend})));
    EXPECT_NE(server.log().find("(1 listener, backend " + backend + ", "), std::string::npos) << server.log();
    ASSERT_NO_FATAL_FAILURE(expectEchoOnNewConnection(server.port(), "via " + backend + "\n"));
    EXPECT_TRUE(server.stop());
  }
}

TEST(BackendHostTest, AutoFallsBackToEpollWhereSeccompRefusesIoUring) {
  for (int error : {EPERM, ENOSYS}) {
    ServerProcess server;
    ASSERT_TRUE(server.start(loopbackFlags({"--maxListeners", "2", "--backend", "auto"}), withoutIoUring(error)));
    EXPECT_NE(server.log().find("(2 listeners, backend epoll, "), std::string::npos) << server.log();
    ASSERT_NO_FATAL_FAILURE(expectEchoOnNewConnection(server.port(), "fallback\n"));
    EXPECT_TRUE(server.stop());
  }
}

TEST(BackendHostTest, IoUringRefusedBySeccompIsOneClearLineAndExitOne) {
  ServerProcess server;
  server.spawn(loopbackFlags({"--backend", "io_uring"}), withoutIoUring(EPERM));
  const auto status = server.child().waitForExit(deadlineIn(kServerTimeout));
  ASSERT_TRUE(status.has_value()) << server.log();
  EXPECT_TRUE(status->exited && status->code == 1) << server.log();
  const std::string& log = server.log();
  EXPECT_NE(log.find("io_uring_setup: Operation not permitted"), std::string::npos) << log;
  EXPECT_NE(log.find("seccomp"), std::string::npos) << log;
  EXPECT_EQ(log.find("listening on"), std::string::npos) << log;
}

TEST(BackendHostTest, UnknownBackendIsAUsageError) {
  const Completed run = runToCompletion(EPOLL_ECHO_SERVER_PATH, {"--backend", "kqueue"}, deadlineIn(kServerTimeout));
  ASSERT_TRUE(run.status.has_value());
  EXPECT_TRUE(run.status->exited && run.status->code == 2);
  EXPECT_NE(run.err.find("--backend 'kqueue' is not a backend: allowed epoll, io_uring or auto"), std::string::npos)
      << run.err;
}

}  // namespace
}  // namespace epoll_echo::test
