// loaded_engine.h — one plugin file loaded with Boost.DLL and the engine created from it, torn down
// in the only safe order: destroy the engine, then unload the library.
#pragma once

#include <filesystem>
#include <memory>

#include "engine_handle.h"
#include "options.h"
#include "plugin_library.h"

namespace epoll_echo::host {

// Owns a PluginLibrary and one EngineHandle made from it. The engine is created, not started. Main
// thread only (load and unload happen here).
class LoadedEngine {
 public:
  // Loads a private copy of `pluginPath` (PluginImage) and creates an engine with `options`.
  // Throws PluginError or PluginCallError.
  LoadedEngine(const std::filesystem::path& pluginPath, const Options& options);
  LoadedEngine(const LoadedEngine&) = delete;
  LoadedEngine& operator=(const LoadedEngine&) = delete;
  ~LoadedEngine();  // release()

  PluginLibrary& library() { return *library_; }
  const PluginLibrary& library() const { return *library_; }
  EngineHandle& engine() { return *engine_; }
  const EngineHandle& engine() const { return *engine_; }

  // Destroys the engine (stopping it if it runs), then unloads the library, which checks that
  // its copy is really unmapped (~PluginLibrary). Idempotent.
  void release();

 private:
  std::unique_ptr<PluginLibrary> library_;
  std::unique_ptr<EngineHandle> engine_;
};

}  // namespace epoll_echo::host
