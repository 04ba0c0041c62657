// host_metrics_test.cpp — end-to-end tests of epoll-server's --metrics-listen endpoint: the built
// server is a child process with the endpoint on 127.0.0.1:0, scraped over HTTP and every body
// parsed as Prometheus text, while echo clients run and hostile HTTP clients misbehave.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <epoll_echo.h>
#include <gtest/gtest.h>

#include "support/echo_traffic.h"
#include "support/net.h"
#include "support/ping_pong.h"
#include "support/process.h"
#include "support/prometheus_text.h"
#include "support/server_process.h"

namespace epoll_echo::test {
namespace {

using std::chrono::seconds;

constexpr seconds kStartTimeout{15};
constexpr seconds kIoTimeout{15};
constexpr seconds kStopTimeout{15};
// The server drops a client that has not sent a whole request within 5 s; this bounds the wait
// for that with room for sanitizer builds on two loaded cores.
constexpr seconds kDropTimeout{60};
constexpr std::size_t kServerConnectionCap = 16;  // MetricsServer::kMaxConnections
constexpr const char* kMetricsLine = "epoll-server: metrics on http://127.0.0.1:";
constexpr const char* kReloaded = "epoll-server: reloaded: build ";

// Every counter of EPOLL_ECHO_COUNTER_TABLE (`active`, a gauge, aside), as the endpoint names them.
std::vector<std::string> counterNames() {
  std::vector<std::string> names;
#define EPOLL_ECHO_TEST_COUNTER(field, kind, minor) \
  if (EPOLL_ECHO_METRIC_##kind == EPOLL_ECHO_METRIC_COUNTER) names.push_back(#field);
  EPOLL_ECHO_COUNTER_TABLE(EPOLL_ECHO_TEST_COUNTER)
#undef EPOLL_ECHO_TEST_COUNTER
  return names;
}
const std::vector<std::string> kCounters = counterNames();

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;

  std::string header(const std::string& name) const {
    const auto found = headers.find(name);
    return found == headers.end() ? "" : found->second;
  }
};

std::string lowerCase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

// Everything the peer sends until it closes; false on error or at the deadline.
bool receiveUntilEof(int fd, std::string& received, Deadline deadline) {
  char buffer[16384];
  for (;;) {
    pollfd wanted{fd, POLLIN, 0};
    const int ready = ::poll(&wanted, 1, millisecondsLeft(deadline));
    if (ready <= 0) return false;
    const ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
    if (got == 0) return true;
    if (got < 0) return false;
    received.append(buffer, static_cast<std::size_t>(got));
  }
}

// Parses "HTTP/1.1 200 OK\r\nName: value\r\n...\r\n\r\nbody"; status 0 if malformed.
HttpResponse parseResponse(const std::string& raw) {
  HttpResponse response;
  const std::size_t headerEnd = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || headerEnd == std::string::npos) return response;
  response.status = std::atoi(raw.c_str() + 9);
  std::size_t lineStart = raw.find("\r\n") + 2;
  while (lineStart < headerEnd) {
    const std::size_t lineEnd = raw.find("\r\n", lineStart);
    const std::string line = raw.substr(lineStart, lineEnd - lineStart);
    const std::size_t colon = line.find(':');
    if (colon != std::string::npos) {
      response.headers[lowerCase(line.substr(0, colon))] = line.substr(line.find_first_not_of(' ', colon + 1));
    }
    lineStart = lineEnd + 2;
  }
  response.body = raw.substr(headerEnd + 4);
  return response;
}

// Sends `request` as is and reads the answer until the server closes.
HttpResponse sendRequest(uint16_t port, const std::string& request) {
  std::string error;
  UniqueFd socket = connectLoopback(port, deadlineIn(kIoTimeout), &error);
  EXPECT_TRUE(socket) << error;
  if (!socket) return {};
  EXPECT_TRUE(sendAll(socket.get(), request, deadlineIn(kIoTimeout), &error)) << error;
  std::string raw;
  EXPECT_TRUE(receiveUntilEof(socket.get(), raw, deadlineIn(kIoTimeout)))
      << "no complete answer to " << request.substr(0, 40);
  return parseResponse(raw);
}

HttpResponse request(uint16_t port, const std::string& method, const std::string& target) {
  return sendRequest(port, method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
}

// A scrape parsed whole; fails the test (and returns an empty text) if anything is off.
PrometheusText scrape(uint16_t port) {
  const HttpResponse response = request(port, "GET", "/metrics");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  std::string error;
  std::optional<PrometheusText> text = parsePrometheusText(response.body, &error);
  EXPECT_TRUE(text) << error << "\n" << response.body;
  return text.value_or(PrometheusText{});
}

double valueOf(const PrometheusText& text, const std::string& name, const Labels& labels = {}) {
  const std::optional<double> value = text.value(name, labels);
  EXPECT_TRUE(value) << name << " missing";
  return value.value_or(-1);
}

// "" when every counter and the active gauge equal the sum of their worker series.
std::string workerSumMismatch(const PrometheusText& text) {
  std::vector<std::string> families;
  for (const std::string& counter : kCounters) families.push_back(counter + "_total");
  families.push_back("active_connections");
  for (const std::string& family : families) {
    double sum = 0;
    for (const PrometheusSample& sample : text.samplesOf("epoll_echo_worker_" + family)) sum += sample.value;
    const std::optional<double> total = text.value("epoll_echo_" + family);
    if (!total || *total != sum)
      return family + ": total " + std::to_string(total.value_or(-1)) + ", workers " + std::to_string(sum);
  }
  return "";
}

// "" when no counter of `later` is below `earlier`'s.
std::string counterWentBack(const PrometheusText& earlier, const PrometheusText& later) {
  for (const PrometheusSample& sample : earlier.samples) {
    if (earlier.families.at(sample.name).type != "counter") continue;
    const std::optional<double> now = later.value(sample.name, sample.labels);
    if (!now || *now < sample.value) {
      return sample.name + " went from " + std::to_string(sample.value) + " to " + std::to_string(now.value_or(-1));
    }
  }
  return "";
}

class HostMetricsTest : public ::testing::Test {
 protected:
  void startServer(std::vector<std::string> extra = {}) {
    std::vector<std::string> arguments = {"--bind",         "127.0.0.1", "--port",           "0",
                                          "--maxListeners", "2",         "--metrics-listen", "127.0.0.1:0"};
    arguments.insert(arguments.end(), extra.begin(), extra.end());
    server_.emplace(EPOLL_ECHO_SERVER_PATH, arguments);
    const auto started = [&] {
      const std::optional<StartLine> line = parseStartLine(server_->capturedStderr());
      port_ = line ? line->port : 0;
      return port_ != 0;
    };
    ASSERT_TRUE(server_->waitUntil(started, deadlineIn(kStartTimeout))) << server_->capturedStderr();
    const std::string& log = server_->capturedStderr();
    const std::size_t at = log.find(kMetricsLine);
    ASSERT_NE(at, std::string::npos) << log;
    metricsPort_ = static_cast<uint16_t>(std::atoi(log.c_str() + at + std::strlen(kMetricsLine)));
    ASSERT_NE(metricsPort_, 0) << log;
    ASSERT_EQ(log.compare(log.find('/', at + std::strlen(kMetricsLine)), 9, "/metrics\n"), 0) << log;
  }

  // Every test ends with a clean stop: the metrics thread joined whatever its clients do, exit 0,
  // and nothing from a sanitizer (a leak report comes at exit).
  void TearDown() override {
    if (!server_ || HasFatalFailure()) return;
    ASSERT_TRUE(server_->sendSignal(SIGTERM));
    const std::optional<ExitStatus> status = server_->waitForExit(deadlineIn(kStopTimeout));
    ASSERT_TRUE(status) << "no exit after SIGTERM; stderr:\n" << server_->capturedStderr();
    EXPECT_TRUE(status->succeeded()) << status->describe() << "\n" << server_->capturedStderr();
    EXPECT_EQ(server_->capturedStderr().find("Sanitizer"), std::string::npos) << server_->capturedStderr();
  }

  // Scrapes until `wanted` holds (the workers count just after they send, so a scrape may
  // predate the last echo). Bounded in tries and time.
  std::optional<PrometheusText> scrapeUntil(const std::function<bool(const PrometheusText&)>& wanted) {
    const Deadline deadline = deadlineIn(kIoTimeout);
    for (int attempt = 0; attempt < 10000 && Clock::now() < deadline; ++attempt) {
      PrometheusText text = scrape(metricsPort_);
      if (::testing::Test::HasFailure()) return std::nullopt;
      if (wanted(text)) return text;
    }
    return std::nullopt;
  }

  std::optional<ChildProcess> server_;
  uint16_t port_ = 0;
  uint16_t metricsPort_ = 0;
};

TEST_F(HostMetricsTest, ServesEveryCounterAsPrometheusText) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  const PrometheusText text = scrape(metricsPort_);
  ASSERT_FALSE(HasFailure());
  for (const std::string& counter : kCounters) {
    EXPECT_GE(valueOf(text, "epoll_echo_" + counter + "_total"), 0) << counter;
    EXPECT_EQ(text.families.at("epoll_echo_" + counter + "_total").type, "counter");
    EXPECT_GE(valueOf(text, "epoll_echo_worker_" + counter + "_total", {{"worker", "0"}}), 0) << counter;
    EXPECT_GE(valueOf(text, "epoll_echo_worker_" + counter + "_total", {{"worker", "1"}}), 0) << counter;
    EXPECT_EQ(text.samplesOf("epoll_echo_worker_" + counter + "_total").size(), 2u) << counter;
  }
  EXPECT_EQ(workerSumMismatch(text), "");
  EXPECT_EQ(valueOf(text, "epoll_echo_accepted_total"), 0);
  EXPECT_EQ(valueOf(text, "epoll_echo_bytes_in_total"), 0);
  EXPECT_EQ(text.families.at("epoll_echo_active_connections").type, "gauge");
  EXPECT_EQ(valueOf(text, "epoll_echo_active_connections"), 0);
  EXPECT_EQ(valueOf(text, "epoll_echo_state", {{"state", "running"}}), 1);
  EXPECT_EQ(valueOf(text, "epoll_echo_state", {{"state", "stopped"}}), 0);
  EXPECT_EQ(valueOf(text, "epoll_echo_listeners"), 2);
  EXPECT_EQ(valueOf(text, "epoll_echo_reloads_total"), 0);
  const std::vector<PrometheusSample> info = text.samplesOf("epoll_echo_build_info");
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].value, 1);
  const std::string& log = server_->capturedStderr();
  EXPECT_NE(log.find("build id " + info[0].labels.at("build_id") + ")"), std::string::npos) << log;
  EXPECT_EQ(info[0].labels.at("abi_version"),
            std::to_string(EPOLL_ECHO_ABI_MAJOR) + "." + std::to_string(EPOLL_ECHO_ABI_MINOR));
}

