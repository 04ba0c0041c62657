// host_upgrade_channel_test.cpp — the upgrade's message stream between two ends of a socketpair in
// one process: a state with more descriptors than one message carries and pending bytes longer
// than one chunk arrives whole, and malformed, foreign, truncated or missing messages are refused.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "upgrade_channel.h"

namespace epoll_echo::host {
namespace {

UpgradeDeadline deadlineIn(std::chrono::milliseconds timeout) { return std::chrono::steady_clock::now() + timeout; }
constexpr std::chrono::seconds kTimeout{30};

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

Pipe makePipe() {
  int fds[2] = {-1, -1};
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// A byte written through `fd` comes out of `read`: they are the same pipe.
bool samePipe(int fd, int read) {
  const char sent = 'x';
  char got = 0;
  return ::write(fd, &sent, 1) == 1 && ::read(read, &got, 1) == 1 && got == sent;
}

TEST(UpgradeChannelTest, AStateOfManyDescriptorsAndLongPendingBytesArrivesWhole) {
  auto [sender, receiver] = UpgradeChannel::pair();
  constexpr std::size_t kConnections = 2 * UpgradeChannel::kDescriptorsPerMessage + 7;
  std::vector<Pipe> pipes;
  CarriedState sent;
  for (std::size_t index = 0; index < kConnections + 2; ++index) pipes.push_back(makePipe());
  sent.listeners = {pipes[0].write.get(), pipes[1].write.get()};
  for (std::size_t index = 0; index < kConnections; ++index) {
    CarriedConnection connection;
    connection.fd = pipes[index + 2].write.get();
    connection.worker = static_cast<uint32_t>(index % 3);
    connection.flags = index % 2;
    connection.pending.resize(index == 5 ? 300000 : index % 17);  // one longer than several chunks
    for (std::size_t byte = 0; byte < connection.pending.size(); ++byte) {
      connection.pending[byte] = static_cast<unsigned char>(byte * 7 + index);
    }
    sent.connections.push_back(std::move(connection));
  }
  sent.dropped = {4, 0, 9};
  sent.revised = {{1, 1, std::vector<unsigned char>(70000, 'r')}, {8, 0, {'a'}}};
  sent.stats.reloads = 3;
  sent.stats.total.accepted = 42;
  sent.stats.total.idle_closed = 5;
  sent.stats.workers.resize(2);
  sent.stats.workers[1].bytes_out = 77;

  std::string sendError;
  std::thread sending([&, &channel = sender] {
    try {
      channel.sendState(sent, deadlineIn(kTimeout));
    } catch (const std::exception& error) {
      sendError = error.what();
    }
  });
  CarriedState received = receiver.receiveState(deadlineIn(kTimeout));
  sending.join();
  ASSERT_EQ(sendError, "");

  ASSERT_EQ(received.listeners.size(), 2u);
  ASSERT_EQ(received.connections.size(), kConnections);
  EXPECT_EQ(received.received.size(), kConnections + 2);
  EXPECT_TRUE(samePipe(received.listeners[1], pipes[1].read.get()));
  for (std::size_t index = 0; index < kConnections; ++index) {
    const CarriedConnection& got = received.connections[index];
    EXPECT_EQ(got.worker, sent.connections[index].worker);
    EXPECT_EQ(got.flags, sent.connections[index].flags);
    EXPECT_EQ(got.pending, sent.connections[index].pending) << "connection " << index;
    EXPECT_NE(got.fd, sent.connections[index].fd);  // a descriptor of its own
    EXPECT_TRUE(samePipe(got.fd, pipes[index + 2].read.get())) << "connection " << index;
  }
  EXPECT_EQ(received.dropped, sent.dropped);
  ASSERT_EQ(received.revised.size(), 2u);
  for (std::size_t index = 0; index < 2; ++index) {
    EXPECT_EQ(received.revised[index].index, sent.revised[index].index);
    EXPECT_EQ(received.revised[index].flags, sent.revised[index].flags);
    EXPECT_EQ(received.revised[index].pending, sent.revised[index].pending);
  }
  EXPECT_EQ(received.stats.reloads, 3u);
  EXPECT_EQ(received.stats.total.accepted, 42u);
  EXPECT_EQ(received.stats.total.idle_closed, 5u);
  ASSERT_EQ(received.stats.workers.size(), 2u);
  EXPECT_EQ(received.stats.workers[1].bytes_out, 77u);
}

// A message as a peer of another version or another program might send it: the 16-byte header
// (magic, version, type, announced payload length, descriptor count) and `payload`.
void sendRaw(int fd, uint32_t magic, uint16_t version, uint16_t type, uint32_t announced,
             const std::vector<unsigned char>& payload = {}) {
  std::vector<unsigned char> message(16);
  const uint32_t descriptors = 0;
  std::memcpy(message.data(), &magic, 4);
  std::memcpy(message.data() + 4, &version, 2);
  std::memcpy(message.data() + 6, &type, 2);
  std::memcpy(message.data() + 8, &announced, 4);
  std::memcpy(message.data() + 12, &descriptors, 4);
  message.insert(message.end(), payload.begin(), payload.end());
  ASSERT_EQ(::send(fd, message.data(), message.size(), MSG_NOSIGNAL), static_cast<ssize_t>(message.size()));
}

constexpr uint32_t kMagic = 0x50554545;
constexpr uint16_t kVersion = UpgradeChannel::kProtocolVersion;
constexpr uint16_t kStateHeaderType = 1;

std::string receiveStateError(UpgradeChannel& channel) {
  try {
    channel.receiveState(deadlineIn(kTimeout));
  } catch (const UpgradeProtocolError& error) {
    return error.what();
  }
  return "";
}

TEST(UpgradeChannelTest, AnotherProtocolVersionIsRefusedNamingBoth) {
  auto [sender, receiver] = UpgradeChannel::pair();
  sendRaw(sender.fd(), kMagic, kVersion + 1, kStateHeaderType, 0);
  EXPECT_EQ(receiveStateError(receiver), "upgrade: protocol version " + std::to_string(kVersion + 1) +
                                             ", this build speaks version " + std::to_string(kVersion));
}

// Version 1 successors sent their first word (a failure, or "ready" with their pid) only after
// the whole state: an old build's answer to this build's hello is refused, not misread.
TEST(UpgradeChannelTest, AReplyOfTheFirstProtocolVersionIsRefused) {
  auto [parent, child] = UpgradeChannel::pair();
  const uint32_t pid = 4242;
  std::vector<unsigned char> payload(sizeof pid);
  std::memcpy(payload.data(), &pid, sizeof pid);
  sendRaw(child.fd(), kMagic, 1, static_cast<uint16_t>(UpgradeReply::kReady), sizeof pid, payload);
  try {
    parent.receiveReply(deadlineIn(kTimeout));
    ADD_FAILURE() << "a version 1 reply was accepted";
  } catch (const UpgradeProtocolError& error) {
    EXPECT_EQ(error.what(), "upgrade: protocol version 1, this build speaks version " + std::to_string(kVersion));
  }
}

TEST(UpgradeChannelTest, AForeignOrMislabelledMessageIsRefused) {
  auto [sender, receiver] = UpgradeChannel::pair();
  sendRaw(sender.fd(), 0x12345678, kVersion, kStateHeaderType, 0);
  EXPECT_EQ(receiveStateError(receiver), "upgrade: not an epoll-server upgrade message");
  sendRaw(sender.fd(), kMagic, kVersion, kStateHeaderType, 4);  // announces a payload it does not carry
  EXPECT_EQ(receiveStateError(receiver), "upgrade: state header message of the wrong length");
  sendRaw(sender.fd(), kMagic, kVersion, kStateHeaderType, 3, {1, 2, 3});  // too short for a state header
  EXPECT_EQ(receiveStateError(receiver), "upgrade: state header of the wrong length");
}

// The state's own stream: a dropped list announcing more entries than the bytes that follow.
TEST(UpgradeChannelTest, ADroppedListLongerThanTheStateIsRefused) {
  auto [sender, receiver] = UpgradeChannel::pair();
  std::vector<unsigned char> stream(8 + 4 + 4, 0);  // reloads; no counters; no workers
  const uint32_t dropped = 1000;
  stream.insert(stream.end(), reinterpret_cast<const unsigned char*>(&dropped),
                reinterpret_cast<const unsigned char*>(&dropped) + 4);
  const uint64_t stateBytes = stream.size();
  std::vector<unsigned char> header(16, 0);
  std::memcpy(header.data(), &stateBytes, 8);
  sendRaw(sender.fd(), kMagic, kVersion, kStateHeaderType, 16, header);
  sendRaw(sender.fd(), kMagic, kVersion, 3, static_cast<uint32_t>(stream.size()), stream);
  EXPECT_NE(receiveStateError(receiver).find("dropped list beyond the message"), std::string::npos);
}

TEST(UpgradeChannelTest, AStateCutShortByAClosedChannelIsRefused) {
  auto [sender, receiver] = UpgradeChannel::pair();
  // A state header announcing 100 bytes and no descriptor, then nothing: the sender died.
  std::vector<unsigned char> header(16, 0);
  header[0] = 100;
  sendRaw(sender.fd(), kMagic, kVersion, kStateHeaderType, 16, header);
  sender.releaseSocket().reset();
  EXPECT_EQ(receiveStateError(receiver), "upgrade: the other process closed the channel");
}

TEST(UpgradeChannelTest, AStateHeaderAnnouncingTooMuchIsRefusedBeforeAllocating) {
  auto [sender, receiver] = UpgradeChannel::pair();
  std::vector<unsigned char> header(16, 0xff);  // 2^64 - 1 bytes and 2 * (2^32 - 1) descriptors
  sendRaw(sender.fd(), kMagic, kVersion, kStateHeaderType, 16, header);
  EXPECT_EQ(receiveStateError(receiver), "upgrade: state header announces more than a server holds");
}

TEST(UpgradeChannelTest, RepliesCarryThePidOrTheReasonAndEndAtEof) {
  auto [parent, child] = UpgradeChannel::pair();
  parent.sendReply(UpgradeReply::kHello, deadlineIn(kTimeout));
  const auto hello = child.receiveReply(deadlineIn(kTimeout));
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->reply, UpgradeReply::kHello);
  child.sendReply(UpgradeReply::kPrepared, deadlineIn(kTimeout), 4242);
  child.sendReply(UpgradeReply::kReady, deadlineIn(kTimeout));
  child.sendReply(UpgradeReply::kFailed, deadlineIn(kTimeout), 0, "cannot import: EINVAL");
  const auto prepared = parent.receiveReply(deadlineIn(kTimeout));
  ASSERT_TRUE(prepared);
  EXPECT_EQ(prepared->reply, UpgradeReply::kPrepared);
  EXPECT_EQ(prepared->pid, 4242u);
  const auto ready = parent.receiveReply(deadlineIn(kTimeout));
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->reply, UpgradeReply::kReady);
  const auto failed = parent.receiveReply(deadlineIn(kTimeout));
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->reply, UpgradeReply::kFailed);
  EXPECT_EQ(failed->reason, "cannot import: EINVAL");
  child.releaseSocket().reset();
  EXPECT_FALSE(parent.receiveReply(deadlineIn(kTimeout)));
}

