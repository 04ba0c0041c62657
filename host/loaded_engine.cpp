// loaded_engine.cpp — loading, and the verified unload that makes deleting a reload copy safe.
#include "loaded_engine.h"

#include <dlfcn.h>

#include <system_error>

#include "log.h"

namespace epoll_echo::host {

LoadedEngine::LoadedEngine(const std::filesystem::path& loadPath, bool temporaryCopy, const Options& options)
    : loadPath_(loadPath), temporaryCopy_(temporaryCopy) {
  try {
    library_ = std::make_unique<PluginLibrary>(loadPath);
    engine_ = std::make_unique<Engine>(*library_, options);
  } catch (...) {
    release();  // a destructor does not run for a half-built object: clean up the copy here
    throw;
  }
}

LoadedEngine::~LoadedEngine() { release(); }

void LoadedEngine::release() {
  engine_.reset();
  const bool wasLoaded = library_ != nullptr;
  library_.reset();
  if (!temporaryCopy_) return;
  temporaryCopy_ = false;  // idempotent: the file is dealt with once
  // Deleting a still-mapped copy would leave "(deleted)" code in the process that nothing can
  // unload by name any more; keeping it makes the leak visible in the directory instead.
  if (wasLoaded && isStillLoaded(loadPath_)) {
    logLine("warning: " + loadPath_.string() + " is still loaded after unloading it (another handle holds it); " +
            "keeping the file");
    return;
  }
  removeCopy(loadPath_);
}

bool isStillLoaded(const std::filesystem::path& path) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (handle == nullptr) return false;
  dlclose(handle);  // RTLD_NOLOAD still took a reference: give it back
  return true;
}

std::filesystem::path makePrivateCopy(const std::filesystem::path& pluginPath) {
  static unsigned sequence = 0;  // main thread only
  const std::filesystem::path copy =
      pluginPath.parent_path() / ("." + pluginPath.filename().string() + ".reload-" + std::to_string(::getpid()) + "-" +
                                  std::to_string(++sequence));
  std::error_code error;
  // copy_file creates the target (O_EXCL semantics with copy_options::none): always a new inode.
  if (!std::filesystem::copy_file(pluginPath, copy, std::filesystem::copy_options::none, error)) {
    removeCopy(copy);
    throw PluginError("cannot copy " + pluginPath.string() + " to " + copy.string() + ": " + error.message());
  }
  return copy;
}

void removeCopy(const std::filesystem::path& path) {
  std::error_code error;
  if (!std::filesystem::remove(path, error) && error) {
    logLine("warning: cannot delete the reload copy " + path.string() + ": unlink: " + error.message());
  }
}

}  // namespace epoll_echo::host
