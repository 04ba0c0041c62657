// plugin_library.cpp — loading and checking the plugin. Boost's own error text is not used: for a
// failed load or a missing symbol it ends with an errno string that has nothing to do with the
// cause ("Bad file descriptor"), so each message is built from the path, symbol and dlerror().
#include "plugin_library.h"

#include <dlfcn.h>

#include <system_error>

#include <boost/dll/runtime_symbol_info.hpp>

#include "log.h"

namespace epoll_echo::host {
namespace {

// A function, not an inline `minor >= since`: with since = 0 that comparison is always true and
// -Wtype-limits says so for every 1.0 function.
bool promises(uint32_t minor, uint32_t since) { return minor >= since; }

// What a missing function means: a broken plugin, or one that claims a minor it does not have.
std::string incompleteMeaning(uint32_t since) {
  if (since == 0) return "is an incomplete epoll-echo plugin";
  return "is an incomplete epoll-echo ABI " + std::to_string(EPOLL_ECHO_ABI_MAJOR) + "." + std::to_string(since) +
         " plugin";
}

constexpr const char* kPluginFileName = "libepoll_echo.so";

}  // namespace

PluginLibrary::PluginLibrary(const std::filesystem::path& path) : path_(path), image_(path) {
  try {
    load();
    checkAbiVersion();
    resolveFunctions();
  } catch (...) {
    unload();  // a destructor does not run for a half-built object
    throw;
  }
}

PluginLibrary::~PluginLibrary() { unload(); }

void PluginLibrary::unload() noexcept {
  if (!library_.is_loaded()) return;
  library_.unload();
  // Closing the memfd of a copy that is still mapped would free its fd number, and a later copy
  // given the same /proc/self/fd/N name would be mistaken by glibc for this still-loaded object.
  try {
    if (!image_.isMapped()) return;
    logLine("warning: the unloaded plugin " + path_.string() + " (" + image_.loadPath() +
            ") is still mapped (RTLD_NODELETE, or another handle holds it); keeping its memory copy open");
  } catch (...) {
    // Out of memory while checking: assume the worst.
  }
  image_.keepOpenForever();
}

std::string PluginLibrary::loaderError() const {
  const char* text = dlerror();
  if (text == nullptr) return "no dlerror() detail";
  std::string message = text;
  const std::string loadName = image_.loadPath() + ":";
  for (std::size_t at = message.find(loadName); at != std::string::npos; at = message.find(loadName, at)) {
    message.replace(at, loadName.size() - 1, path_.string());
    at += path_.string().size() + 1;
  }
  return message;
}

void PluginLibrary::load() {
  dlerror();  // clear a stale message so the one read below is this load's
  boost::dll::fs::error_code error;
  library_.load(image_.loadPath(), error, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  if (error) {
    // Boost calls no dl* function between the failed dlopen() and here, so dlerror() still holds
    // the loader's reason ("undefined symbol: ...").
    throw PluginError("cannot load plugin " + path_.string() + ": " + loaderError());
  }
}

template <typename Function>
void PluginLibrary::resolve(Function*& target, const char* name, const char* missingMeaning) {
  if (!library_.has(name)) {
    dlerror();
    dlsym(library_.native(), name);  // has() discarded the loader's reason: ask again for it
    throw PluginError(path_.string() + " " + missingMeaning + ": symbol " + name + " not found (" + loaderError() +
                      ")");
  }
  target = &library_.get<Function>(name);
}

void PluginLibrary::checkAbiVersion() {
  // The version function comes first: a different major may have different symbols, and a file
  // without it is not a plugin at all rather than a broken one.
  resolve(functions_.abi_version, "epoll_echo_abi_version", "is not an epoll-echo plugin");
  abiVersion_ = functions_.abi_version();
  if (EPOLL_ECHO_ABI_MAJOR_OF(abiVersion_) != EPOLL_ECHO_ABI_MAJOR) {
    throw PluginError("plugin " + path_.string() + " has ABI " + formatAbiVersion(abiVersion_) +
                      ", but this epoll-server needs ABI major " + std::to_string(EPOLL_ECHO_ABI_MAJOR) +
                      " (built against " +
                      formatAbiVersion(EPOLL_ECHO_ABI_PACK(EPOLL_ECHO_ABI_MAJOR, EPOLL_ECHO_ABI_MINOR)) + ")");
  }
}

void PluginLibrary::resolveFunctions() {
  const uint32_t minor = EPOLL_ECHO_ABI_MINOR_OF(abiVersion_);
  // Every function the plugin's minor promises, so a 1.1 plugin with a partial hand-over set is
  // refused at load rather than failing mid-hand-over; later functions stay null (1.0 plugin).
#define EPOLL_ECHO_HOST_RESOLVE(name, since) \
  if (promises(minor, since)) resolve(functions_.name, "epoll_echo_" #name, incompleteMeaning(since).c_str());
  EPOLL_ECHO_FUNCTION_TABLE(EPOLL_ECHO_HOST_RESOLVE)
#undef EPOLL_ECHO_HOST_RESOLVE
}

const char* PluginLibrary::buildId() const {
  const char* buildId = functions_.build_id();
  return buildId ? buildId : "unknown";
}

std::string PluginLibrary::describe() const {
  const char* version = functions_.version();
  const char* buildId = functions_.build_id();
  return std::string("version ") + (version ? version : "?") + ", ABI " + formatAbiVersion(abiVersion_) +
         ", build id " + (buildId ? buildId : "unknown");
}

std::filesystem::path findDefaultPlugin() {
  boost::dll::fs::error_code error;
  const std::filesystem::path executable = boost::dll::program_location(error);
  if (error) throw PluginError("cannot find the plugin: the executable's path is unknown (" + error.message() + ")");
  const std::filesystem::path directory = executable.parent_path();
  const std::filesystem::path candidates[] = {
      directory / kPluginFileName, (directory / EPOLL_ECHO_PLUGIN_DIR_FROM_BIN / kPluginFileName).lexically_normal()};
  for (const auto& candidate : candidates) {
    std::error_code exists;
    if (std::filesystem::exists(candidate, exists)) return candidate;
  }
  throw PluginError("no plugin found next to the executable: tried " + candidates[0].string() + " and " +
                    candidates[1].string() + "; pass --plugin PATH");
}

std::string formatAbiVersion(uint32_t packed) {
  return std::to_string(EPOLL_ECHO_ABI_MAJOR_OF(packed)) + "." + std::to_string(EPOLL_ECHO_ABI_MINOR_OF(packed));
}

}  // namespace epoll_echo::host