TEST(UpgradeChannelTest, AHelloCarriesTheMetricsListenerWhenThereIsOne) {
  auto [parent, child] = UpgradeChannel::pair();
  const Pipe pipe = makePipe();  // any descriptor crosses alike
  parent.sendHello(deadlineIn(kTimeout), pipe.write.get());
  const UniqueFd received = child.receiveHello(deadlineIn(kTimeout));
  ASSERT_TRUE(received);
  EXPECT_NE(received.get(), pipe.write.get());
  EXPECT_TRUE(samePipe(received.get(), pipe.read.get()));
  parent.sendHello(deadlineIn(kTimeout));
  EXPECT_FALSE(child.receiveHello(deadlineIn(kTimeout)));
}

// Version 2 predecessors sent no metrics socket with their hello: a successor of this version
// refuses theirs rather than bind a port the predecessor holds.
TEST(UpgradeChannelTest, AHelloOfTheSecondProtocolVersionIsRefused) {
  auto [parent, child] = UpgradeChannel::pair();
  sendRaw(parent.fd(), kMagic, 2, static_cast<uint16_t>(UpgradeReply::kHello), 0);
  try {
    child.receiveHello(deadlineIn(kTimeout));
    ADD_FAILURE() << "a version 2 hello was accepted";
  } catch (const UpgradeProtocolError& error) {
    EXPECT_EQ(error.what(), "upgrade: protocol version 2, this build speaks version " + std::to_string(kVersion));
  }
}

TEST(UpgradeChannelTest, ASuccessorExpectingAHelloRefusesAnythingElse) {
  auto [parent, child] = UpgradeChannel::pair();
  parent.sendReply(UpgradeReply::kGo, deadlineIn(kTimeout));
  try {
    child.receiveHello(deadlineIn(kTimeout));
    ADD_FAILURE() << "a go was taken for a hello";
  } catch (const UpgradeProtocolError& error) {
    EXPECT_STREQ(error.what(), "upgrade: expected a hello message, got go");
  }
}

TEST(UpgradeChannelTest, APeerThatSaysNothingEndsTheWaitAtTheDeadline) {
  auto [parent, child] = UpgradeChannel::pair();
  try {
    parent.receiveReply(deadlineIn(std::chrono::milliseconds(20)));
    ADD_FAILURE() << "no timeout";
  } catch (const UpgradeProtocolError& error) {
    EXPECT_STREQ(error.what(), "upgrade: timed out waiting for the other process");
  }
}

}  // namespace
}  // namespace epoll_echo::host
