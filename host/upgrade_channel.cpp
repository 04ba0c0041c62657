// upgrade_channel.cpp — the wire format of an upgrade. Every message is a header (magic, protocol
// version, type, payload length, descriptor count) and its payload; SOCK_SEQPACKET keeps message
// boundaries, so a short, long or truncated message is detected whole. The state crosses as one
// byte stream cut into chunks, its descriptors in batches, and is parsed with bounds checks.
#include "upgrade_channel.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace epoll_echo::host {
namespace {

constexpr uint32_t kMagic = 0x50554545;  // "EEUP" little-endian
constexpr std::size_t kChunkBytes = 32 * 1024;
// Bounds on what a receiver allocates for a stream it has not checked yet.
constexpr uint64_t kMaxStateBytes = uint64_t{1} << 32;
constexpr uint32_t kMaxDescriptors = 1u << 20;
constexpr std::size_t kMaxReasonBytes = 1024;

enum MessageType : uint16_t { kStateHeader = 1, kDescriptors = 2, kStateBytes = 3 };

struct WireHeader {
  uint32_t magic;
  uint16_t version;
  uint16_t type;
  uint32_t payloadBytes;
  uint32_t descriptorCount;
};

struct StateHeader {
  uint64_t stateBytes;
  uint32_t listeners;
  uint32_t connections;
};

// Appends fixed-width values to a byte stream.
class Writer {
 public:
  template <typename T>
  void put(T value) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(&value);
    bytes_.insert(bytes_.end(), bytes, bytes + sizeof value);
  }
  void putBytes(const std::vector<unsigned char>& bytes) { bytes_.insert(bytes_.end(), bytes.begin(), bytes.end()); }
  // The counters in EPOLL_ECHO_COUNTER_TABLE order, preceded by their number: a newer build that
  // counts more reads the ones it knows and zeroes the rest.
  void putCounters(const epoll_echo_counters_t& counters) {
    uint32_t count = 0;
#define EPOLL_ECHO_COUNT_FIELD(field, kind, minor) ++count;
    EPOLL_ECHO_COUNTER_TABLE(EPOLL_ECHO_COUNT_FIELD)
#undef EPOLL_ECHO_COUNT_FIELD
    put(count);
#define EPOLL_ECHO_PUT_FIELD(field, kind, minor) put<uint64_t>(counters.field);
    EPOLL_ECHO_COUNTER_TABLE(EPOLL_ECHO_PUT_FIELD)
#undef EPOLL_ECHO_PUT_FIELD
  }
  std::vector<unsigned char>& bytes() { return bytes_; }

 private:
  std::vector<unsigned char> bytes_;
};

// Reads them back; every read is checked against what is left.
class Reader {
 public:
  explicit Reader(const std::vector<unsigned char>& bytes) : bytes_(bytes) {}
  template <typename T>
  T get() {
    T value;
    std::memcpy(&value, take(sizeof value), sizeof value);
    return value;
  }
  std::vector<unsigned char> getBytes(uint64_t count) {
    const unsigned char* start = take(count);
    return std::vector<unsigned char>(start, start + count);
  }
  epoll_echo_counters_t getCounters() {
    const auto count = get<uint32_t>();
    if (count > remaining() / sizeof(uint64_t)) fail("counter list longer than the message");
    std::vector<uint64_t> values(count);
    for (uint64_t& value : values) value = get<uint64_t>();
    epoll_echo_counters_t counters{};
    std::size_t index = 0;
#define EPOLL_ECHO_GET_FIELD(field, kind, minor)             \
  if (index < values.size()) counters.field = values[index]; \
  ++index;
    EPOLL_ECHO_COUNTER_TABLE(EPOLL_ECHO_GET_FIELD)
#undef EPOLL_ECHO_GET_FIELD
    return counters;
  }
  std::size_t remaining() const { return bytes_.size() - offset_; }

 private:
  [[noreturn]] static void fail(const std::string& what) { throw UpgradeProtocolError("upgrade state: " + what); }
  const unsigned char* take(uint64_t count) {
    if (count > remaining())
      fail("truncated (" + std::to_string(remaining()) + " bytes left, needed " + std::to_string(count) + ")");
    const unsigned char* start = bytes_.data() + offset_;
    offset_ += static_cast<std::size_t>(count);
    return start;
  }

  const std::vector<unsigned char>& bytes_;
  std::size_t offset_ = 0;
};

