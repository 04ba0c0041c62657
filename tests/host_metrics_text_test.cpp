// host_metrics_text_test.cpp — unit tests of the /metrics body (host/metrics_text.cpp), read back
// with the tests' Prometheus parser, and of that parser's refusals.
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "counter_fields.h"
#include "metrics_text.h"
#include "support/prometheus_text.h"

namespace epoll_echo::host {
namespace {

using test::Labels;
using test::parsePrometheusText;
using test::PrometheusText;

// Two workers whose every counter differs (worker 1 holds ten times worker 0's plus one).
MetricsSnapshot sampleSnapshot() {
  MetricsSnapshot snapshot;
  snapshot.state = EPOLL_ECHO_STATE_RUNNING;
  snapshot.listeners = 2;
  snapshot.workers.resize(2);
  uint64_t next = 1;
  for (const CounterField& field : kCounterFields) {
    snapshot.workers[0].*field.member = next;
    snapshot.workers[1].*field.member = next * 10 + 1;
    ++next;
  }
  snapshot.workers[0].active = 3;
  snapshot.workers[1].active = 4;
  snapshot.uringWorkers.resize(2);
  for (const UringCounterField& field : kUringCounterFields) {
    snapshot.uringWorkers[0].*field.member = next;
    snapshot.uringWorkers[1].*field.member = next * 10 + 1;
    ++next;
  }
  snapshot.reloads = 2;
  snapshot.buildId = "3f2a9c";
  snapshot.pluginVersion = "1.0.0";
  snapshot.abiVersion = EPOLL_ECHO_ABI_PACK(1, 2);
  return snapshot;
}

PrometheusText parsed(const MetricsSnapshot& snapshot) {
  std::string error;
  const std::string text = formatMetrics(snapshot);
  std::optional<PrometheusText> result = parsePrometheusText(text, &error);
  EXPECT_TRUE(result) << error << "\n" << text;
  return result.value_or(PrometheusText{});
}

Labels worker(int index) { return {{"worker", std::to_string(index)}}; }

TEST(HostMetricsTextTest, EveryCounterAsTotalAndPerWorker) {
  const MetricsSnapshot snapshot = sampleSnapshot();
  const PrometheusText text = parsed(snapshot);
  for (const CounterField& field : kCounterFields) {
    if (field.kind != EPOLL_ECHO_METRIC_COUNTER) continue;
    const std::string total = std::string("epoll_echo_") + field.name + "_total";
    const std::string perWorker = std::string("epoll_echo_worker_") + field.name + "_total";
    const double expected = static_cast<double>(snapshot.workers[0].*field.member + snapshot.workers[1].*field.member);
    EXPECT_EQ(text.value(total), expected) << total;
    EXPECT_EQ(text.families.at(total).type, "counter");
    EXPECT_EQ(text.value(perWorker, worker(0)), static_cast<double>(snapshot.workers[0].*field.member)) << perWorker;
    EXPECT_EQ(text.value(perWorker, worker(1)), static_cast<double>(snapshot.workers[1].*field.member)) << perWorker;
    EXPECT_EQ(text.samplesOf(perWorker).size(), 2u);
  }
}

TEST(HostMetricsTextTest, EveryIoUringCounterAsTotalAndPerWorker) {
  const MetricsSnapshot snapshot = sampleSnapshot();
  const PrometheusText text = parsed(snapshot);
  for (const UringCounterField& field : kUringCounterFields) {
    const std::string total = std::string("epoll_echo_") + field.name + "_total";
    const std::string perWorker = std::string("epoll_echo_worker_") + field.name + "_total";
    const auto& workers = snapshot.uringWorkers;
    EXPECT_EQ(text.value(total), static_cast<double>(workers[0].*field.member + workers[1].*field.member)) << total;
    EXPECT_EQ(text.families.at(total).type, "counter");
    EXPECT_EQ(text.value(perWorker, worker(0)), static_cast<double>(workers[0].*field.member)) << perWorker;
    EXPECT_EQ(text.value(perWorker, worker(1)), static_cast<double>(workers[1].*field.member)) << perWorker;
  }
}

TEST(HostMetricsTextTest, ActiveConnectionsAreGauges) {
  const PrometheusText text = parsed(sampleSnapshot());
  EXPECT_EQ(text.families.at("epoll_echo_active_connections").type, "gauge");
  EXPECT_EQ(text.value("epoll_echo_active_connections"), 7);
  EXPECT_EQ(text.value("epoll_echo_worker_active_connections", worker(0)), 3);
  EXPECT_EQ(text.value("epoll_echo_worker_active_connections", worker(1)), 4);
}

TEST(HostMetricsTextTest, StateIsOneForTheCurrentStateOnly) {
  MetricsSnapshot snapshot = sampleSnapshot();
  snapshot.state = EPOLL_ECHO_STATE_PAUSED;
  const PrometheusText text = parsed(snapshot);
  EXPECT_EQ(text.families.at("epoll_echo_state").type, "gauge");
  EXPECT_EQ(text.value("epoll_echo_state", {{"state", "paused"}}), 1);
  for (const char* other : {"created", "running", "stopped"}) {
    EXPECT_EQ(text.value("epoll_echo_state", {{"state", other}}), 0) << other;
  }
}

TEST(HostMetricsTextTest, ReportsReloadsListenersAndTheServingBuild) {
  const PrometheusText text = parsed(sampleSnapshot());
  EXPECT_EQ(text.value("epoll_echo_reloads_total"), 2);
  EXPECT_EQ(text.value("epoll_echo_listeners"), 2);
  EXPECT_EQ(text.value("epoll_echo_build_info", {{"build_id", "3f2a9c"}, {"version", "1.0.0"}, {"abi_version", "1.2"}}),
            1);
}

TEST(HostMetricsTextTest, EscapesLabelValues) {
  MetricsSnapshot snapshot = sampleSnapshot();
  snapshot.buildId = "a\"b\\c\nd";
  const PrometheusText text = parsed(snapshot);
  const auto info = text.samplesOf("epoll_echo_build_info");
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].labels.at("build_id"), "a\"b\\c\nd");
}

