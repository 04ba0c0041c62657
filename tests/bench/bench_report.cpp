// bench_report.cpp — derived figures (rates, per-CPU-second efficiency, user share) and their two
// renderings. Latencies are in microseconds, CPU in seconds, RSS in KiB (idle mode: bytes per
// connection).
#include "bench_report.h"

#include <cstdio>
#include <string>

namespace epoll_echo::bench {
namespace {

struct Derived {
  double messagesPerSecond = 0;
  double megabytesPerSecond = 0;  // echoed payload, one direction, 10^6 bytes
  double serverCpuSeconds = 0;    // schedstat run time when available, else utime + stime
  double serverUserShare = 0;
  double messagesPerServerCpuSecond = 0;
  double clientCpuSeconds = 0;
  double idleBytesPerConnection = 0;  // idle mode: (RSS after - RSS before) / connections held
};

Derived derive(const BenchOptions& options, const BenchReport& report) {
  Derived d;
  if (report.windowSeconds > 0) {
    d.messagesPerSecond = static_cast<double>(report.messages) / report.windowSeconds;
    d.megabytesPerSecond = d.messagesPerSecond * options.messageSize / 1e6;
  }
  if (report.serverBefore.valid && report.serverAfter.valid) {
    const double user = report.serverAfter.userSeconds - report.serverBefore.userSeconds;
    const double system = report.serverAfter.systemSeconds - report.serverBefore.systemSeconds;
    d.serverCpuSeconds = user + system;
    if (d.serverCpuSeconds > 0) d.serverUserShare = user / d.serverCpuSeconds;
    // The exact run time when schedstat has it; utime + stime only count 10 ms ticks.
    const double run = report.serverAfter.runSeconds - report.serverBefore.runSeconds;
    if (run > 0) d.serverCpuSeconds = run;
    if (d.serverCpuSeconds > 0) {
      d.messagesPerServerCpuSecond = static_cast<double>(report.messages) / d.serverCpuSeconds;
    }
  }
  if (report.clientBefore.valid && report.clientAfter.valid) {
    d.clientCpuSeconds = report.clientAfter.userSeconds + report.clientAfter.systemSeconds -
                         report.clientBefore.userSeconds - report.clientBefore.systemSeconds;
  }
  if (report.idleConnections > 0 && report.serverBefore.valid && report.serverAfter.valid) {
    const double grownKib =
        static_cast<double>(report.serverAfter.rssKib) - static_cast<double>(report.serverBefore.rssKib);
    d.idleBytesPerConnection = grownKib * 1024.0 / static_cast<double>(report.idleConnections);
  }
  return d;
}

std::string formatSpread(double percent) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f ", percent);
  return text;
}

// JSON has no infinity: a starved connection's spread is null.
std::string spreadJson(const Fairness& fairness) {
  if (fairness.starved) return "null";
  char text[32];
  std::snprintf(text, sizeof text, "%.4f", fairness.spreadPercent);
  return text;
}

double micros(uint64_t nanoseconds) { return static_cast<double>(nanoseconds) / 1000.0; }

const char* modeName(Mode mode) {
  switch (mode) {
    case Mode::Echo:
      return "echo";
    case Mode::ConnectRate:
      return "connect";
    case Mode::Idle:
      return "idle";
  }
  return "?";
}

void printIdleTable(const BenchOptions& options, const BenchReport& report, const Derived& d) {
  std::printf("mode idle, %u connections, %u B message each, opened and echoed in %.2f s\n", options.connections,
              options.messageSize, report.windowSeconds);
  std::printf("  held idle         %llu connections\n", static_cast<unsigned long long>(report.idleConnections));
  std::printf("  server RSS        %llu -> %llu KiB (%s after %.2f s)\n",
              static_cast<unsigned long long>(report.serverBefore.rssKib),
              static_cast<unsigned long long>(report.serverAfter.rssKib), report.rssStable ? "stable" : "NOT stable",
              report.rssSettleSeconds);
  std::printf("  bytes per idle connection %8.1f\n", d.idleBytesPerConnection);
  std::printf("  server CPU        %.2f s\n", d.serverCpuSeconds);
  std::printf("  verified bytes    %llu, mismatches %llu, connection errors %llu%s%s\n",
              static_cast<unsigned long long>(report.bytesVerified), static_cast<unsigned long long>(report.mismatches),
              static_cast<unsigned long long>(report.errors),
              report.firstError.empty() ? "" : " — first: ", report.firstError.c_str());
}

}  // namespace