TEST_F(HostMetricsTest, CountersMoveAfterEchoTrafficAndWorkersSumToTotals) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  constexpr std::size_t kClients = 8;
  constexpr std::size_t kBytes = 64 * 1024;
  {
    std::string error;
    std::vector<EchoJob> jobs = makeEchoJobs(port_, kClients, kBytes, true, 11, deadlineIn(kIoTimeout), &error);
    ASSERT_EQ(jobs.size(), kClients) << error;
    ASSERT_EQ(runEchoJobs(jobs, deadlineIn(seconds(60))), "");
  }  // the clients close
  const auto moved = [&](const PrometheusText& text) {
    EXPECT_EQ(workerSumMismatch(text), "");
    return text.value("epoll_echo_accepted_total") == kClients && text.value("epoll_echo_closed_total") == kClients &&
           text.value("epoll_echo_bytes_in_total") == kClients * kBytes &&
           text.value("epoll_echo_bytes_out_total") == kClients * kBytes &&
           text.value("epoll_echo_active_connections") == 0;
  };
  const std::optional<PrometheusText> text = scrapeUntil(moved);
  ASSERT_TRUE(text) << "counters did not reach the traffic's totals";
  EXPECT_GT(valueOf(*text, "epoll_echo_syscalls_total"), 0);
  EXPECT_GT(valueOf(*text, "epoll_echo_wakeups_total"), 0);
}