std::vector<unsigned char> encodeState(const CarriedState& state) {
  Writer writer;
  writer.put<uint64_t>(state.stats.reloads);
  writer.putCounters(state.stats.total);
  writer.put(static_cast<uint32_t>(state.stats.workers.size()));
  for (const epoll_echo_counters_t& worker : state.stats.workers) writer.putCounters(worker);
  for (const CarriedConnection& connection : state.connections) {
    writer.put(connection.worker);
    writer.put(connection.flags);
    writer.put(static_cast<uint64_t>(connection.pending.size()));
    writer.putBytes(connection.pending);
  }
  writer.put(static_cast<uint32_t>(state.dropped.size()));
  for (uint32_t index : state.dropped) writer.put(index);
  writer.put(static_cast<uint32_t>(state.revised.size()));
  for (const RevisedConnection& revised : state.revised) {
    writer.put(revised.index);
    writer.put(revised.flags);
    writer.put(static_cast<uint64_t>(revised.pending.size()));
    writer.putBytes(revised.pending);
  }
  return std::move(writer.bytes());
}

void decodeState(const std::vector<unsigned char>& bytes, std::size_t connections, CarriedState& state) {
  Reader reader(bytes);
  state.stats.reloads = reader.get<uint64_t>();
  state.stats.total = reader.getCounters();
  const auto workers = reader.get<uint32_t>();
  if (workers > reader.remaining()) throw UpgradeProtocolError("upgrade state: worker count beyond the message");
  for (uint32_t index = 0; index < workers; ++index) state.stats.workers.push_back(reader.getCounters());
  state.connections.resize(connections);
  for (CarriedConnection& connection : state.connections) {
    connection.worker = reader.get<uint32_t>();
    connection.flags = reader.get<uint32_t>();
    connection.pending = reader.getBytes(reader.get<uint64_t>());
  }
  const auto dropped = reader.get<uint32_t>();
  if (dropped > reader.remaining() / sizeof(uint32_t)) throw UpgradeProtocolError("upgrade state: dropped list beyond the message");
  for (uint32_t count = 0; count < dropped; ++count) state.dropped.push_back(reader.get<uint32_t>());
  const auto revised = reader.get<uint32_t>();
  if (revised > reader.remaining()) throw UpgradeProtocolError("upgrade state: revised list beyond the message");
  for (uint32_t count = 0; count < revised; ++count) {
    RevisedConnection& revision = state.revised.emplace_back();
    revision.index = reader.get<uint32_t>();
    revision.flags = reader.get<uint32_t>();
    revision.pending = reader.getBytes(reader.get<uint64_t>());
  }
  if (reader.remaining() != 0) {
    throw UpgradeProtocolError("upgrade state: " + std::to_string(reader.remaining()) + " bytes past its end");
  }
}

template <typename T>
std::vector<unsigned char> asBytes(const T& value) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(&value);
  return std::vector<unsigned char>(bytes, bytes + sizeof value);
}

const char* typeName(uint16_t type) {
  switch (type) {
    case kStateHeader:
      return "state header";
    case kDescriptors:
      return "descriptors";
    case kStateBytes:
      return "state bytes";
    case static_cast<uint16_t>(UpgradeReply::kHello):
      return "hello";
    case static_cast<uint16_t>(UpgradeReply::kPrepared):
      return "prepared";
    case static_cast<uint16_t>(UpgradeReply::kPresented):
      return "presented";
    case static_cast<uint16_t>(UpgradeReply::kReady):
      return "ready";
    case static_cast<uint16_t>(UpgradeReply::kGo):
      return "go";
    case static_cast<uint16_t>(UpgradeReply::kServing):
      return "serving";
    case static_cast<uint16_t>(UpgradeReply::kFailed):
      return "failed";
    default:
      return "unknown";
  }
}

// Every descriptor of a received message, owned at once, so none leaks whatever is wrong with it.
std::vector<UniqueFd> takeDescriptors(msghdr& message) {
  std::vector<UniqueFd> descriptors;
  for (cmsghdr* control = CMSG_FIRSTHDR(&message); control != nullptr; control = CMSG_NXTHDR(&message, control)) {
    if (control->cmsg_level != SOL_SOCKET || control->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (control->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const auto* fds = reinterpret_cast<const unsigned char*>(CMSG_DATA(control));
    for (std::size_t index = 0; index < count; ++index) {
      int fd;
      std::memcpy(&fd, fds + index * sizeof fd, sizeof fd);
      descriptors.emplace_back(fd);
    }
  }
  return descriptors;
}

}  // namespace

std::pair<UpgradeChannel, UpgradeChannel> UpgradeChannel::pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) != 0) {
    throw std::system_error(errno, std::generic_category(), "socketpair AF_UNIX SOCK_SEQPACKET");
  }
  return {UpgradeChannel(UniqueFd(fds[0])), UpgradeChannel(UniqueFd(fds[1]))};
}

void UpgradeChannel::waitFor(short events, UpgradeDeadline deadline) {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw UpgradeProtocolError("upgrade: timed out waiting for the other process");
    pollfd entry{socket_.get(), events, 0};
    const int ready = ::poll(&entry, 1, static_cast<int>(std::min<int64_t>(left.count(), 60000)));
    if (ready > 0) return;
    if (ready < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "poll upgrade channel");
  }
}

