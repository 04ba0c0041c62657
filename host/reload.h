// reload.h — the hot-swap: load a fresh copy of the plugin file and move the serving engine's
// listening sockets and live connections into a new engine from it, or leave the old one serving.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include "loaded_engine.h"
#include "options.h"
#include "reload_policy.h"

namespace epoll_echo::host {

// A rejected reload; what() is one line, "reload of PATH rejected: REASON". The old engine serves on.
class ReloadError : public std::runtime_error {
 public:
  ReloadError(const std::filesystem::path& pluginPath, const std::string& reason, ReloadFailure failure)
      : std::runtime_error("reload of " + pluginPath.string() + " rejected: " + reason),
        reason_(reason),
        failure_(failure) {}
  const std::string& reason() const { return reason_; }
  ReloadFailure failure() const { return failure_; }  // whether the same file is worth a retry

 private:
  std::string reason_;
  ReloadFailure failure_;
};

struct HandoverCounts {
  uint32_t listeners = 0;
  uint32_t connections = 0;
};

// Loads a private copy of `pluginPath` (PluginImage: a sealed memfd, so glibc cannot hand back
// the already-loaded object), creates an engine with `options`, pauses `current`, hands every
// listener and connection over and starts the new engine. On success `current` is STOPPED
// (hand-over complete) and the new engine serves; the caller releases `current`. On failure
// throws ReloadError after destroying and unloading the new engine and resuming `current`.
// Main thread only.
std::unique_ptr<LoadedEngine> reloadEngine(LoadedEngine& current, const std::filesystem::path& pluginPath,
                                           const Options& options, HandoverCounts& moved);

}  // namespace epoll_echo::host
