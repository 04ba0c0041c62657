// loaded_engine.cpp — loading, and unloading in the order the C ABI requires.
#include "loaded_engine.h"

namespace epoll_echo::host {

LoadedEngine::LoadedEngine(const std::filesystem::path& pluginPath, const Options& options)
    : library_(std::make_unique<PluginLibrary>(pluginPath)),
      engine_(std::make_unique<EngineHandle>(*library_, options)) {}

LoadedEngine::~LoadedEngine() { release(); }

void LoadedEngine::release() {
  engine_.reset();
  library_.reset();
}

}  // namespace epoll_echo::host
