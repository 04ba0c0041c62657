// The GNU build-id of the loaded plugin file, so a host can tell which build is serving.
#pragma once

namespace epoll_echo {

// Returns the hex build-id of the object this code was loaded from, or "unknown". The string is
// computed once and lives until the plugin is unloaded. Thread-safe.
const char* loadedBuildId() noexcept;

}  // namespace epoll_echo