void UpgradeChannel::send(uint16_t type, const std::vector<unsigned char>& payload, const int* descriptors,
                          std::size_t count, UpgradeDeadline deadline) {
  const WireHeader header{kMagic, kProtocolVersion, type, static_cast<uint32_t>(payload.size()),
                          static_cast<uint32_t>(count)};
  iovec parts[2] = {{const_cast<WireHeader*>(&header), sizeof header},
                    {const_cast<unsigned char*>(payload.data()), payload.size()}};
  std::vector<unsigned char> control(count > 0 ? CMSG_SPACE(count * sizeof(int)) : 0);
  msghdr message{};
  message.msg_iov = parts;
  message.msg_iovlen = payload.empty() ? 1 : 2;
  if (count > 0) {
    message.msg_control = control.data();
    message.msg_controllen = control.size();
    cmsghdr* cmsg = CMSG_FIRSTHDR(&message);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(count * sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), descriptors, count * sizeof(int));
  }
  for (;;) {
    if (::sendmsg(socket_.get(), &message, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0) return;
    if (errno == EAGAIN) {
      waitFor(POLLOUT, deadline);
    } else if (errno == EPIPE || errno == ECONNRESET) {
      throw UpgradeProtocolError("upgrade: the other process closed the channel");
    } else if (errno != EINTR) {
      throw std::system_error(errno, std::generic_category(), std::string("sendmsg upgrade ") + typeName(type));
    }
  }
}