TEST_F(HostMetricsTest, AnswersOtherPathsWith404AndOtherMethodsWith405) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  EXPECT_EQ(request(metricsPort_, "GET", "/").status, 404);
  EXPECT_EQ(request(metricsPort_, "GET", "/metrics/more").status, 404);
  EXPECT_EQ(request(metricsPort_, "GET", "/metricsx").status, 404);
  EXPECT_EQ(request(metricsPort_, "GET", "/metrics?name=value").status, 200);
  for (const char* method : {"POST", "PUT", "DELETE"}) {
    const HttpResponse response = request(metricsPort_, method, "/metrics");
    EXPECT_EQ(response.status, 405) << method;
    EXPECT_EQ(response.header("allow"), "GET, HEAD") << method;
  }
  const HttpResponse head = request(metricsPort_, "HEAD", "/metrics");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");
  EXPECT_GT(std::atoi(head.header("content-length").c_str()), 0);
}

TEST_F(HostMetricsTest, KeepsAScrapeConnectionOpenForTheNextRequest) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  std::string error;
  UniqueFd socket = connectLoopback(metricsPort_, deadlineIn(kIoTimeout), &error);
  ASSERT_TRUE(socket) << error;
  const std::string keepAlive = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  const std::string close = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  ASSERT_TRUE(sendAll(socket.get(), keepAlive + close, deadlineIn(kIoTimeout), &error)) << error;
  std::string raw;
  ASSERT_TRUE(receiveUntilEof(socket.get(), raw, deadlineIn(kIoTimeout)));
  EXPECT_EQ(countOccurrences(raw, "HTTP/1.1 200 OK\r\n"), 2u) << raw;
}

