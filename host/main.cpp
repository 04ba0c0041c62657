// main.cpp — epoll-server: parse the flags, block the handled signals, load the plugin, start one
// engine and serve until SIGINT/SIGTERM. Exit codes are in options.h and docs/epoll-server.md.
#include <signal.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "event_sources.h"
#include "loaded_engine.h"
#include "log.h"
#include "metrics_server.h"
#include "options.h"
#include "plugin_library.h"
#include "server.h"
#include "service_notify.h"
#include "socket_activation.h"
#include "stats_report.h"
#include "upgrade.h"

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

// The host's version always; the plugin's when there is one. A missing plugin is an answer
// (exit 0), a plugin that is there but unusable an error (exit 1, from PluginLibrary).
int printVersion(const Options& options) {
  printLine(std::string("epoll-server ") + hostVersion() + " (built against C ABI " +
            formatAbiVersion(EPOLL_ECHO_ABI_PACK(EPOLL_ECHO_ABI_MAJOR, EPOLL_ECHO_ABI_MINOR)) + ")");
  std::filesystem::path path;
  try {
    path = pluginPath(options);
  } catch (const PluginError& error) {
    printLine(std::string("plugin: missing (") + error.what() + ")");
    return kExitOk;
  }
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    printLine("plugin " + path.string() + ": missing (no such file)");
    return kExitOk;
  }
  const PluginLibrary plugin(path);
  printLine("plugin " + plugin.path().string() + ": " + plugin.describe());
  return kExitOk;
}

// Socket activation: the engine serves the inherited sockets instead of binding (ABI 1.1 import).
void importActivatedSockets(LoadedEngine& loaded, const ActivatedSockets& activated) {
  if (!loaded.library().supportsHandover()) {
    throw PluginError("socket activation needs a plugin with ABI 1.1 or later (epoll_echo_import_listener); " +
                      loaded.library().path().string() + " has ABI " + formatAbiVersion(loaded.library().abiVersion()));
  }
  logLine("socket activation: serving " + countOf(activated.size(), "inherited listening socket") +
          " from fd 3; --port and --bind are ignored");
  for (std::size_t index = 0; index < activated.size(); ++index) loaded.engine().importListener(activated.fd(index));
}

// The backend serving, as --backend spells it. A plugin older than ABI 1.4 leaves the field zero:
// it has only epoll.
std::string backendName(uint32_t backend) {
  return backend == EPOLL_ECHO_BACKEND_IO_URING ? "backend io_uring" : "backend epoll";
}

void notify(const std::string& state) {
  const std::string problem = notifyServiceManager(state);
  if (!problem.empty()) logLine("warning: cannot notify the service manager: " + problem);
}

// The engine of a process started by an upgrade (SIGUSR2): created while the predecessor still
// serves, then the predecessor's sockets imported and served at once (it has paused by then).
std::unique_ptr<LoadedEngine> takeOver(const std::filesystem::path& path, const Options& options,
                                       Succession& succession, std::string& timings) {
  try {
    auto serving = std::make_unique<LoadedEngine>(path, options);
    if (!serving->library().supportsHandover()) {
      throw PluginError("an upgrade needs a plugin with ABI 1.1 or later; " + path.string() + " has ABI " +
                        formatAbiVersion(serving->library().abiVersion()));
    }
    succession.receiveAhead(serving->engine());
    succession.receiveState();
    const auto received = std::chrono::steady_clock::now();
    succession.importInto(serving->engine());
    const auto imported = std::chrono::steady_clock::now();
    if (succession.startedPaused()) {
      serving->engine().resume();
    } else {
      serving->engine().start();
    }
    const auto started = std::chrono::steady_clock::now();
    succession.awaitGo();
    timings = "sent ahead and imported " + formatMilliseconds(succession.aheadWait()) + " after prepared" +
              (succession.startedPaused()
                   ? " (the engine brought up paused on them in " + formatMilliseconds(succession.startPausedTime()) + ")"
                   : "") +
              ", the pause's state received " + formatMilliseconds(succession.stateWait()) + " after, imported in " +
              formatMilliseconds(imported - received) + ", started in " + formatMilliseconds(started - imported);
    if (succession.aheadDeferred() != 0) {
      timings += "; " + countOf(succession.aheadDeferred(), "connection") +
                 " sent ahead could not be imported then, left to the pause (first: " +
                 succession.aheadDeferredReason() + ")";
    }
    return serving;
  } catch (const std::exception& error) {
    succession.fail(error.what());
    throw;
  }
}

