// main.cpp — epoll-server: parse the flags, block the handled signals, load the plugin, start one
// engine and serve until SIGINT/SIGTERM. Exit codes are in options.h and docs/epoll-server.md.
#include <signal.h>

#include <exception>
#include <filesystem>
#include <string>

#include "engine.h"
#include "event_sources.h"
#include "log.h"
#include "options.h"
#include "plugin_library.h"
#include "server.h"

namespace epoll_echo::host {
namespace {

std::filesystem::path pluginPath(const Options& options) {
  return options.pluginPath.empty() ? findDefaultPlugin() : std::filesystem::path(options.pluginPath);
}

// "127.0.0.1:8080", "[::1]:8080", "*:8080" (all interfaces): the form tests and scripts parse.
std::string listenAddress(const std::string& bindAddress, uint32_t port) {
  std::string host = bindAddress.empty() ? "*" : bindAddress;
  if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
  return host + ":" + std::to_string(port);
}

int printVersion(const Options& options) {
  printLine(std::string("epoll-server ") + hostVersion() + " (built against C ABI " +
            formatAbiVersion(EPOLL_ECHO_ABI_PACK(EPOLL_ECHO_ABI_MAJOR, EPOLL_ECHO_ABI_MINOR)) + ")");
  const PluginLibrary plugin(pluginPath(options));
  printLine("plugin " + plugin.path().string() + ": " + plugin.describe());
  return kExitOk;
}

int serve(const Options& options) {
  // Before the plugin is loaded: its threads inherit this mask, so only the signalfd sees these.
  blockServerSignals();
  // A closed stdout or stderr pipe must not kill a running server; writes then fail with EPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  SignalFd signals;
  const PluginLibrary plugin(pluginPath(options));
  Engine engine(plugin, options);
  engine.start();
  Server server(engine, plugin, options, signals);
  // Logged only when the host holds every descriptor it needs: after this line it opens none.
  const epoll_echo_stats_t stats = engine.stats();
  logLine("listening on " + listenAddress(options.bindAddress, stats.port) + " (" +
          std::to_string(stats.listeners) + " listeners, plugin " + plugin.path().string() + ", " +
          plugin.describe() + ")");
  return server.run();
  // Destruction order: the server, then the engine (destroy), then the plugin (unload).
}

int runHost(int argc, const char* const argv[]) {
  const CommandLine commandLine = parseCommandLine(argc, argv, availableCpuCount());
  switch (commandLine.action) {
    case Action::kHelp:
      printLine(commandLine.message);
      return kExitOk;
    case Action::kUsageError:
      logLine(commandLine.message);
      return kExitUsage;
    case Action::kVersion:
      return printVersion(commandLine.options);
    case Action::kRun:
      break;
  }
  return serve(commandLine.options);
}

}  // namespace
}  // namespace epoll_echo::host

int main(int argc, char* argv[]) {
  try {
    return epoll_echo::host::runHost(argc, argv);
  } catch (const std::exception& error) {
    epoll_echo::host::logLine(error.what());
    return epoll_echo::host::kExitFailure;
  }
}