// A client that sends half a request and stops, one that sends garbage, one whose headers
// never end: each gets its own answer or is dropped, while echo clients and scrapes go on.
TEST_F(HostMetricsTest, SlowHalfSentAndMalformedClientsStallNeitherEchoNorScrapes) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  PingPongLoad load(port_, 4);
  std::string error;
  UniqueFd slow = connectLoopback(metricsPort_, deadlineIn(kIoTimeout), &error);
  ASSERT_TRUE(slow) << error;
  ASSERT_TRUE(sendAll(slow.get(), "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n", deadlineIn(kIoTimeout), &error));

  EXPECT_EQ(sendRequest(metricsPort_, "NOT HTTP AT ALL\r\n\r\n").status, 400);
  EXPECT_EQ(sendRequest(metricsPort_, "GET /metrics HTTP/1.1\r\nContent-Length: x\r\n\r\n").status, 400);
  const std::string endless = "GET /metrics HTTP/1.1\r\nX-Padding: " + std::string(64 * 1024, 'a') + "\r\n\r\n";
  EXPECT_EQ(sendRequest(metricsPort_, endless).status, 431);

  EXPECT_TRUE(load.waitForProgress(200, deadlineIn(kIoTimeout))) << load.error();
  EXPECT_GT(valueOf(scrape(metricsPort_), "epoll_echo_bytes_out_total"), 0);
  // The half-sent request is dropped at its deadline, without an answer.
  std::size_t answered = 0;
  const PeerClose closed = waitForClose(slow.get(), deadlineIn(kDropTimeout), true, &answered);
  EXPECT_TRUE(closed == PeerClose::Eof || closed == PeerClose::Reset) << toString(closed);
  EXPECT_EQ(answered, 0u);
  EXPECT_TRUE(load.waitForProgress(100, deadlineIn(kIoTimeout))) << load.error();
  load.stop();
  EXPECT_EQ(load.error(), "");
}

// More idle clients than the cap: the server holds at most the cap open (the rest wait in the
// kernel's queue), and a scrape behind them is served once the deadline drops them.
TEST_F(HostMetricsTest, IdleClientsBeyondTheCapWaitAndCannotLockOutAScrape) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  const std::string fdDirectory = "/proc/" + std::to_string(server_->pid()) + "/fd";
  const int before = countDirectoryEntries(fdDirectory);
  ASSERT_GT(before, 0);
  std::vector<UniqueFd> idle;
  for (std::size_t i = 0; i < kServerConnectionCap + 8; ++i) {
    std::string error;
    idle.push_back(connectLoopback(metricsPort_, deadlineIn(kIoTimeout), &error));
    ASSERT_TRUE(idle.back()) << error;
  }
  const HttpResponse response = request(metricsPort_, "GET", "/metrics");
  EXPECT_EQ(response.status, 200);
  const int during = countDirectoryEntries(fdDirectory);
  EXPECT_LE(during, before + static_cast<int>(kServerConnectionCap)) << "the server holds more than the cap";
}

