// load_generator.cpp — epoll-echo-bench: drives an echo server on loopback with N connections
// (or a connect/echo/close loop), verifies every byte, and reports rates, latency percentiles,
// fairness and the server's CPU and memory over a fixed window after a warm-up; or (idle mode) the
// server's memory per open, idle connection.
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "bench_options.h"
#include "bench_report.h"
#include "client_thread.h"
#include "echo_pattern.h"
#include "idle_connections.h"
#include "socket_util.h"

namespace epoll_echo::bench {
namespace {

void sleepUntil(Nanoseconds deadline) {
  const Nanoseconds left = deadline - nowNanoseconds();
  if (left > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(left));
}

// Echo mode: every connection is established (blocking connect) before the clock starts.
void connectAll(const BenchOptions& options, std::vector<std::unique_ptr<ClientThread>>& threads) {
  for (uint32_t i = 0; i < options.connections; ++i) {
    std::string error;
    const int fd = openSocket(options.host, options.port, /*blocking=*/true, error);
    if (fd < 0) throw std::runtime_error(error + " (connection " + std::to_string(i) + ")");
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    threads[i % threads.size()]->addConnection(fd, i);
  }
}

BenchReport collect(std::vector<std::unique_ptr<ClientThread>>& threads) {
  BenchReport report;
  std::vector<uint64_t> perConnection;
  for (auto& thread : threads) {
    ThreadResult& result = thread->result();
    report.latency.merge(result.latency);
    report.sendLag.merge(result.sendLag);
    report.messages += result.messages;
    report.bytesVerified += result.bytesVerified;
    report.mismatches += result.mismatches;
    report.errors += result.errors;
    report.scheduledSends += result.scheduledSends;
    report.lateSends += result.lateSends;
    report.oldestUnanswered = std::max(report.oldestUnanswered, result.oldestUnanswered);
    if (report.firstError.empty()) report.firstError = result.firstError;
    perConnection.insert(perConnection.end(), result.messagesPerConnection.begin(), result.messagesPerConnection.end());
  }
  report.fairness = computeFairness(perConnection);
  return report;
}

Nanoseconds realtimeNanoseconds() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<Nanoseconds>(now.tv_sec) * 1000000000 + now.tv_nsec;
}

// --timeline: every thread's slowest round trip per millisecond merged, on the wall clock so a
// script can line it up with what it did meanwhile.
void writeTimeline(const std::string& path, Nanoseconds runStartRealtime,
                   const std::vector<std::unique_ptr<ClientThread>>& threads) {
  std::vector<uint32_t> slowest;
  for (const auto& thread : threads) {
    const std::vector<uint32_t>& own = thread->result().slowestPerMillisecond;
    if (slowest.size() < own.size()) slowest.resize(own.size(), 0);
    for (std::size_t index = 0; index < own.size(); ++index) slowest[index] = std::max(slowest[index], own[index]);
  }
  std::FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
  const long long startMs = runStartRealtime / 1'000'000;
  for (std::size_t index = 0; index < slowest.size(); ++index) {
    if (slowest[index] != 0) std::fprintf(file, "%lld %u\n", startMs + static_cast<long long>(index), slowest[index]);
  }
  if (std::fclose(file) != 0) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
}

bool reportAndCheck(const BenchOptions& options, const BenchReport& report) {
  if (!options.jsonOnly) printTable(options, report);
  printJson(options, report);
  const bool failed = report.mismatches > 0 || report.errors > 0 || report.messages == 0;
  if (failed)
    std::fprintf(stderr, "epoll-echo-bench: FAILED: %s\n",
                 report.firstError.empty() ? "no message echoed" : report.firstError.c_str());
  return !failed;
}

int runBench(const BenchOptions& options) {
  const EchoPattern pattern;
  if (options.mode == Mode::Idle) {
    const BenchReport report = runIdle(options, pattern);
    if (!report.rssStable) std::fprintf(stderr, "epoll-echo-bench: warning: the server's RSS did not settle\n");
    return reportAndCheck(options, report) ? 0 : 1;
  }
  Timeline timeline;
  std::vector<std::unique_ptr<ClientThread>> threads;
  for (uint32_t t = 0; t < options.threads; ++t) {
    threads.push_back(std::make_unique<ClientThread>(options, pattern, timeline));
    if (options.mode == Mode::ConnectRate) {
      const uint32_t slots = options.connections / options.threads + (t < options.connections % options.threads);
      threads.back()->setConnectSlots(slots, t, options.threads);
    }
  }
  if (options.mode == Mode::Echo) connectAll(options, threads);
  const Nanoseconds start = nowNanoseconds();
  const Nanoseconds startRealtime = realtimeNanoseconds();
  timeline.runStart = start;
  timeline.measureStart = start + static_cast<Nanoseconds>(options.warmupSeconds * 1e9);
  timeline.measureEnd = timeline.measureStart + static_cast<Nanoseconds>(options.durationSeconds * 1e9);
  std::vector<std::thread> running;
  for (auto& thread : threads) running.emplace_back([&thread] { thread->run(); });
  BenchReport before;
  sleepUntil(timeline.measureStart);
  if (options.serverPid != 0) before.serverBefore = sampleProcess(options.serverPid);
  before.clientBefore = sampleProcess(::getpid());
  sleepUntil(timeline.measureEnd);
  ProcessSample serverAfter;
  if (options.serverPid != 0) serverAfter = sampleProcess(options.serverPid);
  const ProcessSample clientAfter = sampleProcess(::getpid());
  for (auto& thread : running) thread.join();
  BenchReport report = collect(threads);
  if (!options.timelinePath.empty()) writeTimeline(options.timelinePath, startRealtime, threads);
  report.windowSeconds = static_cast<double>(timeline.measureEnd - timeline.measureStart) / 1e9;
  report.serverBefore = before.serverBefore;
  report.serverAfter = serverAfter;
  report.clientBefore = before.clientBefore;
  report.clientAfter = clientAfter;
  return reportAndCheck(options, report) ? 0 : 1;
}

}  // namespace
}  // namespace epoll_echo::bench

int main(int argc, char** argv) {
  const auto options = epoll_echo::bench::parseOptions(argc, argv);
  try {
    return epoll_echo::bench::runBench(options);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "epoll-echo-bench: %s\n", error.what());
    return 1;
  }
}
