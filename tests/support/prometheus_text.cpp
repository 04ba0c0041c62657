// prometheus_text.cpp — the exposition format parsed line by line; see prometheus_text.h.
#include "support/prometheus_text.h"

#include <cstdlib>
#include <set>
#include <sstream>
#include <stdexcept>

namespace epoll_echo::test {
namespace {

struct ParseError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

bool isNameStart(char c, bool colonAllowed) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colonAllowed && c == ':');
}

bool isName(const std::string& name, bool colonAllowed) {
  if (name.empty() || !isNameStart(name[0], colonAllowed)) return false;
  for (const char c : name) {
    if (!isNameStart(c, colonAllowed) && !(c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool isMetricName(const std::string& name) { return isName(name, true); }

// Reads a name at `at` (advancing it): the longest run of name characters.
std::string readName(const std::string& line, std::size_t& at) {
  const std::size_t start = at;
  while (at < line.size() && (isNameStart(line[at], true) || (line[at] >= '0' && line[at] <= '9'))) ++at;
  return line.substr(start, at - start);
}

// A quoted label value at `at` (on the opening quote), escapes \\ \" \n resolved.
std::string readLabelValue(const std::string& line, std::size_t& at) {
  if (at >= line.size() || line[at] != '"') throw ParseError("label value does not start with a quote");
  std::string value;
  for (++at; at < line.size() && line[at] != '"'; ++at) {
    if (line[at] != '\\') {
      value += line[at];
      continue;
    }
    if (++at == line.size()) break;
    if (line[at] == 'n')
      value += '\n';
    else if (line[at] == '\\' || line[at] == '"')
      value += line[at];
    else
      throw ParseError(std::string("unknown escape \\") + line[at]);
  }
  if (at >= line.size()) throw ParseError("unterminated label value");
  ++at;  // the closing quote
  return value;
}

Labels readLabels(const std::string& line, std::size_t& at) {
  Labels labels;
  ++at;  // '{'
  while (at < line.size() && line[at] != '}') {
    const std::string name = readName(line, at);
    if (!isName(name, false)) throw ParseError("bad label name '" + name + "'");
    if (at >= line.size() || line[at++] != '=') throw ParseError("no '=' after label " + name);
    if (!labels.emplace(name, readLabelValue(line, at)).second) throw ParseError("label " + name + " twice");
    if (at < line.size() && line[at] == ',')
      ++at;
    else if (at < line.size() && line[at] != '}')
      throw ParseError("no ',' or '}' after label " + name);
  }
  if (at >= line.size()) throw ParseError("unterminated label set");
  ++at;
  return labels;
}

double readValue(const std::string& text) {
  if (text == "+Inf" || text == "-Inf" || text == "NaN") return std::strtod(text.c_str(), nullptr);
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size()) throw ParseError("bad value '" + text + "'");
  return value;
}

class Parser {
 public:
  void line(const std::string& text) {
    if (text.empty()) return;
    if (text[0] == '#') return comment(text);
    sample(text);
  }

  void finish() {
    for (const auto& entry : result_.families) {
      if (described_.count(entry.first + " HELP") == 0) throw ParseError(entry.first + " has no HELP");
      if (described_.count(entry.first + " TYPE") == 0) throw ParseError(entry.first + " has no TYPE");
    }
  }

  PrometheusText take() { return std::move(result_); }

 private:
  void comment(const std::string& text) {
    std::istringstream in(text);
    std::string hash, keyword, name;
    in >> hash >> keyword >> name;
    if (hash != "#" || (keyword != "HELP" && keyword != "TYPE")) return;  // a plain comment
    if (!isMetricName(name)) throw ParseError(keyword + " of a bad name '" + name + "'");
    if (!described_.insert(name + ' ' + keyword).second) throw ParseError(keyword + " of " + name + " twice");
    if (seen_.count(name)) throw ParseError(keyword + " of " + name + " after its samples");
    std::string rest;
    std::getline(in >> std::ws, rest);
    PrometheusFamily& family = result_.families[name];
    if (keyword == "HELP") return void(family.help = rest);
    static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary", "untyped"};
    if (!kTypes.count(rest)) throw ParseError("unknown type '" + rest + "' of " + name);
    family.type = rest;
  }

  void sample(const std::string& text) {
    std::size_t at = 0;
    PrometheusSample sample;
    sample.name = readName(text, at);
    if (!isMetricName(sample.name)) throw ParseError("bad metric name at '" + text + "'");
    if (at < text.size() && text[at] == '{') sample.labels = readLabels(text, at);
    if (at >= text.size() || text[at] != ' ') throw ParseError("no space before the value");
    std::istringstream rest(text.substr(at + 1));
    std::string value, timestamp, extra;
    rest >> value >> timestamp >> extra;
    if (!extra.empty()) throw ParseError("trailing text '" + extra + "'");
    if (!timestamp.empty() && timestamp.find_first_not_of("-0123456789") != std::string::npos) {
      throw ParseError("bad timestamp '" + timestamp + "'");
    }
    sample.value = readValue(value);
    checkFamily(sample);
    result_.samples.push_back(std::move(sample));
  }

  void checkFamily(const PrometheusSample& sample) {
    const auto family = result_.families.find(sample.name);
    if (family == result_.families.end() || family->second.type.empty() ||
        described_.count(sample.name + " HELP") == 0) {
      throw ParseError(sample.name + " has no HELP and TYPE before its first sample");
    }
    if (family->second.type == "counter" &&
        (sample.name.size() < 6 || sample.name.compare(sample.name.size() - 6, 6, "_total") != 0)) {
      throw ParseError("counter " + sample.name + " does not end in _total");
    }
    if (sample.name != current_ && seen_.count(sample.name)) throw ParseError(sample.name + "'s samples are apart");
    current_ = sample.name;
    seen_.insert(sample.name);
    std::string series = sample.name;
    for (const auto& [label, value] : sample.labels) series += '\n' + label + '=' + value;
    if (!series_.insert(series).second) throw ParseError("series " + sample.name + " twice");
  }

  PrometheusText result_;
  std::set<std::string> described_;  // "name HELP", "name TYPE"
  std::set<std::string> seen_;       // names with samples
  std::set<std::string> series_;
  std::string current_;
};

}  // namespace

std::optional<double> PrometheusText::value(const std::string& name, const Labels& labels) const {
  for (const PrometheusSample& sample : samples) {
    if (sample.name == name && sample.labels == labels) return sample.value;
  }
  return std::nullopt;
}

std::vector<PrometheusSample> PrometheusText::samplesOf(const std::string& name) const {
  std::vector<PrometheusSample> found;
  for (const PrometheusSample& sample : samples) {
    if (sample.name == name) found.push_back(sample);
  }
  return found;
}

std::optional<PrometheusText> parsePrometheusText(const std::string& text, std::string* error) {
  Parser parser;
  std::size_t number = 0;
  try {
    if (text.empty() || text.back() != '\n') throw ParseError("the text does not end with a newline");
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      ++number;
      parser.line(line);
    }
    parser.finish();
  } catch (const ParseError& failure) {
    if (error) *error = "line " + std::to_string(number) + ": " + failure.what();
    return std::nullopt;
  }
  return parser.take();
}

}  // namespace epoll_echo::test