void printTable(const BenchOptions& options, const BenchReport& report) {
  const Derived d = derive(options, report);
  if (options.mode == Mode::Idle) {
    printIdleTable(options, report, d);
    return;
  }
  const LatencyHistogram& h = report.latency;
  std::printf("mode %s, %u connections, %u B messages, depth %u, %u threads, %.1f s window\n", modeName(options.mode),
              options.connections, options.messageSize, options.depth, options.threads, report.windowSeconds);
  std::printf("  messages/s        %12.0f\n", d.messagesPerSecond);
  if (options.rate > 0) {
    std::printf("  open loop         %.0f messages/s asked, %llu sends due in the window, %llu behind schedule\n",
                options.rate, static_cast<unsigned long long>(report.scheduledSends),
                static_cast<unsigned long long>(report.lateSends));
    std::printf("  generator's delay intended time -> send(): p99 %.1f us, max %.1f us\n",
                micros(report.sendLag.percentile(0.99)), micros(report.sendLag.max()));
    std::printf("  (latency below counts from each message's intended send time)\n");
  }
  std::printf("  MB/s (payload)    %12.2f\n", d.megabytesPerSecond);
  std::printf("  latency us        p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", micros(h.percentile(0.5)),
              micros(h.percentile(0.9)), micros(h.percentile(0.99)), micros(h.percentile(0.999)), micros(h.max()));
  if (options.mode == Mode::Echo) {
    const Fairness& f = report.fairness;
    std::printf("  per connection    least %llu  busiest %llu round trips, spread %s%%, Jain's index %.5f\n",
                static_cast<unsigned long long>(f.least), static_cast<unsigned long long>(f.busiest),
                f.starved ? "inf " : formatSpread(f.spreadPercent).c_str(), f.jainIndex);
  }
  if (options.serverPid != 0) {
    std::printf("  server CPU        %.2f s (user share %.0f %%), %.0f messages per CPU-second\n", d.serverCpuSeconds,
                100 * d.serverUserShare, d.messagesPerServerCpuSecond);
    std::printf("  server RSS        %llu -> %llu KiB\n", static_cast<unsigned long long>(report.serverBefore.rssKib),
                static_cast<unsigned long long>(report.serverAfter.rssKib));
  }
  std::printf("  client CPU        %.2f s\n", d.clientCpuSeconds);
  std::printf("  verified bytes    %llu, mismatches %llu, connection errors %llu%s%s\n",
              static_cast<unsigned long long>(report.bytesVerified), static_cast<unsigned long long>(report.mismatches),
              static_cast<unsigned long long>(report.errors),
              report.firstError.empty() ? "" : " — first: ", report.firstError.c_str());
}

void printJson(const BenchOptions& options, const BenchReport& report) {
  const Derived d = derive(options, report);
  const LatencyHistogram& h = report.latency;
  std::printf(
      "{\"label\":\"%s\",\"mode\":\"%s\",\"connections\":%u,\"size\":%u,\"depth\":%u,\"threads\":%u,"
      "\"window_s\":%.3f,\"messages\":%llu,\"messages_per_s\":%.1f,\"mb_per_s\":%.3f,"
      "\"p50_us\":%.2f,\"p90_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.2f,"
      "\"min_per_connection\":%llu,\"max_per_connection\":%llu,\"spread_pct\":%s,\"jain_index\":%.6f,"
      "\"server_cpu_s\":%.3f,\"server_user_share\":%.4f,\"messages_per_server_cpu_s\":%.1f,"
      "\"server_rss_kib\":%llu,\"client_cpu_s\":%.3f,"
      "\"bytes_verified\":%llu,\"mismatches\":%llu,\"errors\":%llu,"
      "\"rate\":%.1f,\"scheduled_sends\":%llu,\"late_sends\":%llu,\"oldest_unanswered_us\":%.2f",
      options.label.c_str(), modeName(options.mode), options.connections, options.messageSize, options.depth,
      options.threads, report.windowSeconds, static_cast<unsigned long long>(report.messages), d.messagesPerSecond,
      d.megabytesPerSecond, micros(h.percentile(0.5)), micros(h.percentile(0.9)), micros(h.percentile(0.99)),
      micros(h.percentile(0.999)), micros(h.max()), static_cast<unsigned long long>(report.fairness.least),
      static_cast<unsigned long long>(report.fairness.busiest), spreadJson(report.fairness).c_str(),
      report.fairness.jainIndex, d.serverCpuSeconds, d.serverUserShare, d.messagesPerServerCpuSecond,
      static_cast<unsigned long long>(report.serverAfter.rssKib), d.clientCpuSeconds,
      static_cast<unsigned long long>(report.bytesVerified), static_cast<unsigned long long>(report.mismatches),
      static_cast<unsigned long long>(report.errors), options.rate,
      static_cast<unsigned long long>(report.scheduledSends), static_cast<unsigned long long>(report.lateSends),
      static_cast<double>(report.oldestUnanswered) / 1000.0);
  // Only idle lines carry it, so the lines of the other modes stay as they were.
  if (options.mode == Mode::Idle) std::printf(",\"idle_bytes_per_connection\":%.1f", d.idleBytesPerConnection);
  if (options.rate > 0)
    std::printf(",\"send_lag_p99_us\":%.2f,\"send_lag_max_us\":%.2f", micros(report.sendLag.percentile(0.99)),
                micros(report.sendLag.max()));
  std::printf("}\n");
}

}  // namespace epoll_echo::bench
