// loaded_engine.h — one plugin file loaded with Boost.DLL and the engine created from it, torn down
// in the only safe order: destroy the engine, unload the library, then delete its reload copy.
#pragma once

#include <filesystem>
#include <memory>

#include "engine.h"
#include "options.h"
#include "plugin_library.h"

namespace epoll_echo::host {

// Owns a PluginLibrary and one Engine made from it, and, for a hot-swap copy, the copy's file.
// The engine is created, not started. Main thread only (load and unload happen here).
class LoadedEngine {
 public:
  // Loads `loadPath` and creates an engine with `options`. With `temporaryCopy`, the file is a
  // private copy owned from now on: deleted on failure here and after unloading. Throws
  // PluginError or EngineError.
  LoadedEngine(const std::filesystem::path& loadPath, bool temporaryCopy, const Options& options);
  LoadedEngine(const LoadedEngine&) = delete;
  LoadedEngine& operator=(const LoadedEngine&) = delete;
  ~LoadedEngine();  // release()

  PluginLibrary& library() { return *library_; }
  const PluginLibrary& library() const { return *library_; }
  Engine& engine() { return *engine_; }
  const Engine& engine() const { return *engine_; }

  // Destroys the engine (stopping it if it runs), unloads the library and, for a copy, checks
  // with dlopen(RTLD_NOLOAD) that the object is really gone before deleting the file; a copy
  // that is still mapped is kept and a warning logged. Idempotent.
  void release();

 private:
  std::filesystem::path loadPath_;
  bool temporaryCopy_;
  std::unique_ptr<PluginLibrary> library_;
  std::unique_ptr<Engine> engine_;
};

// True while `path` is still mapped in this process: dlopen(path, RTLD_NOW | RTLD_NOLOAD).
bool isStillLoaded(const std::filesystem::path& path);

// Copies the plugin file to a new hidden file beside it (".libepoll_echo.so.reload-PID-N"): a new
// inode, which glibc cannot confuse with a loaded object, and one that a later `cp` over the
// original cannot rewrite under a running engine. Throws PluginError naming both paths.
std::filesystem::path makePrivateCopy(const std::filesystem::path& pluginPath);

// Deletes a reload copy; logs (never throws) if that fails.
void removeCopy(const std::filesystem::path& path);

}  // namespace epoll_echo::host
