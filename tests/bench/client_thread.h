// client_thread.h — one load-generating thread: its own epoll instance (edge-triggered,
// non-blocking sockets), its own connections, its own results; nothing is shared while it runs.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench_options.h"
#include "echo_pattern.h"
#include "latency_histogram.h"
#include "open_loop_schedule.h"

namespace epoll_echo::bench {

using Nanoseconds = int64_t;
Nanoseconds nowNanoseconds();

// Start of the open-loop schedule (the run), of measurement and end of the run, on the steady clock.
struct Timeline {
  Nanoseconds runStart = 0;
  Nanoseconds measureStart = 0;
  Nanoseconds measureEnd = 0;
};

// What one thread measured inside the window (messages completed in it, their latency).
struct ThreadResult {
  LatencyHistogram latency;
  uint64_t messages = 0;
  uint64_t bytesVerified = 0;                   // every byte received, window or not
  uint64_t mismatches = 0;                      // connections that received a wrong byte
  uint64_t errors = 0;                          // connections lost or refused
  std::vector<uint64_t> messagesPerConnection;  // echo mode only
  uint64_t scheduledSends = 0;                  // open loop: sends due inside the window
  uint64_t lateSends = 0;                       // of those, due while --depth were still in flight (or never sent)
  // Open loop: the generator's own delay, from a send's intended time to its send() (sends not
  // held back by --depth, inside the window). Small against the latency, or the figures are the generator's.
  LatencyHistogram sendLag;
  std::string firstError;
  // --timeline: the longest round trip (us) completed in each millisecond since the run started.
  std::vector<uint32_t> slowestPerMillisecond;
  // Echo mode: the age at the end of the run of the oldest message still unanswered; a byte the
  // server lost shows here (its message is never answered), as a reset shows in `errors`.
  Nanoseconds oldestUnanswered = 0;
};

// Owns its sockets (closes them when run() ends) and its epoll fd. Use from one thread.
class ClientThread {
 public:
  ClientThread(const BenchOptions& options, const EchoPattern& pattern, const Timeline& timeline);
  ~ClientThread();
  ClientThread(const ClientThread&) = delete;
  ClientThread& operator=(const ClientThread&) = delete;

  // Echo mode: takes a connected non-blocking socket; `stream` selects its byte pattern.
  void addConnection(int fd, uint64_t stream);
  // Connect mode: `slots` attempts in flight; stream ids are first, first + step, ...
  void setConnectSlots(uint32_t slots, uint64_t firstStream, uint64_t streamStep);
  void run();
  ThreadResult& result() { return result_; }

 private:
  struct Connection;
  void runEcho();
  void runOpenLoop();
  void advanceSchedule(Nanoseconds now);
  void issueDue(Connection& connection);
  void countSchedule(const Connection& connection);
  void runConnectRate();
  void issue(Connection& connection, Nanoseconds now);
  bool trySend(Connection& connection);
  bool sendIssued(Connection& connection);
  bool onReadable(Connection& connection);
  void complete(Connection& connection, Nanoseconds now);
  void recordTimeline(Nanoseconds completed, Nanoseconds roundTrip);
  void recordUnanswered(Nanoseconds end);
  void startAttempt(Connection& slot);
  void finishAttempt(Connection& slot, Nanoseconds now);
  void fail(Connection& connection, const std::string& why, bool mismatch);
  int waitMs(Nanoseconds now) const;
  bool inWindow(Nanoseconds now) const { return now >= timeline_.measureStart && now < timeline_.measureEnd; }

  const BenchOptions& options_;
  const EchoPattern& pattern_;
  const Timeline& timeline_;
  int epoll_ = -1;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<char> readBuffer_;
  std::vector<Connection*> sendQueue_;  // echo mode: read every ready connection first, then send
  uint64_t nextStream_ = 0;
  uint64_t streamStep_ = 1;
  std::optional<OpenLoopSchedule> schedule_;  // open loop only
  uint64_t nextSlot_ = 0;                     // open loop: the schedule's first slot not yet passed
  std::vector<Connection*> byStream_;         // open loop: this thread's connections by stream id, else null
  ThreadResult result_;
};

}  // namespace epoll_echo::bench