std::optional<UpgradeChannel::Message> UpgradeChannel::receive(UpgradeDeadline deadline) {
  std::vector<unsigned char> buffer(sizeof(WireHeader) + kChunkBytes);
  std::vector<unsigned char> control(CMSG_SPACE(kDescriptorsPerMessage * sizeof(int)));
  for (;;) {
    iovec part{buffer.data(), buffer.size()};
    msghdr message{};
    message.msg_iov = &part;
    message.msg_iovlen = 1;
    message.msg_control = control.data();
    message.msg_controllen = control.size();
    const ssize_t got = ::recvmsg(socket_.get(), &message, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (got < 0 && errno == EAGAIN) {
      waitFor(POLLIN, deadline);
      continue;
    }
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && errno == ECONNRESET) return std::nullopt;
    if (got < 0) throw std::system_error(errno, std::generic_category(), "recvmsg upgrade channel");
    Message received;
    received.descriptors = takeDescriptors(message);
    if (got == 0) return std::nullopt;
    if ((message.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) throw UpgradeProtocolError("upgrade: message too long");
    WireHeader header{};
    if (static_cast<std::size_t>(got) < sizeof header) throw UpgradeProtocolError("upgrade: message too short");
    std::memcpy(&header, buffer.data(), sizeof header);
    if (header.magic != kMagic) throw UpgradeProtocolError("upgrade: not an epoll-server upgrade message");
    if (header.version != kProtocolVersion) {
      throw UpgradeProtocolError("upgrade: protocol version " + std::to_string(header.version) +
                                 ", this build speaks version " + std::to_string(kProtocolVersion));
    }
    if (header.payloadBytes != static_cast<std::size_t>(got) - sizeof header ||
        header.descriptorCount != received.descriptors.size()) {
      throw UpgradeProtocolError(std::string("upgrade: ") + typeName(header.type) + " message of the wrong length");
    }
    received.type = header.type;
    received.payload.assign(buffer.begin() + sizeof header, buffer.begin() + got);
    return received;
  }
}

UpgradeChannel::Message UpgradeChannel::receiveExpected(uint16_t type, UpgradeDeadline deadline) {
  std::optional<Message> message = receive(deadline);
  if (!message) throw UpgradeProtocolError("upgrade: the other process closed the channel");
  if (message->type != type) {
    throw UpgradeProtocolError(std::string("upgrade: expected a ") + typeName(type) + " message, got " +
                               typeName(message->type));
  }
  return std::move(*message);
}

void UpgradeChannel::sendState(const CarriedState& state, UpgradeDeadline deadline) {
  const std::vector<unsigned char> bytes = encodeState(state);
  const StateHeader header{bytes.size(), static_cast<uint32_t>(state.listeners.size()),
                           static_cast<uint32_t>(state.connections.size())};
  send(kStateHeader, asBytes(header), nullptr, 0, deadline);
  std::vector<int> descriptors = state.listeners;
  for (const CarriedConnection& connection : state.connections) descriptors.push_back(connection.fd);
  for (std::size_t first = 0; first < descriptors.size(); first += kDescriptorsPerMessage) {
    const std::size_t count = std::min(kDescriptorsPerMessage, descriptors.size() - first);
    send(kDescriptors, {}, descriptors.data() + first, count, deadline);
  }
  for (std::size_t first = 0; first < bytes.size(); first += kChunkBytes) {
    const std::size_t count = std::min(kChunkBytes, bytes.size() - first);
    send(kStateBytes, std::vector<unsigned char>(bytes.begin() + first, bytes.begin() + first + count), nullptr, 0,
         deadline);
  }
}

CarriedState UpgradeChannel::receiveState(UpgradeDeadline deadline) {
  const Message first = receiveExpected(kStateHeader, deadline);
  StateHeader header{};
  if (first.payload.size() != sizeof header) throw UpgradeProtocolError("upgrade: state header of the wrong length");
  std::memcpy(&header, first.payload.data(), sizeof header);
  const uint64_t descriptorCount = uint64_t{header.listeners} + header.connections;
  if (header.stateBytes > kMaxStateBytes || descriptorCount > kMaxDescriptors) {
    throw UpgradeProtocolError("upgrade: state header announces more than a server holds");
  }
  CarriedState state;
  while (state.received.size() < descriptorCount) {
    Message batch = receiveExpected(kDescriptors, deadline);
    if (batch.descriptors.empty()) throw UpgradeProtocolError("upgrade: an empty descriptor batch");
    for (UniqueFd& fd : batch.descriptors) state.received.push_back(std::move(fd));
  }
  if (state.received.size() != descriptorCount) throw UpgradeProtocolError("upgrade: more descriptors than announced");
  std::vector<unsigned char> bytes;
  bytes.reserve(static_cast<std::size_t>(header.stateBytes));
  while (bytes.size() < header.stateBytes) {
    const Message chunk = receiveExpected(kStateBytes, deadline);
    if (chunk.payload.empty() || chunk.payload.size() > header.stateBytes - bytes.size()) {
      throw UpgradeProtocolError("upgrade: state chunks do not add up to the announced length");
    }
    bytes.insert(bytes.end(), chunk.payload.begin(), chunk.payload.end());
  }
  decodeState(bytes, header.connections, state);
  for (uint32_t index = 0; index < header.listeners; ++index) state.listeners.push_back(state.received[index].get());
  for (uint32_t index = 0; index < header.connections; ++index) {
    state.connections[index].fd = state.received[header.listeners + index].get();
  }
  return state;
}

void UpgradeChannel::sendHello(UpgradeDeadline deadline, int metricsListener) {
  send(static_cast<uint16_t>(UpgradeReply::kHello), {}, &metricsListener, metricsListener >= 0 ? 1 : 0, deadline);
}

UniqueFd UpgradeChannel::receiveHello(UpgradeDeadline deadline) {
  Message hello = receiveExpected(static_cast<uint16_t>(UpgradeReply::kHello), deadline);
  if (!hello.payload.empty() || hello.descriptors.size() > 1) {
    throw UpgradeProtocolError("upgrade: a hello with an unexpected payload");
  }
  return hello.descriptors.empty() ? UniqueFd() : std::move(hello.descriptors.front());
}

void UpgradeChannel::sendReply(UpgradeReply reply, UpgradeDeadline deadline, uint32_t pid, const std::string& reason) {
  std::vector<unsigned char> payload;
  if (reply == UpgradeReply::kPrepared) payload = asBytes(pid);
  if (reply == UpgradeReply::kFailed)
    payload.assign(reason.begin(), reason.begin() + std::min(reason.size(), kMaxReasonBytes));
  send(static_cast<uint16_t>(reply), payload, nullptr, 0, deadline);
}

std::optional<ReceivedReply> UpgradeChannel::receiveReply(UpgradeDeadline deadline) {
  std::optional<Message> message = receive(deadline);
  if (!message) return std::nullopt;
  if (!message->descriptors.empty()) throw UpgradeProtocolError("upgrade: descriptors with a reply");
  ReceivedReply received;
  received.reply = static_cast<UpgradeReply>(message->type);
  switch (received.reply) {
    case UpgradeReply::kPrepared:
      if (message->payload.size() != sizeof received.pid)
        throw UpgradeProtocolError("upgrade: prepared of the wrong length");
      std::memcpy(&received.pid, message->payload.data(), sizeof received.pid);
      break;
    case UpgradeReply::kFailed:
      received.reason.assign(message->payload.begin(), message->payload.end());
      break;
    case UpgradeReply::kHello:
    case UpgradeReply::kPresented:
    case UpgradeReply::kReady:
    case UpgradeReply::kGo:
    case UpgradeReply::kServing:
      if (!message->payload.empty()) throw UpgradeProtocolError("upgrade: a reply with an unexpected payload");
      break;
    default:
      throw UpgradeProtocolError(std::string("upgrade: unexpected ") + typeName(message->type) + " message");
  }
  return received;
}

}  // namespace epoll_echo::host
