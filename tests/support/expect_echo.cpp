// expect_echo.cpp — send, receive, compare: the echo check shared by engine and server tests.
#include "support/expect_echo.h"

#include <gtest/gtest.h>

#include <utility>

#include "support/timeouts.h"

namespace epoll_echo::test {

void expectEcho(int socket, const std::string& message) {
  std::string error;
  ASSERT_TRUE(sendAll(socket, message, deadlineIn(kIoTimeout), &error)) << error;
  std::string echoed(message.size(), '\0');
  ASSERT_TRUE(receiveExactly(socket, echoed.data(), echoed.size(), deadlineIn(kIoTimeout), &error)) << error;
  EXPECT_EQ(echoed, message);
}

void expectEchoOnNewConnection(uint16_t port, const std::string& message, const std::string& host,
                               UniqueFd* connection) {
  std::string error;
  UniqueFd client = connectTcp(host, port, deadlineIn(kIoTimeout), &error);
  ASSERT_TRUE(client) << error;
  expectEcho(client.get(), message);
  if (connection != nullptr) *connection = std::move(client);
}

}  // namespace epoll_echo::test
