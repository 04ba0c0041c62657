// reload.cpp — the hand-over sequence of api/epoll_echo.h ("Hot-swap hand-over"), with every
// failure before the new engine starts rolled back onto the old one.
#include "reload.h"

#include <system_error>

#include "log.h"

namespace epoll_echo::host {
namespace {

std::unique_ptr<LoadedEngine> loadCopy(const std::filesystem::path& pluginPath, const Options& options) {
  std::unique_ptr<LoadedEngine> next;
  try {
    next = std::make_unique<LoadedEngine>(pluginPath, options);
  } catch (const PluginError& error) {
    throw ReloadError(pluginPath, error.what(), ReloadFailure::kNotLoadable);
  } catch (const std::exception& error) {
    throw ReloadError(pluginPath, error.what(), ReloadFailure::kRefused);
  }
  if (!next->library().supportsHandover()) {
    throw ReloadError(pluginPath,
                      "plugin " + pluginPath.string() + " has ABI " + formatAbiVersion(next->library().abiVersion()) +
                          ", a hot-swap needs ABI 1.1 or later",
                      ReloadFailure::kRefused);
  }
  return next;
}

HandoverCounts handOver(const EngineHandle& from, EngineHandle& to) {
  HandoverCounts counts;
  from.handoverCounts(counts.listeners, counts.connections);
  for (int fd : from.exportDistinctListeners(counts.listeners)) to.importListener(fd);
  for (uint32_t index = 0; index < counts.connections; ++index) to.importConnection(from.exportConnection(index));
  return counts;
}

// Puts `current` back to work after a failed hand-over. If even that fails, nothing serves: say so.
void rollBack(LoadedEngine& current) {
  try {
    current.engine().resume();
  } catch (const std::exception& error) {
    logLine(std::string("error: the old engine cannot resume after a failed reload, nothing is serving: ") +
            error.what());
  }
}

}  // namespace

std::unique_ptr<LoadedEngine> reloadEngine(LoadedEngine& current, const std::filesystem::path& pluginPath,
                                           const Options& options, HandoverCounts& moved) {
  if (!current.library().supportsHandover()) {
    throw ReloadError(pluginPath,
                      "the serving plugin " + current.library().path().string() + " has ABI " +
                          formatAbiVersion(current.library().abiVersion()) + " and cannot hand over (needs 1.1)",
                      ReloadFailure::kRefused);
  }
  std::unique_ptr<LoadedEngine> next = loadCopy(pluginPath, options);
  try {
    current.engine().pause();
  } catch (const std::exception& error) {
    throw ReloadError(pluginPath, error.what(), ReloadFailure::kRefused);
  }
  try {
    moved = handOver(current.engine(), next->engine());
    next->engine().start();
  } catch (const std::exception& error) {
    next.reset();  // closes the new engine's duplicates first, as the ABI asks
    rollBack(current);
    throw ReloadError(pluginPath, error.what(), ReloadFailure::kRefused);
  }
  try {
    current.engine().handoverComplete();
  } catch (const std::exception& error) {
    // The new engine serves already; destroying the old one still closes only its own copies.
    logLine(std::string("warning: reload of ") + pluginPath.string() + ": " + error.what());
  }
  return next;
}

}  // namespace epoll_echo::host
