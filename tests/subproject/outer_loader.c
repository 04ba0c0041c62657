/* Loads the plugin built by the outer project and checks that it answers with this header's ABI. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "epoll_echo.h"

int main(void) {
  void* plugin = dlopen(PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
  if (!plugin) {
    fprintf(stderr, "dlopen %s: %s\n", PLUGIN_PATH, dlerror());
    return 1;
  }
  void* symbol = dlsym(plugin, "epoll_echo_abi_version");
  uint32_t (*abi_version)(void) = NULL;
  memcpy(&abi_version, &symbol, sizeof abi_version); /* the conversion ISO C allows */
  if (!abi_version) {
    fprintf(stderr, "dlsym epoll_echo_abi_version: %s\n", dlerror());
    return 1;
  }
  uint32_t version = abi_version();
  printf("plugin ABI %u.%u\n", (unsigned)EPOLL_ECHO_ABI_MAJOR_OF(version), (unsigned)EPOLL_ECHO_ABI_MINOR_OF(version));
  int same_major = EPOLL_ECHO_ABI_MAJOR_OF(version) == EPOLL_ECHO_ABI_MAJOR;
  dlclose(plugin);
  return same_major ? 0 : 1;
}
