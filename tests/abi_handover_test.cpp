// abi_handover_test.cpp — misuse of the ABI 1.1 hand-over functions (and 1.5's drop_connection):
// NULL and garbage arguments, calls in the wrong state, and the rollback path (pause, then resume)
// losing no connection or byte. The full old-to-new-engine hand-over is exercised by the host's hot-swap tests.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "support/echo_traffic.h"
#include "support/expect_echo.h"
#include "support/plugin.h"
#include "support/timeouts.h"

namespace epoll_echo::test {
namespace {

class AbiHandoverTest : public PluginTest {
 protected:
  // A CREATED engine with a small per-connection bound: high water + read budget = 8192 bytes.
  void createSmallEngine(TestEngine& engine, uint32_t listeners = 1) {
    epoll_echo_config_t config = loopbackConfig(listeners);
    config.high_water_bytes = 4096;
    config.read_budget_bytes = 4096;
    std::string error;
    ASSERT_EQ(engine.create(config, &error), EPOLL_ECHO_OK) << error;
  }
};

constexpr uint64_t kSmallEngineBound = 8192;

using ConnectedPair = LoopbackPair;

ConnectedPair connectPair() {
  std::string error;
  ConnectedPair pair = connectLoopbackPair(0, &error);
  EXPECT_TRUE(pair.client && pair.server) << error;
  return pair;
}

epoll_echo_connection_state_t stateFor(int fd, uint32_t worker = 0, uint64_t pendingBytes = 0, uint32_t flags = 0) {
  epoll_echo_connection_state_t state{};
  state.size = sizeof state;
  state.fd = fd;
  state.worker = worker;
  state.pending_bytes = pendingBytes;
  state.flags = flags;
  return state;
}

TEST_F(AbiHandoverTest, NullArgumentsAreRejected) {
  uint32_t listeners = 0, connections = 0;
  int32_t fd = -1;
  epoll_echo_connection_state_t state{};
  state.size = sizeof state;
  EXPECT_EQ(api().pause(nullptr), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(api().resume(nullptr), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(api().handover_counts(nullptr, &listeners, &connections), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(api().export_listener(nullptr, 0, &fd), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(api().export_connection(nullptr, 0, &state, nullptr, 0), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(api().handover_complete(nullptr), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(api().import_listener(nullptr, 0), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(api().import_connection(nullptr, &state, nullptr), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(api().drop_connection(nullptr, 0), EPOLL_ECHO_EINVAL);

  TestEngine engine(api());
  std::string error;
  ASSERT_EQ(engine.create(loopbackConfig(), &error), EPOLL_ECHO_OK) << error;
  EXPECT_EQ(api().import_connection(engine.handle(), nullptr, nullptr), EPOLL_ECHO_EINVAL);
}

TEST_F(AbiHandoverTest, CallsInTheWrongStateAreStateErrors) {
  TestEngine engine(api());
  std::string error;
  ASSERT_EQ(engine.create(loopbackConfig(), &error), EPOLL_ECHO_OK) << error;
  uint32_t listeners = 0, connections = 0;
  int32_t fd = -1;
  EXPECT_EQ(api().pause(engine.handle()), EPOLL_ECHO_ESTATE) << "pause needs RUNNING";
  EXPECT_EQ(api().resume(engine.handle()), EPOLL_ECHO_ESTATE) << "resume needs PAUSED";
  EXPECT_EQ(api().handover_counts(engine.handle(), &listeners, &connections), EPOLL_ECHO_ESTATE);
  EXPECT_EQ(api().export_listener(engine.handle(), 0, &fd), EPOLL_ECHO_ESTATE);
  EXPECT_EQ(api().handover_complete(engine.handle()), EPOLL_ECHO_ESTATE);

  ASSERT_EQ(engine.start(), EPOLL_ECHO_OK) << engine.lastError();
  EXPECT_EQ(api().resume(engine.handle()), EPOLL_ECHO_ESTATE);
  EXPECT_EQ(api().handover_counts(engine.handle(), &listeners, &connections), EPOLL_ECHO_ESTATE);
  UniqueFd listener = listenTcp("127.0.0.1", 0, 4, &error);
  ASSERT_TRUE(listener) << error;
  EXPECT_EQ(api().import_listener(engine.handle(), listener.get()), EPOLL_ECHO_ESTATE) << "import needs CREATED";
}

TEST_F(AbiHandoverTest, ImportRejectsDescriptorsOfTheWrongKind) {
  TestEngine engine(api());
  std::string error;
  ASSERT_EQ(engine.create(loopbackConfig(), &error), EPOLL_ECHO_OK) << error;
  int pipeFds[2];
  ASSERT_EQ(::pipe(pipeFds), 0);
  UniqueFd readEnd(pipeFds[0]), writeEnd(pipeFds[1]);
  EXPECT_EQ(api().import_listener(engine.handle(), readEnd.get()), EPOLL_ECHO_EINVAL) << "a pipe";
  EXPECT_EQ(api().import_listener(engine.handle(), -1), EPOLL_ECHO_EINVAL);
  UniqueFd listener = listenTcp("127.0.0.1", 0, 4, &error);
  ASSERT_TRUE(listener) << error;
  epoll_echo_connection_state_t state{};
  state.size = sizeof state;
  state.fd = listener.get();  // listening, not connected
  EXPECT_EQ(api().import_connection(engine.handle(), &state, nullptr), EPOLL_ECHO_EINVAL);
  state.fd = readEnd.get();
  EXPECT_EQ(api().import_connection(engine.handle(), &state, nullptr), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(engine.stats().state, EPOLL_ECHO_STATE_CREATED);
}

// A stream socket of another protocol (SCTP one-to-one, MPTCP), listening or connected over
// loopback; nullopt with the reason when this kernel cannot make one.
struct OtherStreamSockets {
  UniqueFd listener;
  UniqueFd client;
  UniqueFd server;
};

std::optional<OtherStreamSockets> otherStreamSockets(int protocol, std::string* reason) {
  OtherStreamSockets sockets;
  sockets.listener.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, protocol));
  if (!sockets.listener) {
    *reason = std::string("socket(AF_INET, SOCK_STREAM, ") + std::to_string(protocol) + "): " + std::strerror(errno);
    return std::nullopt;
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  auto* raw = reinterpret_cast<sockaddr*>(&address);
  if (::bind(sockets.listener.get(), raw, length) != 0 || ::listen(sockets.listener.get(), 4) != 0 ||
      ::getsockname(sockets.listener.get(), raw, &length) != 0) {
    *reason = std::string("bind/listen: ") + std::strerror(errno);
    return std::nullopt;
  }
  sockets.client.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, protocol));
  if (!sockets.client || ::connect(sockets.client.get(), raw, length) != 0) {
    *reason = std::string("connect: ") + std::strerror(errno);
    return std::nullopt;
  }
  sockets.server.reset(::accept4(sockets.listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!sockets.server) {
    *reason = std::string("accept4: ") + std::strerror(errno);
    return std::nullopt;
  }
  return sockets;
}

void expectRefusedAsNotTcp(const PluginApi& api, int protocol, const char* name) {
  std::string reason;
  std::optional<OtherStreamSockets> sockets = otherStreamSockets(protocol, &reason);
  if (!sockets) GTEST_SKIP() << "this kernel makes no " << name << " socket: " << reason;
  TestEngine engine(api);
  std::string error;
  ASSERT_EQ(engine.create(loopbackConfig(), &error), EPOLL_ECHO_OK) << error;
  EXPECT_EQ(api.import_listener(engine.handle(), sockets->listener.get()), EPOLL_ECHO_EINVAL) << name;
  EXPECT_NE(engine.lastError().find("is not a TCP socket"), std::string::npos) << engine.lastError();
  for (const UniqueFd* end : {&sockets->server, &sockets->client}) {
    epoll_echo_connection_state_t state = stateFor(end->get());
    EXPECT_EQ(api.import_connection(engine.handle(), &state, nullptr), EPOLL_ECHO_EINVAL) << name;
    EXPECT_NE(engine.lastError().find("is not a TCP socket"), std::string::npos) << engine.lastError();
  }
  EXPECT_EQ(engine.stats().state, EPOLL_ECHO_STATE_CREATED);
}

// The engine reads and writes TCP byte streams; SCTP keeps message boundaries and notifications,
// and the TCP options it sets mean nothing there.
TEST_F(AbiHandoverTest, ImportRefusesSctpStreamSockets) { expectRefusedAsNotTcp(api(), IPPROTO_SCTP, "SCTP"); }

// MPTCP sockets are SOCK_STREAM and AF_INET too, but another protocol than the one documented.
TEST_F(AbiHandoverTest, ImportRefusesMptcpStreamSockets) { expectRefusedAsNotTcp(api(), IPPROTO_MPTCP, "MPTCP"); }

// Two workers reading one socket would interleave its bytes and reorder the echo: the second
// import of a socket is refused, however the descriptor that names it was obtained.
TEST_F(AbiHandoverTest, ImportConnectionRefusesTheSameSocketTwice) {
  TestEngine engine(api());
  ASSERT_NO_FATAL_FAILURE(createSmallEngine(engine, 2));
  ConnectedPair pair = connectPair();
  ASSERT_TRUE(pair.server);
  epoll_echo_connection_state_t state = stateFor(pair.server.get(), 0);
  ASSERT_EQ(api().import_connection(engine.handle(), &state, nullptr), EPOLL_ECHO_OK) << engine.lastError();
  state.worker = 1;
  EXPECT_EQ(api().import_connection(engine.handle(), &state, nullptr), EPOLL_ECHO_EINVAL);
  EXPECT_NE(engine.lastError().find("already imported"), std::string::npos) << engine.lastError();
  UniqueFd copy(::fcntl(pair.server.get(), F_DUPFD_CLOEXEC, 0));
  ASSERT_TRUE(copy);
  state.fd = copy.get();
  EXPECT_EQ(api().import_connection(engine.handle(), &state, nullptr), EPOLL_ECHO_EINVAL) << "a dup() of it";

  ASSERT_EQ(engine.start(), EPOLL_ECHO_OK) << engine.lastError();
  EXPECT_EQ(engine.stats().total.adopted, 1u);
  expectEcho(pair.client.get(), std::string(20000, 'e'));
}

// Each imported listener gets at least one worker: one imported twice would double them, so the
// second import of a listening socket is refused, through any descriptor.
TEST_F(AbiHandoverTest, ImportListenerRefusesTheSameSocketTwice) {
  TestEngine engine(api());
  std::string error;
  ASSERT_EQ(engine.create(loopbackConfig(), &error), EPOLL_ECHO_OK) << error;
  UniqueFd listener = listenTcp("127.0.0.1", 0, 4, &error);
  ASSERT_TRUE(listener) << error;
  ASSERT_EQ(api().import_listener(engine.handle(), listener.get()), EPOLL_ECHO_OK) << engine.lastError();
  EXPECT_EQ(api().import_listener(engine.handle(), listener.get()), EPOLL_ECHO_EINVAL);
  EXPECT_NE(engine.lastError().find("already imported"), std::string::npos) << engine.lastError();
  UniqueFd copy(::fcntl(listener.get(), F_DUPFD_CLOEXEC, 0));
  ASSERT_TRUE(copy);
  EXPECT_EQ(api().import_listener(engine.handle(), copy.get()), EPOLL_ECHO_EINVAL) << "a dup() of it";
  UniqueFd other = listenTcp("127.0.0.1", 0, 4, &error);
  ASSERT_TRUE(other) << error;
  EXPECT_EQ(api().import_listener(engine.handle(), other.get()), EPOLL_ECHO_OK) << engine.lastError();
  EXPECT_EQ(engine.stats().state, EPOLL_ECHO_STATE_CREATED);
}

// A host imports connections before a hand-over and drops, in the pause, those the exporter
// closed meanwhile: a dropped connection is not served (its client sees the close once every
// other copy is gone), and one dropped may be imported again, with new pending bytes.
TEST_F(AbiHandoverTest, DropConnectionForgetsAnImportedConnection) {
  TestEngine engine(api());
  ASSERT_NO_FATAL_FAILURE(createSmallEngine(engine, 2));
  ConnectedPair dropped = connectPair();
  ConnectedPair reimported = connectPair();
  ConnectedPair kept = connectPair();
  ASSERT_TRUE(dropped.server && reimported.server && kept.server);
  for (const ConnectedPair* pair : {&dropped, &reimported, &kept}) {
    epoll_echo_connection_state_t state = stateFor(pair->server.get(), 1);
    ASSERT_EQ(api().import_connection(engine.handle(), &state, nullptr), EPOLL_ECHO_OK) << engine.lastError();
  }
  UniqueFd copy(::fcntl(dropped.server.get(), F_DUPFD_CLOEXEC, 0));
  ASSERT_TRUE(copy);
  EXPECT_EQ(api().drop_connection(engine.handle(), copy.get()), EPOLL_ECHO_OK) << "any descriptor of the socket";
  copy.reset();
  ASSERT_EQ(api().drop_connection(engine.handle(), reimported.server.get()), EPOLL_ECHO_OK) << engine.lastError();
  const std::string pending = "pending bytes";
  epoll_echo_connection_state_t state = stateFor(reimported.server.get(), 0, pending.size());
  ASSERT_EQ(api().import_connection(engine.handle(), &state, pending.data()), EPOLL_ECHO_OK) << engine.lastError();

  ASSERT_EQ(engine.start(), EPOLL_ECHO_OK) << engine.lastError();
  EXPECT_EQ(engine.stats().total.adopted, 2u);
  expectEcho(kept.client.get(), std::string(20000, 'k'));
  std::string error;
  ASSERT_TRUE(sendAll(reimported.client.get(), "x", deadlineIn(kIoTimeout), &error)) << error;
  std::string echoed(pending.size() + 1, '\0');
  ASSERT_TRUE(receiveExactly(reimported.client.get(), echoed.data(), echoed.size(), deadlineIn(kIoTimeout), &error))
      << error;
  EXPECT_EQ(echoed, pending + "x");
  // The dropped one is the caller's alone: once the caller closes it, its client reads EOF.
  dropped.server.reset();
  EXPECT_TRUE(waitForEof(dropped.client.get(), deadlineIn(kIoTimeout), &error)) << error;
}

TEST_F(AbiHandoverTest, DropConnectionRefusesWhatTheEngineDoesNotHold) {
  TestEngine engine(api());
  ASSERT_NO_FATAL_FAILURE(createSmallEngine(engine));
  ConnectedPair imported = connectPair();
  ConnectedPair stranger = connectPair();
  ASSERT_TRUE(imported.server && stranger.server);
  EXPECT_EQ(api().drop_connection(engine.handle(), -1), EPOLL_ECHO_EINVAL);
  EXPECT_NE(engine.lastError().find("not an open descriptor of a socket"), std::string::npos) << engine.lastError();
  EXPECT_EQ(api().drop_connection(engine.handle(), stranger.server.get()), EPOLL_ECHO_EINVAL) << "never imported";
  EXPECT_NE(engine.lastError().find("not a connection this engine holds"), std::string::npos) << engine.lastError();
  epoll_echo_connection_state_t state = stateFor(imported.server.get());
  ASSERT_EQ(api().import_connection(engine.handle(), &state, nullptr), EPOLL_ECHO_OK) << engine.lastError();
  ASSERT_EQ(api().drop_connection(engine.handle(), imported.server.get()), EPOLL_ECHO_OK) << engine.lastError();
  EXPECT_EQ(api().drop_connection(engine.handle(), imported.server.get()), EPOLL_ECHO_EINVAL) << "twice";
  EXPECT_NE(engine.lastError().find("not a connection this engine holds"), std::string::npos) << engine.lastError();

  ASSERT_EQ(api().import_connection(engine.handle(), &state, nullptr), EPOLL_ECHO_OK) << engine.lastError();
  ASSERT_EQ(engine.start(), EPOLL_ECHO_OK) << engine.lastError();
  EXPECT_EQ(api().drop_connection(engine.handle(), imported.server.get()), EPOLL_ECHO_ESTATE) << "needs CREATED";
  EXPECT_NE(engine.lastError().find("drop_connection"), std::string::npos) << engine.lastError();
  expectEcho(imported.client.get(), "still served");
}

// An unbound or merely bound socket is not a connection: the engine would adopt and close it.
TEST_F(AbiHandoverTest, ImportConnectionRefusesSocketsThatNeverConnected) {
  TestEngine engine(api());
  ASSERT_NO_FATAL_FAILURE(createSmallEngine(engine));
  UniqueFd unbound(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(unbound);
  epoll_echo_connection_state_t state = stateFor(unbound.get());
  EXPECT_EQ(api().import_connection(engine.handle(), &state, nullptr), EPOLL_ECHO_EINVAL);
  EXPECT_NE(engine.lastError().find("not connected"), std::string::npos) << engine.lastError();

  UniqueFd bound(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(bound);
  sockaddr_in loopback{};
  loopback.sin_family = AF_INET;
  loopback.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(bound.get(), reinterpret_cast<sockaddr*>(&loopback), sizeof loopback), 0);
  state.fd = bound.get();
  EXPECT_EQ(api().import_connection(engine.handle(), &state, nullptr), EPOLL_ECHO_EINVAL);

  // A connection its client reset while the exporter was paused is still a connection: refusing
  // it would fail a whole hot-swap over one client. Its worker closes it.
  ConnectedPair pair = connectPair();
  ASSERT_TRUE(pair.server);
  ASSERT_TRUE(setLingerZero(pair.client.get()));
  pair.client.reset();
  pollfd reset{pair.server.get(), 0, 0};
  ASSERT_EQ(::poll(&reset, 1, millisecondsLeft(deadlineIn(kIoTimeout))), 1);
  ASSERT_NE(reset.revents & POLLERR, 0);
  state.fd = pair.server.get();
  EXPECT_EQ(api().import_connection(engine.handle(), &state, nullptr), EPOLL_ECHO_OK) << engine.lastError();
  ASSERT_EQ(engine.start(), EPOLL_ECHO_OK) << engine.lastError();
  bool closed = false;
  engine.waitForStats([](const epoll_echo_stats_t& s) { return s.total.closed == 1 && s.total.active == 0; },
                      deadlineIn(kIoTimeout), &closed);
  EXPECT_TRUE(closed);
}

// pending_bytes can never exceed what an engine holds for one connection (high water + read
// budget); beyond is a corrupt state, refused before anything is allocated or read. Unknown flag
// bits are refused too: they would mean something this plugin cannot honour.
TEST_F(AbiHandoverTest, ImportConnectionRefusesAbsurdPendingBytesAndUnknownFlags) {
  TestEngine engine(api());
  ASSERT_NO_FATAL_FAILURE(createSmallEngine(engine));
  ConnectedPair pair = connectPair();
  ASSERT_TRUE(pair.server);
  const std::string pending(kSmallEngineBound + 1, 'p');
  for (uint64_t bytes : {uint64_t{1} << 63, uint64_t{1} << 35, kSmallEngineBound + 1}) {
    epoll_echo_connection_state_t state = stateFor(pair.server.get(), 0, bytes);
    EXPECT_EQ(api().import_connection(engine.handle(), &state, pending.data()), EPOLL_ECHO_EINVAL) << bytes;
    EXPECT_NE(engine.lastError().find("pending_bytes " + std::to_string(bytes)), std::string::npos)
        << engine.lastError();
  }
  for (uint32_t flags : {2u, 0x80000000u, EPOLL_ECHO_CONNECTION_PEER_CLOSED | 4u}) {
    epoll_echo_connection_state_t state = stateFor(pair.server.get(), 0, 0, flags);
    EXPECT_EQ(api().import_connection(engine.handle(), &state, nullptr), EPOLL_ECHO_EINVAL) << flags;
    EXPECT_NE(engine.lastError().find("flags"), std::string::npos) << engine.lastError();
  }
  // The bound itself is accepted, and those bytes are echoed first.
  epoll_echo_connection_state_t state =
      stateFor(pair.server.get(), 0, kSmallEngineBound, EPOLL_ECHO_CONNECTION_PEER_CLOSED);
  ASSERT_EQ(api().import_connection(engine.handle(), &state, pending.data()), EPOLL_ECHO_OK) << engine.lastError();
  ASSERT_EQ(engine.start(), EPOLL_ECHO_OK) << engine.lastError();
  pair.server.reset();  // as the exporter does at handover_complete: the engine's copy is the last
  std::string error;
  std::string reply(kSmallEngineBound, '\0');
  ASSERT_TRUE(receiveExactly(pair.client.get(), reply.data(), reply.size(), deadlineIn(kIoTimeout), &error)) << error;
  EXPECT_EQ(reply, pending.substr(0, kSmallEngineBound));
  EXPECT_TRUE(waitForEof(pair.client.get(), deadlineIn(kIoTimeout), &error)) << error;
  // The adopted bytes were read by the exporter: this engine wrote them without reading them.
  bool counted = false;
  const epoll_echo_stats_t stats = engine.waitForStats([](const epoll_echo_stats_t& s) { return s.total.closed == 1; },
                                                       deadlineIn(kIoTimeout), &counted);
  EXPECT_TRUE(counted);
  EXPECT_EQ(stats.total.bytes_in, 0u);
  EXPECT_EQ(stats.total.bytes_out, kSmallEngineBound);
}

// The epoll registrations of this process's epoll instances that name descriptor `fd`, from
// /proc/self/fdinfo ("tfd: N events: ..."): an epoll set keeps an entry until the socket's last
// descriptor closes, whatever happened to the number it was added under.
int epollEntriesFor(int fd) {
  int entries = 0;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fdinfo", error)) {
    std::ifstream info(entry.path());
    for (std::string line; std::getline(info, line);) {
      std::istringstream fields(line);  // "tfd:        7 events:       19 data: ..."
      std::string label;
      int number = -1;
      if (fields >> label >> number && label == "tfd:" && number == fd) ++entries;
    }
  }
  return entries;
}

// A host may keep a copy of an exported connection and resume the engine (an upgrade sends the
// copies ahead of its pause): when the engine then closes the connection, it must leave the
// epoll set too, or a later event on the socket would name a connection the worker has freed.
TEST_F(AbiHandoverTest, AConnectionClosedAfterExportAndResumeLeavesTheEpollSet) {
  TestEngine engine(api());
  ASSERT_TRUE(engine.createAndStart(loopbackConfig(1)));
  std::string error;
  UniqueFd client = connectLoopback(engine.port(), deadlineIn(kIoTimeout), &error);
  ASSERT_TRUE(client) << error;
  expectEcho(client.get(), "before the export");
  ASSERT_EQ(api().pause(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
  epoll_echo_connection_state_t state{};
  state.size = sizeof state;
  ASSERT_EQ(api().export_connection(engine.handle(), 0, &state, nullptr, 0), EPOLL_ECHO_OK) << engine.lastError();
  const int exported = state.fd;
  UniqueFd copy(::fcntl(exported, F_DUPFD_CLOEXEC, 0));
  ASSERT_TRUE(copy);
  ASSERT_EQ(api().resume(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
  EXPECT_EQ(epollEntriesFor(exported), engine.stats().backend == EPOLL_ECHO_BACKEND_EPOLL ? 1 : 0)
      << "io_uring registers no connection in an epoll set";

  ASSERT_EQ(::shutdown(client.get(), SHUT_WR), 0);  // the engine echoes nothing more and closes
  engine.waitForStats([](const epoll_echo_stats_t& s) { return s.total.closed == 1; }, deadlineIn(kIoTimeout));
  EXPECT_EQ(engine.stats().total.closed, 1u);
  EXPECT_EQ(epollEntriesFor(exported), 0) << "the engine closed its descriptor but left the socket in its epoll set";
  // The socket lives on in the copy; events on it reach no worker.
  ASSERT_TRUE(sendAll(copy.get(), "from the copy", deadlineIn(kIoTimeout), &error)) << error;
  client.reset();
  UniqueFd next = connectLoopback(engine.port(), deadlineIn(kIoTimeout), &error);
  ASSERT_TRUE(next) << error;
  expectEcho(next.get(), "still serving");
  EXPECT_EQ(engine.stop(), EPOLL_ECHO_OK);
}

// The rollback path: pause keeps every socket and pending byte, resume serves them again.
TEST_F(AbiHandoverTest, PauseThenResumeLosesNothing) {
  TestEngine engine(api());
  std::string error;
  ASSERT_TRUE(engine.createAndStart(loopbackConfig(2)));
  auto jobs = makeEchoJobs(engine.port(), 4, 50000, false, 9, deadlineIn(kIoTimeout), &error);
  ASSERT_EQ(jobs.size(), 4u) << error;
  ASSERT_EQ(runEchoJobs(jobs, deadlineIn(kIoTimeout)), "");
  engine.waitForStats([](const epoll_echo_stats_t& s) { return s.total.active == 4; }, deadlineIn(kIoTimeout));

  ASSERT_EQ(api().pause(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
  EXPECT_EQ(engine.stats().state, EPOLL_ECHO_STATE_PAUSED);
  uint32_t listeners = 0, connections = 0;
  EXPECT_EQ(api().handover_counts(engine.handle(), &listeners, &connections), EPOLL_ECHO_OK);
  EXPECT_EQ(listeners, 2u);
  EXPECT_EQ(connections, 4u);
  int32_t fd = -1;
  EXPECT_EQ(api().export_listener(engine.handle(), 2, &fd), EPOLL_ECHO_ERANGE);
  epoll_echo_connection_state_t state{};
  state.size = sizeof state;
  EXPECT_EQ(api().export_connection(engine.handle(), 4, &state, nullptr, 0), EPOLL_ECHO_ERANGE);
  // While paused, clients keep sending and new ones connect into the accept queue.
  for (auto& job : jobs) job.total += 20000;
  auto late = makeEchoJobs(engine.port(), 2, 30000, true, 50, deadlineIn(kIoTimeout), &error);
  ASSERT_EQ(late.size(), 2u) << error;

  ASSERT_EQ(api().resume(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
  EXPECT_EQ(engine.stats().state, EPOLL_ECHO_STATE_RUNNING);
  for (auto& job : late) jobs.push_back(std::move(job));
  EXPECT_EQ(runEchoJobs(jobs, deadlineIn(kIoTimeout)), "");
  EXPECT_EQ(engine.stop(), EPOLL_ECHO_OK);
}

}  // namespace
}  // namespace epoll_echo::test