TEST(HostMetricsTextTest, NoWorkersStillGivesEveryFamily) {
  MetricsSnapshot snapshot = sampleSnapshot();
  snapshot.workers.clear();
  const PrometheusText text = parsed(snapshot);
  EXPECT_EQ(text.value("epoll_echo_accepted_total"), 0);
  EXPECT_TRUE(text.samplesOf("epoll_echo_worker_accepted_total").empty());
}

// The parser the end-to-end tests rely on must refuse what the format forbids.
TEST(PrometheusTextParserTest, RefusesBrokenExpositions) {
  const char* const broken[] = {
      "x 1\n",                                                                               // no HELP or TYPE
      "# HELP x x.\nx 1\n",                                                                  // no TYPE
      "# HELP x_total x.\n# TYPE x_total counter\nx_total 1",                                // no final newline
      "# HELP x x.\n# TYPE x counter\nx 1\n",                                                // a counter without _total
      "# HELP x x.\n# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n",                           // a series twice
      "# HELP x x.\n# TYPE x gauge\nx{a=1} 1\n",                                             // an unquoted label value
      "# HELP x x.\n# TYPE x gauge\nx{1a=\"1\"} 1\n",                                        // a bad label name
      "# HELP x x.\n# TYPE x gauge\nx{a=\"\\q\"} 1\n",                                       // an unknown escape
      "# HELP x x.\n# TYPE x gauge\nx one\n",                                                // not a number
      "# HELP x x.\n# TYPE x gauge\n# HELP y y.\n# TYPE y gauge\nx 1\ny 1\nx{a=\"b\"} 1\n",  // apart
      "# HELP x x.\n# TYPE x gauge\nx 1\n# HELP x again.\n",  // HELP twice, after samples
      "# HELP x x.\n# TYPE x kind\nx 1\n",                    // an unknown type
      "# HELP 9x x.\n# TYPE 9x gauge\n9x 1\n",                // a bad metric name
  };
  for (const char* text : broken) {
    std::string error;
    EXPECT_FALSE(parsePrometheusText(text, &error)) << text;
    EXPECT_FALSE(error.empty()) << text;
  }
  std::string error;
  EXPECT_TRUE(parsePrometheusText("# a comment\n# HELP x x.\n# TYPE x gauge\nx{a=\"\\\"\"} -1.5e3 123\n\n", &error))
      << error;
}

}  // namespace
}  // namespace epoll_echo::host
