// abi_struct_fuzzer.cpp — the fuzz steps. Every buffer handed to the plugin is exactly as large as
// the size it declares (never below the 4-byte size field itself), followed by canary bytes the
// plugin must never touch; ASan catches a read past the end, the canaries a write.
#include "abi_struct_fuzzer.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

namespace epoll_echo::test {
namespace {

constexpr std::size_t kCanaryBytes = 64;
constexpr unsigned char kCanary = 0xa5;
constexpr std::uint32_t kHugeBufferCap = 8192;  // declared sizes above this get this much: all refused unread
constexpr std::uint64_t kImportsPerImporter = 64;

// A buffer of `declared` bytes (at least the size field) plus canaries after it.
class GuardedBuffer {
 public:
  explicit GuardedBuffer(std::size_t size)
      : bytes_(std::max<std::size_t>(size, 4) + kCanaryBytes, kCanary), size_(std::max<std::size_t>(size, 4)) {}
  unsigned char* data() { return bytes_.data(); }
  std::size_t size() const { return size_; }
  bool canaryIntact() const {
    return std::all_of(bytes_.begin() + static_cast<std::ptrdiff_t>(size_), bytes_.end(),
                       [](unsigned char b) { return b == kCanary; });
  }

 private:
  std::vector<unsigned char> bytes_;
  std::size_t size_;
};

bool documented(int code) { return code <= EPOLL_ECHO_OK && code >= EPOLL_ECHO_EINTERNAL; }

std::string describe(const char* call, int code, std::uint32_t declared) {
  return std::string(call) + " returned " + std::to_string(code) + " for declared size " + std::to_string(declared);
}

// Declared sizes: the exact one, every valid size, the sizes just around both limits, tiny, huge.
std::uint32_t pickSize(const ChoiceSource& next, std::uint32_t own) {
  switch (next() % 8) {
    case 0:
      return own;
    case 1:
      return own + static_cast<std::uint32_t>(next() % 17) - 8;
    case 2:
      return static_cast<std::uint32_t>(next() % 8);
    case 3:
      return 4096 + static_cast<std::uint32_t>(next() % 3) - 1;
    case 4:
      return 4097 + static_cast<std::uint32_t>(next() % 60000);
    case 5:
      return static_cast<std::uint32_t>(next());
    default:
      return 8 + static_cast<std::uint32_t>(next() % 4089);
  }
}

// Content: random bytes, or `valid` bytes followed by a zero or random tail.
void fillStruct(const ChoiceSource& next, GuardedBuffer& buffer, std::uint32_t declared, const void* valid,
                std::size_t validSize) {
  const std::uint64_t mode = next() % 4;
  for (std::size_t i = 0; i < buffer.size(); ++i) buffer.data()[i] = mode == 0 ? static_cast<unsigned char>(next()) : 0;
  if (mode >= 2) std::memcpy(buffer.data(), valid, std::min(validSize, buffer.size()));
  if (mode == 3 && buffer.size() > validSize) buffer.data()[validSize + next() % (buffer.size() - validSize)] = 1;
  std::memcpy(buffer.data(), &declared, sizeof declared);
}

std::size_t bufferSizeFor(std::uint32_t declared) { return std::min<std::uint32_t>(declared, kHugeBufferCap); }

// `head` followed by where each counter of EPOLL_ECHO_COUNTER_TABLE ends in a struct that embeds
// the counters at `offset`.
std::vector<std::uint32_t> withCounterEnds(std::vector<std::uint32_t> head, std::size_t offset) {
#define EPOLL_ECHO_COUNTER_END(field, kind, minor) \
  head.push_back(static_cast<std::uint32_t>(offset + offsetof(epoll_echo_counters_t, field) + sizeof(std::uint64_t)));
  EPOLL_ECHO_COUNTER_TABLE(EPOLL_ECHO_COUNTER_END)
#undef EPOLL_ECHO_COUNTER_END
  return head;
}

// `head` followed by where each counter of EPOLL_ECHO_URING_COUNTER_TABLE ends in a struct that
// ends with those counters at `offset` (ABI 1.5).
std::vector<std::uint32_t> withUringCounterEnds(std::vector<std::uint32_t> head, std::size_t offset) {
#define EPOLL_ECHO_URING_COUNTER_END(field, kind, minor) \
  head.push_back(                                        \
      static_cast<std::uint32_t>(offset + offsetof(epoll_echo_uring_counters_t, field) + sizeof(std::uint64_t)));
  EPOLL_ECHO_URING_COUNTER_TABLE(EPOLL_ECHO_URING_COUNTER_END)
#undef EPOLL_ECHO_URING_COUNTER_END
  return head;
}

// Where the fields of each boundary struct end, read off the header's layout (bind_address is one
// 64-byte field). A size below the plugin's own must end at one of them: any other size would
// have the plugin read or write half a field.
const std::vector<std::uint32_t> kConfigFieldEnds = {8, 12, 16, 20, 24, 28, 32, 96, 100, 104, 108, 112, 116};
const std::vector<std::uint32_t> kStatsFieldEnds = [] {
  auto ends = withCounterEnds({8, 12, 16}, offsetof(epoll_echo_stats_t, total));
  ends.push_back(static_cast<std::uint32_t>(offsetof(epoll_echo_stats_t, backend) + 4));  // ABI 1.4
  ends.push_back(static_cast<std::uint32_t>(offsetof(epoll_echo_stats_t, reserved1) + 4));
  return withUringCounterEnds(ends, offsetof(epoll_echo_stats_t, uring));
}();
const std::vector<std::uint32_t> kWorkerStatsFieldEnds = withUringCounterEnds(
    withCounterEnds({8}, offsetof(epoll_echo_worker_stats_t, counters)), offsetof(epoll_echo_worker_stats_t, uring));
const std::vector<std::uint32_t> kConnectionStateFieldEnds = {8, 12, 16, 24};
// A new trailing field must be added to the hand-written lists above: each list's last end is its
// struct's size. The counter lists follow the table, which the plugin checks against the struct.
static_assert(sizeof(epoll_echo_config_t) == 116 && sizeof(epoll_echo_stats_t) == 160 &&
                  sizeof(epoll_echo_connection_state_t) == 24,
              "update the field-end lists for the new struct layout");

bool sizeValid(std::uint32_t declared, const std::vector<std::uint32_t>& fieldEnds) {
  if (declared < 8 || declared > 4096) return false;
  return declared >= fieldEnds.back() || std::find(fieldEnds.begin(), fieldEnds.end(), declared) != fieldEnds.end();
}

// True when a struct of `declared` bytes has a non-zero byte beyond the plugin's `own` size.
bool tailNonZero(const GuardedBuffer& buffer, std::uint32_t declared, std::size_t own) {
  auto* bytes = const_cast<GuardedBuffer&>(buffer).data();
  for (std::size_t i = own; i < std::min<std::size_t>(declared, buffer.size()); ++i) {
    if (bytes[i] != 0) return true;
  }
  return false;
}

// An output struct filled by the plugin: size = min(declared, own), zeros from own to declared.
std::string checkFilled(const char* call, GuardedBuffer& buffer, std::uint32_t declared, std::size_t own) {
  std::uint32_t written = 0;
  std::memcpy(&written, buffer.data(), sizeof written);
  if (written != std::min<std::size_t>(declared, own))
    return std::string(call) + " set size " + std::to_string(written);
  if (tailNonZero(buffer, declared, own)) return std::string(call) + " left bytes beyond its struct non-zero";
  return "";
}

}  // namespace

AbiStructFuzzer::AbiStructFuzzer(const PluginApi& api) : api_(api), fakeEngine_(new unsigned char[64]) {
  for (int i = 0; i < 64; ++i) fakeEngine_[i] = static_cast<unsigned char>(i * 37 + 11);
  running_ = std::make_unique<TestEngine>(api_);
  paused_ = std::make_unique<TestEngine>(api_);
  for (TestEngine* engine : {running_.get(), paused_.get()}) {
    if (const ::testing::AssertionResult started = engine->createAndStart(loopbackConfig(1)); !started) {
      setupError_ = started.message();
      return;
    }
  }
  client_ = connectLoopback(paused_->port(), deadlineIn(std::chrono::seconds(5)), &setupError_);
  if (!client_) return;
  bool accepted = false;
  paused_->waitForStats([](const epoll_echo_stats_t& s) { return s.total.active == 1; },
                        deadlineIn(std::chrono::seconds(5)), &accepted);
  if (!accepted) setupError_ = "the paused engine never accepted its connection";
  if (api_.pause(paused_->handle()) != EPOLL_ECHO_OK) setupError_ = "epoll_echo_pause failed: " + paused_->lastError();
}

AbiStructFuzzer::~AbiStructFuzzer() = default;

epoll_echo_engine_t* AbiStructFuzzer::pickEngine(const ChoiceSource& next) {
  switch (next() % 6) {
    case 0:
      return nullptr;
    case 1:
      return reinterpret_cast<epoll_echo_engine_t*>(fakeEngine_.get());
    case 2:
      return paused_->handle();
    case 3:
      return importer_ ? importer_->handle() : nullptr;
    default:
      return running_->handle();
  }
}

std::string AbiStructFuzzer::step(const ChoiceSource& next) {
  switch (next() % 6) {
    case 0:
      return fuzzCreate(next);
    case 1:
      return fuzzStats(next);
    case 2:
      return fuzzWorkerStats(next);
    case 3:
      return fuzzExportConnection(next);
    case 4:
      return fuzzImportConnection(next);
    default:
      return fuzzLastError(next);
  }
}

std::string AbiStructFuzzer::fuzzCreate(const ChoiceSource& next) {
  const std::uint32_t declared = pickSize(next, sizeof(epoll_echo_config_t));
  GuardedBuffer config(bufferSizeFor(declared));
  const epoll_echo_config_t valid = loopbackConfig(1);
  fillStruct(next, config, declared, &valid, sizeof valid);
  GuardedBuffer detail(next() % 300);
  const std::size_t detailSize = next() % 4 == 0 ? 0 : detail.size();
  epoll_echo_engine_t* engine = reinterpret_cast<epoll_echo_engine_t*>(fakeEngine_.get());
  const int code = api_.create(reinterpret_cast<const epoll_echo_config_t*>(config.data()), &engine,
                               detailSize == 0 ? nullptr : reinterpret_cast<char*>(detail.data()), detailSize);
  const bool mustRefuseSize = !sizeValid(declared, kConfigFieldEnds) || tailNonZero(config, declared, sizeof valid);
  std::string failure;
  if (!documented(code) || (mustRefuseSize && code != EPOLL_ECHO_ESIZE)) failure = describe("create", code, declared);
  if ((code == EPOLL_ECHO_OK) != (engine != nullptr))
    failure = "create returned " + std::to_string(code) + " with engine " + (engine ? "set" : "NULL");
  if (detailSize > 0 && std::memchr(detail.data(), 0, detailSize) == nullptr)
    failure = "create's detail is not NUL-terminated";
  if (!config.canaryIntact() || !detail.canaryIntact()) failure = "create wrote past a buffer";
  if (engine != nullptr) {
    epoll_echo_stats_t stats{};
    stats.size = sizeof stats;
    if (api_.stats(engine, &stats) != EPOLL_ECHO_OK || stats.state != EPOLL_ECHO_STATE_CREATED)
      failure = "a created engine has bad stats";
    api_.destroy(engine);
  }
  return failure;
}

std::string AbiStructFuzzer::fuzzStats(const ChoiceSource& next) {
  epoll_echo_engine_t* engine = pickEngine(next);
  const std::uint32_t declared = pickSize(next, sizeof(epoll_echo_stats_t));
  GuardedBuffer stats(bufferSizeFor(declared));
  fillStruct(next, stats, declared, &declared, sizeof declared);
  const std::vector<unsigned char> before(stats.data(), stats.data() + stats.size());
  const bool nullStats = next() % 16 == 0;
  const int code = api_.stats(engine, nullStats ? nullptr : reinterpret_cast<epoll_echo_stats_t*>(stats.data()));
  const bool live = engine != nullptr && engine != reinterpret_cast<epoll_echo_engine_t*>(fakeEngine_.get());
  int expected = !live || nullStats                     ? EPOLL_ECHO_EINVAL
                 : sizeValid(declared, kStatsFieldEnds) ? EPOLL_ECHO_OK
                                                        : EPOLL_ECHO_ESIZE;
  if (code != expected) return describe("stats", code, declared) + ", expected " + std::to_string(expected);
  if (!stats.canaryIntact()) return "stats wrote past the struct";
  if (code != EPOLL_ECHO_OK) {
    return std::equal(before.begin(), before.end(), stats.data()) ? "" : "stats wrote into a struct it refused";
  }
  return checkFilled("stats", stats, declared, sizeof(epoll_echo_stats_t));
}

std::string AbiStructFuzzer::fuzzWorkerStats(const ChoiceSource& next) {
  epoll_echo_engine_t* engine = pickEngine(next);
  const std::uint32_t declared = pickSize(next, sizeof(epoll_echo_worker_stats_t));
  const std::uint32_t index =
      next() % 2 == 0 ? static_cast<std::uint32_t>(next() % 3) : static_cast<std::uint32_t>(next());
  GuardedBuffer stats(bufferSizeFor(declared));
  fillStruct(next, stats, declared, &declared, sizeof declared);
  const int code = api_.worker_stats(engine, index, reinterpret_cast<epoll_echo_worker_stats_t*>(stats.data()));
  const bool live = engine != nullptr && engine != reinterpret_cast<epoll_echo_engine_t*>(fakeEngine_.get());
  std::string failure;
  if (!live) {
    if (code != EPOLL_ECHO_EINVAL) failure = describe("worker_stats on a non-engine", code, declared);
  } else if (!sizeValid(declared, kWorkerStatsFieldEnds)) {
    if (code != EPOLL_ECHO_ESIZE && !(index != 0 && code == EPOLL_ECHO_ERANGE))
      failure = describe("worker_stats", code, declared);
  } else if (code != (index == 0 ? EPOLL_ECHO_OK : EPOLL_ECHO_ERANGE)) {
    failure = describe("worker_stats", code, declared) + " at index " + std::to_string(index);
  } else if (code == EPOLL_ECHO_OK) {
    failure = checkFilled("worker_stats", stats, declared, sizeof(epoll_echo_worker_stats_t));
  }
  if (!stats.canaryIntact()) failure = "worker_stats wrote past the struct";
  return failure;
}

std::string AbiStructFuzzer::fuzzExportConnection(const ChoiceSource& next) {
  epoll_echo_engine_t* engine = next() % 2 == 0 ? paused_->handle() : pickEngine(next);
  const std::uint32_t declared = pickSize(next, sizeof(epoll_echo_connection_state_t));
  const std::uint32_t index = next() % 2 == 0 ? 0 : static_cast<std::uint32_t>(next() % 4);
  GuardedBuffer state(bufferSizeFor(declared));
  fillStruct(next, state, declared, &declared, sizeof declared);
  const bool withPending = next() % 2 == 0;
  GuardedBuffer pending(next() % 1024);
  const int code = api_.export_connection(engine, index, reinterpret_cast<epoll_echo_connection_state_t*>(state.data()),
                                          withPending ? pending.data() : nullptr, withPending ? pending.size() : 0);
  std::string failure;
  if (!documented(code) ||
      (!sizeValid(declared, kConnectionStateFieldEnds) && code != EPOLL_ECHO_ESIZE && code != EPOLL_ECHO_EINVAL)) {
    failure = describe("export_connection", code, declared);
  }
  if (engine == paused_->handle() && sizeValid(declared, kConnectionStateFieldEnds) &&
      code != (index == 0 ? EPOLL_ECHO_OK : EPOLL_ECHO_ERANGE)) {
    failure = describe("export_connection", code, declared) + " at index " + std::to_string(index);
  }
  if (code == EPOLL_ECHO_OK)
    failure = checkFilled("export_connection", state, declared, sizeof(epoll_echo_connection_state_t));
  if (!state.canaryIntact() || !pending.canaryIntact()) failure = "export_connection wrote past a buffer";
  return failure;
}

std::string AbiStructFuzzer::fuzzImportConnection(const ChoiceSource& next) {
  if (!importer_ || imports_++ % kImportsPerImporter == 0) {
    importer_ = std::make_unique<TestEngine>(api_);  // the old one closes the duplicates it took
    if (importer_->create(loopbackConfig(1)) != EPOLL_ECHO_OK) return "cannot create the importing engine";
  }
  epoll_echo_engine_t* engine = next() % 2 == 0 ? importer_->handle() : pickEngine(next);
  const std::uint32_t declared = pickSize(next, sizeof(epoll_echo_connection_state_t));
  GuardedBuffer state(bufferSizeFor(declared));
  epoll_echo_connection_state_t valid{};
  valid.size = sizeof valid;
  const int fds[] = {client_.get(), -1, 0, static_cast<int>(next() % 64), static_cast<int>(next())};
  valid.fd = fds[next() % 5];
  valid.worker = static_cast<std::uint32_t>(next());
  valid.pending_bytes = next() % 2048;
  fillStruct(next, state, declared, &valid, sizeof valid);
  // The contract: `pending` holds state->pending_bytes bytes, or is NULL when that is 0.
  std::uint64_t pendingBytes = 0;
  if (declared >= sizeof valid && declared <= state.size())
    std::memcpy(&pendingBytes, state.data() + 16, sizeof pendingBytes);
  const bool mustRefuseSize =
      !sizeValid(declared, kConnectionStateFieldEnds) || tailNonZero(state, declared, sizeof valid);
  std::vector<unsigned char> pending(pendingBytes <= 1 << 20 ? pendingBytes : 0, 0x5a);
  if (!mustRefuseSize && pendingBytes > (1 << 20)) return "";  // no buffer that large to offer
  const int code = api_.import_connection(engine, reinterpret_cast<const epoll_echo_connection_state_t*>(state.data()),
                                          pending.empty() ? nullptr : pending.data());
  // A handle that is not an engine is refused first, whatever the struct.
  const bool live = engine != nullptr && engine != reinterpret_cast<epoll_echo_engine_t*>(fakeEngine_.get());
  if (!documented(code) || (mustRefuseSize && code != (live ? EPOLL_ECHO_ESIZE : EPOLL_ECHO_EINVAL)))
    return describe("import_connection", code, declared);
  return state.canaryIntact() ? "" : "import_connection wrote into its input";
}

std::string AbiStructFuzzer::fuzzLastError(const ChoiceSource& next) {
  epoll_echo_engine_t* engine = pickEngine(next);
  GuardedBuffer buffer(next() % 300);
  const bool nullBuffer = next() % 8 == 0;
  const std::size_t size = next() % 4 == 0 ? 0 : buffer.size();
  std::memset(buffer.data(), 'x', buffer.size());
  const int code = api_.last_error(engine, nullBuffer ? nullptr : reinterpret_cast<char*>(buffer.data()), size);
  const bool live = engine != nullptr && engine != reinterpret_cast<epoll_echo_engine_t*>(fakeEngine_.get());
  if (!live || (nullBuffer && size != 0)) return code == EPOLL_ECHO_EINVAL ? "" : describe("last_error", code, 0);
  if (code < 0) return describe("last_error", code, static_cast<std::uint32_t>(size));
  if (!nullBuffer && size > 0) {
    const std::size_t copied = std::min<std::size_t>(static_cast<std::size_t>(code), size - 1);
    if (buffer.data()[copied] != 0) return "last_error did not NUL-terminate at " + std::to_string(copied);
  }
  return buffer.canaryIntact() ? "" : "last_error wrote past its buffer";
}

}  // namespace epoll_echo::test
