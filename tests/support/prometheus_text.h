// prometheus_text.h — a strict parser of the Prometheus text exposition format 0.0.4, for the
// tests of epoll-server's /metrics: every line checked, every sample's family described.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace epoll_echo::test {

using Labels = std::map<std::string, std::string>;

struct PrometheusSample {
  std::string name;
  Labels labels;
  double value = 0;
};

struct PrometheusFamily {
  std::string help;
  std::string type;  // counter, gauge, histogram, summary or untyped
};

struct PrometheusText {
  std::map<std::string, PrometheusFamily> families;
  std::vector<PrometheusSample> samples;  // in the order of the text

  // The value of the sample with exactly these labels, if there is one.
  std::optional<double> value(const std::string& name, const Labels& labels = {}) const;
  // Every sample of `name`, whatever its labels.
  std::vector<PrometheusSample> samplesOf(const std::string& name) const;
};

// Parses `text`. Besides the format's own rules (metric and label names, label value escapes,
// numeric values, at most one HELP and one TYPE per name, each before the family's samples,
// a family's samples together, no series twice, a final newline) it requires what epoll-server
// promises: every sample has HELP and TYPE, and every counter's name ends in _total. On the first
// violation returns nullopt and sets *error to "line N: why".
std::optional<PrometheusText> parsePrometheusText(const std::string& text, std::string* error);

}  // namespace epoll_echo::test
