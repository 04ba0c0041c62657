// plugin_library.h — one loaded libepoll_echo.so (Boost.DLL, from a sealed private copy): every
// epoll_echo_* function checked with has() and resolved, and the ABI major compared with the host's.
#pragma once

#include <epoll_echo.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include <boost/dll/shared_library.hpp>

#include "plugin_image.h"

namespace epoll_echo::host {

// The C ABI as function pointers; valid while the PluginLibrary that filled them is alive.
struct PluginFunctions {
#define EPOLL_ECHO_HOST_MEMBER(name, since) decltype(&epoll_echo_##name) name = nullptr;
  EPOLL_ECHO_FUNCTION_TABLE(EPOLL_ECHO_HOST_MEMBER)
#undef EPOLL_ECHO_HOST_MEMBER
};

// Owns the one handle of a plugin file, loaded from its PluginImage (never from the path itself);
// the destructor unloads it, so every engine made from it must be destroyed first. Symbols are resolved with
// shared_library::get() after has() rather than boost::dll::import(): import() copies the library (one more dlopen
// reference) per symbol, which would hide when the plugin really unloads; a hot-swap needs that moment explicit. Load
// and unload on the main thread; the function pointers may be called from any thread.
class PluginLibrary {
 public:
  // Copies and checks `path` (PluginImage), then loads the copy with RTLD_NOW (a missing
  // dependency fails here, not mid-run). Throws PluginError.
  explicit PluginLibrary(const std::filesystem::path& path);
  PluginLibrary(const PluginLibrary&) = delete;
  PluginLibrary& operator=(const PluginLibrary&) = delete;
  // Unloads, then checks in /proc/self/maps that the copy is really gone. One still mapped
  // (another dlopen() handle, a UNIQUE symbol) is reported in the log and its memfd kept open.
  ~PluginLibrary();

  const std::filesystem::path& path() const { return path_; }
  const PluginFunctions& functions() const { return functions_; }
  uint32_t abiVersion() const { return abiVersion_; }
  // True for ABI 1.1 and later: the hand-over functions are resolved and a hot-swap may use it.
  bool supportsHandover() const { return functions_.pause != nullptr; }
  // True for ABI 1.5 and later: an imported connection can be dropped again before start, and an
  // exported one leaves its worker's epoll set before it is closed, so a copy may be kept while
  // the engine is resumed. An upgrade then sends the connections ahead of the pause.
  bool supportsDrop() const { return functions_.drop_connection != nullptr; }
  const char* buildId() const;  // never null: "unknown" when the plugin returns null

  // "version 1.0.0, ABI 1.0, build id 3f2a…": for the start log line and --version.
  std::string describe() const;

 private:
  void load();
  void unload() noexcept;           // see the destructor
  std::string loaderError() const;  // dlerror(), naming the plugin's path instead of /proc/self/fd/N
  void checkAbiVersion();
  void resolveFunctions();
  // Resolves `name`; throws PluginError naming path, symbol and dlerror() when it is missing.
  template <typename Function>
  void resolve(Function*& target, const char* name, const char* missingMeaning);

  std::filesystem::path path_;
  PluginImage image_;  // declared before library_: outlives the mapping made from it
  boost::dll::shared_library library_;
  PluginFunctions functions_;
  uint32_t abiVersion_ = 0;
};

// The plugin to load without --plugin: <exe dir>/libepoll_echo.so (build tree), then
// <exe dir>/../lib/epoll_echo/libepoll_echo.so (installed). Throws PluginError listing both.
std::filesystem::path findDefaultPlugin();

// "1.0" from a packed EPOLL_ECHO_ABI_PACK value.
std::string formatAbiVersion(uint32_t packed);

}  // namespace epoll_echo::host
