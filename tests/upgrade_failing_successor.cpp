// upgrade_failing_successor.cpp — a new process that speaks the upgrade protocol up to a point
// and then fails there, for upgrade_test: "exit" says it is prepared and exits at once, "hang"
// says it is prepared and never reads the state, "refuse" reads the state sent ahead of the
// pause and gives up; "exit-paused" and "refuse-paused" take the state sent ahead, say they have
// imported it (the old process pauses), then exit, or read the pause's state and give up.
// Usage: upgrade_failing_successor MODE (the channel named by EPOLL_ECHO_UPGRADE_FD).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>

#include "upgrade_channel.h"

namespace {

using epoll_echo::host::UpgradeChannel;
using epoll_echo::host::UpgradeReply;

constexpr auto kTimeout = std::chrono::seconds(60);

// Reads the old process's hello and says "prepared", as a successor does once its engine exists.
UpgradeChannel sayPrepared(std::chrono::steady_clock::time_point deadline) {
  const char* text = std::getenv(epoll_echo::host::kUpgradeFdVariable);
  if (text == nullptr) throw std::runtime_error("no upgrade channel");
  UpgradeChannel channel{epoll_echo::UniqueFd(std::stoi(text))};
  channel.receiveHello(deadline);  // and the metrics listener it may carry, closed at once
  channel.sendReply(UpgradeReply::kPrepared, deadline, static_cast<uint32_t>(::getpid()));
  return channel;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc == 2 ? argv[1] : "";
  const auto deadline = std::chrono::steady_clock::now() + kTimeout;
  try {
    if (mode == "exit") {
      sayPrepared(deadline);
      return 4;
    }
    if (mode == "hang") {
      UpgradeChannel channel = sayPrepared(deadline);
      std::this_thread::sleep_for(kTimeout);  // the old process kills it long before
      return 5;
    }
    if (mode == "refuse") {
      UpgradeChannel channel = sayPrepared(deadline);
      channel.receiveState(deadline);
      channel.sendReply(UpgradeReply::kFailed, deadline, 0, "refused by the test");
      return 6;
    }
    if (mode == "exit-paused" || mode == "refuse-paused") {
      UpgradeChannel channel = sayPrepared(deadline);
      channel.receiveState(deadline);
      channel.sendReply(UpgradeReply::kPresented, deadline);
      if (mode == "exit-paused") return 7;
      channel.receiveState(deadline);
      channel.sendReply(UpgradeReply::kFailed, deadline, 0, "refused in the pause by the test");
      return 8;
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "upgrade_failing_successor: %s\n", error.what());
    return 1;
  }
  std::fprintf(stderr, "usage: upgrade_failing_successor exit|hang|refuse|exit-paused|refuse-paused\n");
  return 2;
}