TEST_F(HostMetricsTest, CountersNeverGoBackAcrossReloads) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  PingPongLoad load(port_, 4);
  ASSERT_TRUE(load.waitForProgress(100, deadlineIn(kIoTimeout))) << load.error();
  // A second scraper runs through every reload: each of its scrapes parses and no counter falls.
  std::atomic<bool> stopScraping{false};
  std::mutex failureMutex;
  std::string scraperFailure;
  std::thread scraper([&] {
    PrometheusText previous = scrape(metricsPort_);
    for (int i = 0; i < 100000 && !stopScraping; ++i) {
      PrometheusText next = scrape(metricsPort_);
      const std::string problem = counterWentBack(previous, next);
      if (!problem.empty() || next.samples.empty()) {
        const std::lock_guard<std::mutex> lock(failureMutex);
        scraperFailure = problem.empty() ? "an empty scrape" : problem;
        return;
      }
      previous = std::move(next);
    }
  });
  for (int reload = 1; reload <= 3; ++reload) {
    const PrometheusText before = scrape(metricsPort_);
    ASSERT_TRUE(server_->sendSignal(SIGHUP));
    const auto reloaded = [&] { return countOccurrences(server_->capturedStderr(), kReloaded) >= std::size_t(reload); };
    ASSERT_TRUE(server_->waitUntil(reloaded, deadlineIn(kIoTimeout))) << server_->capturedStderr();
    ASSERT_TRUE(load.waitForProgress(100, deadlineIn(kIoTimeout))) << load.error();
    const PrometheusText after = scrape(metricsPort_);
    EXPECT_EQ(counterWentBack(before, after), "") << "reload " << reload;
    EXPECT_EQ(workerSumMismatch(after), "") << "reload " << reload;
    EXPECT_EQ(valueOf(after, "epoll_echo_reloads_total"), reload);
    EXPECT_EQ(valueOf(after, "epoll_echo_active_connections"), 4);
    EXPECT_GT(valueOf(after, "epoll_echo_adopted_total"), valueOf(before, "epoll_echo_adopted_total"));
  }
  stopScraping = true;
  scraper.join();
  EXPECT_EQ(scraperFailure, "");
  load.stop();
  EXPECT_EQ(load.error(), "");
}

// A stop does not wait for scrape clients: a half-sent request and an idle keep-alive connection
// are closed, and the server exits 0 (TearDown) with both still open on the client side.
TEST_F(HostMetricsTest, StopClosesOpenScrapeConnections) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  std::string error;
  UniqueFd halfSent = connectLoopback(metricsPort_, deadlineIn(kIoTimeout), &error);
  ASSERT_TRUE(halfSent) << error;
  ASSERT_TRUE(sendAll(halfSent.get(), "GET /met", deadlineIn(kIoTimeout), &error)) << error;
  UniqueFd keptAlive = connectLoopback(metricsPort_, deadlineIn(kIoTimeout), &error);
  ASSERT_TRUE(keptAlive) << error;
  ASSERT_TRUE(
      sendAll(keptAlive.get(), "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", deadlineIn(kIoTimeout), &error));
  char first[16] = {};
  ASSERT_TRUE(receiveExactly(keptAlive.get(), first, 15, deadlineIn(kIoTimeout), &error)) << error;
  EXPECT_STREQ(first, "HTTP/1.1 200 OK");
  ASSERT_TRUE(server_->sendSignal(SIGTERM));
  const std::optional<ExitStatus> status = server_->waitForExit(deadlineIn(kStopTimeout));
  ASSERT_TRUE(status) << server_->capturedStderr();
  EXPECT_TRUE(status->succeeded()) << status->describe() << "\n" << server_->capturedStderr();
  EXPECT_EQ(server_->capturedStderr().find("Sanitizer"), std::string::npos) << server_->capturedStderr();
  server_.reset();
}

TEST(HostMetricsFlagTest, RefusesBadAddressesInOneLine) {
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "::1:9100", "localhost:9100", "[::1]9100",
                          ":9100", "127.0.0.1:-1", "[fe80::1%lo]:9100"}) {
    const Completed run =
        runToCompletion(EPOLL_ECHO_SERVER_PATH, {"--port", "0", "--metrics-listen", bad}, deadlineIn(kStartTimeout));
    ASSERT_TRUE(run.status) << bad;
    EXPECT_EQ(run.status->describe(), "exit code 2") << bad;
    EXPECT_EQ(countOccurrences(run.err, "\n"), 1u) << run.err;
    EXPECT_NE(run.err.find("--metrics-listen"), std::string::npos) << run.err;
  }
}

TEST(HostMetricsFlagTest, ATakenMetricsPortFailsTheStart) {
  std::string error;
  UniqueFd taken = listenTcp("127.0.0.1", 0, 16, &error);
  ASSERT_TRUE(taken) << error;
  const std::string address = "127.0.0.1:" + std::to_string(localPort(taken.get()));
  const Completed run =
      runToCompletion(EPOLL_ECHO_SERVER_PATH, {"--bind", "127.0.0.1", "--port", "0", "--metrics-listen", address},
                      deadlineIn(kStartTimeout));
  ASSERT_TRUE(run.status);
  EXPECT_EQ(run.status->describe(), "exit code 1") << run.err;
  EXPECT_NE(run.err.find("metrics endpoint " + address + ": bind: Address already in use"), std::string::npos)
      << run.err;
  EXPECT_EQ(run.err.find("listening on"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace epoll_echo::test