int serve(const Options& options, std::optional<Program> program) {
  // Before the plugin is loaded: its threads inherit this mask, so only the signalfd sees these.
  blockServerSignals();
  // A closed stdout or stderr pipe must not kill a running server; writes then fail with EPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  const std::chrono::seconds upgradeTimeout(options.upgradeTimeoutSeconds);
  std::optional<Succession> succession = Succession::fromEnvironment(upgradeTimeout);
  ActivatedSockets activated = ActivatedSockets::fromEnvironment();
  SignalFd signals;
  // Bound before the engine starts: a taken metrics port fails the start before anything serves.
  std::unique_ptr<MetricsServer> metrics;
  if (options.metricsListen) {
    // After an upgrade, the predecessor's socket: its clients queue there until this one accepts.
    UniqueFd inherited = succession ? succession->takeMetricsListener() : UniqueFd();
    try {
      metrics = std::make_unique<MetricsServer>(*options.metricsListen, std::move(inherited));
    } catch (const std::exception& error) {
      if (succession) succession->fail(error.what());
      throw;
    }
  }
  const std::filesystem::path path = pluginPath(options);
  // Like every reload, the first engine runs from a sealed memory copy (plugin_image.h): a
  // truncated file is refused instead of crashing the loader, and a `cp` over the plugin
  // rewrites a file nobody has mapped.
  std::unique_ptr<LoadedEngine> serving;
  std::string takeOverTimings;
  if (succession) {
    serving = takeOver(path, options, *succession, takeOverTimings);
  } else {
    serving = std::make_unique<LoadedEngine>(path, options);
    if (!activated.empty()) importActivatedSockets(*serving, activated);
    serving->engine().start();
  }
  // The engine holds its own duplicates (and hands them over on a reload): ours are not needed.
  const std::string bindAddress = activated.empty() ? options.bindAddress : activated.bindAddress();
  const bool socketActivated = !activated.empty();
  activated.close();
  const std::string metricsAddress = metrics ? metrics->boundAddress() : "";
  Server server(std::move(serving), path, options, signals, std::move(metrics), std::move(program),
                succession ? succession->stats() : CarriedStats{});
  if (!metricsAddress.empty()) logLine("metrics on http://" + metricsAddress + "/metrics");
  // Logged only when the host holds every descriptor it needs (the --watch inotify fd included):
  // after this line it opens none except for a reload or a metrics scrape.
  const epoll_echo_stats_t stats = server.stats();
  const std::string address = listenAddress(bindAddress, stats.port);
  logLine("listening on " + address + " (" + countOf(stats.listeners, "listener") + ", " +
          (socketActivated ? "socket-activated, " : "") + backendName(server.serving().engine().stats().backend) +
          ", plugin " + path.string() + ", " + server.serving().library().describe() +
          (options.watch ? ", watching for a new build" : "") + ")");
  if (succession) {
    // Before the predecessor exits: a service manager then follows the new main PID
    // (NotifyAccess=all, docs/operations.md) instead of seeing the service end.
    notify("MAINPID=" + std::to_string(::getpid()) + "\nREADY=1\nSTATUS=listening on " + address);
    // Logged before the predecessor learns it may exit: its "upgraded:" line follows this one.
    const HandoverCounts counts = succession->counts();
    logLine("upgrade: pid " + std::to_string(::getpid()) + " took over " + countOf(counts.listeners, "listener") +
            " and " + countOf(counts.connections, "connection") + " (" + takeOverTimings + ")");
    succession->confirmServing();
  } else {
    notify("READY=1\nSTATUS=listening on " + address);
  }
  return server.run();
  // The server's destructor destroys the serving engine and unloads its plugin.
}

int runHost(int argc, const char* const argv[]) {
  const CommandLine commandLine = parseCommandLine(argc, argv, availableCpuCount());
  // Resolved now: a later upgrade runs whatever file is at this path then.
  std::optional<Program> program;
  if (const auto path = resolveExecutable(argc > 0 ? argv[0] : "")) {
    program = Program{*path, std::vector<std::string>(argv + std::min(argc, 1), argv + argc)};
  }
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
  return serve(commandLine.options, std::move(program));
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
