// main.cpp — epoll-server: parse the flags, block the handled signals, load the plugin, start one
// engine and serve until SIGINT/SIGTERM. Exit codes are in options.h and docs/epoll-server.md.
#include <signal.h>

#include <exception>
#include <filesystem>
#include <memory>
#include <string>

#include "loaded_engine.h"
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
  const std::filesystem::path path = pluginPath(options);
  // The first engine runs from the file itself; reloads run from private copies (reload.h).
  auto serving = std::make_unique<LoadedEngine>(path, false, options);
  serving->engine().start();
  Server server(std::move(serving), path, options, signals);
  // Logged only when the host holds every descriptor it needs (the --watch inotify fd included):
  // after this line it opens none except for a reload.
  const epoll_echo_stats_t stats = server.stats();
  logLine("listening on " + listenAddress(options.bindAddress, stats.port) + " (" +
          std::to_string(stats.listeners) + " listeners, plugin " + path.string() + ", " +
          server.serving().library().describe() + (options.watch ? ", watching for a new build" : "") + ")");
  return server.run();
  // The server's destructor destroys the serving engine, unloads its plugin and deletes its copy.
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
