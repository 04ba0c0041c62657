// expect_echo.h — the one echo check of the tests: a message sent on a connection must come back
// unchanged, each way within kIoTimeout.
#pragma once

#include <cstdint>
#include <string>

#include "support/net.h"

namespace epoll_echo::test {

// Sends `message` on `socket` and expects exactly it back. Failures are fatal to the caller's
// test only under ASSERT_NO_FATAL_FAILURE; otherwise the test goes on, as after an EXPECT.
void expectEcho(int socket, const std::string& message);

// Connects to host:port, then expectEcho(). With `connection`, the socket stays open there.
void expectEchoOnNewConnection(uint16_t port, const std::string& message, const std::string& host = "127.0.0.1",
                               UniqueFd* connection = nullptr);

}  // namespace epoll_echo::test
