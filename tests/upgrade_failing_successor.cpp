// upgrade_failing_successor.cpp — a new process that speaks the upgrade protocol up to a point
// and then fails there, for upgrade_test: "exit" says it is prepared and exits at once, "hang"
// says it is prepared and never reads the state, "refuse" reads the state sent ahead of the
// pause and gives up; "exit-paused" and "refuse-paused" take the state sent ahead, say they have
// imported it (the old process pauses), then exit, or read the pause's state and give up;
// "report-changes GATE" takes the state sent ahead, creates GATE.ahead, waits for GATE to exist,
// then says it has imported it and gives up in the pause with what changed since as its reason.
// Usage: upgrade_failing_successor MODE [GATE] (the channel named by EPOLL_ECHO_UPGRADE_FD).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
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

// Waits until `path` exists (the test opens the gate), polling: at most until the deadline.
void waitForFile(const std::string& path, std::chrono::steady_clock::time_point deadline) {
  while (::access(path.c_str(), F_OK) != 0) {
    if (std::chrono::steady_clock::now() >= deadline) throw std::runtime_error("the gate " + path + " never opened");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

int reportChanges(const std::string& gate, std::chrono::steady_clock::time_point deadline) {
  UpgradeChannel channel = sayPrepared(deadline);
  channel.receiveState(deadline);
  std::ofstream(gate + ".ahead").close();
  waitForFile(gate, deadline);
  channel.sendReply(UpgradeReply::kPresented, deadline);
  const epoll_echo::host::CarriedState pause = channel.receiveState(deadline);
  channel.sendReply(UpgradeReply::kFailed, deadline, 0,
                    "changes: " + std::to_string(pause.dropped.size()) + " closed, " +
                        std::to_string(pause.revised.size()) + " revised, " + std::to_string(pause.connections.size()) +
                        " new");
  return 9;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc >= 2 ? argv[1] : "";
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
    if (mode == "report-changes" && argc == 3) return reportChanges(argv[2], deadline);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "upgrade_failing_successor: %s\n", error.what());
    return 1;
  }
  std::fprintf(stderr, "usage: upgrade_failing_successor exit|hang|refuse|exit-paused|refuse-paused|report-changes GATE\n");
  return 2;
}
