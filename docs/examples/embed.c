/* embed.c — embedding the echo engine from plain C: dlopen/dlsym only (no Boost, no link to the
 * plugin), one engine on a kernel-chosen port, one echo, stats, stop, destroy, and a real unload.
 * Usage: embed [PLUGIN_PATH]; exit 0 when every step worked. Built and run by the tests. */
#include <dlfcn.h>
#include <epoll_echo.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* Each ABI function through a pointer of its own type, declared from the header's prototypes. */
typedef struct {
  __typeof__(&epoll_echo_abi_version) abi_version;
  __typeof__(&epoll_echo_strerror) strerror_of;
  __typeof__(&epoll_echo_create) create;
  __typeof__(&epoll_echo_start) start;
  __typeof__(&epoll_echo_stats) stats;
  __typeof__(&epoll_echo_last_error) last_error;
  __typeof__(&epoll_echo_stop) stop;
  __typeof__(&epoll_echo_destroy) destroy;
} plugin_api;

/* dlsym returns an object pointer; memcpy is the conversion ISO C allows into a function pointer. */
static int lookup(void* library, const char* name, void* function_pointer, size_t size) {
  void* symbol = dlsym(library, name);
  if (symbol == NULL) {
    fprintf(stderr, "embed: %s: %s\n", name, dlerror());
    return -1;
  }
  memcpy(function_pointer, &symbol, size);
  return 0;
}
#define LOOKUP(library, api, field, name) lookup(library, name, &(api)->field, sizeof(api)->field)

static int load_api(void* library, plugin_api* api) {
  if (LOOKUP(library, api, abi_version, "epoll_echo_abi_version") != 0) return -1;
  if (EPOLL_ECHO_ABI_MAJOR_OF(api->abi_version()) != EPOLL_ECHO_ABI_MAJOR) {
    fprintf(stderr, "embed: the plugin has ABI major %u, this program needs %d\n",
            (unsigned)EPOLL_ECHO_ABI_MAJOR_OF(api->abi_version()), EPOLL_ECHO_ABI_MAJOR);
    return -1;
  }
  return LOOKUP(library, api, strerror_of, "epoll_echo_strerror") | LOOKUP(library, api, create, "epoll_echo_create") |
         LOOKUP(library, api, start, "epoll_echo_start") | LOOKUP(library, api, stats, "epoll_echo_stats") |
         LOOKUP(library, api, last_error, "epoll_echo_last_error") | LOOKUP(library, api, stop, "epoll_echo_stop") |
         LOOKUP(library, api, destroy, "epoll_echo_destroy");
}

/* Sends `message` to 127.0.0.1:port and reads it back; timeouts bound every wait to 5 seconds. */
static int echo_once(uint16_t port, const char* message) {
  const struct timeval timeout = {5, 0};
  struct sockaddr_in address;
  char reply[64] = "";
  size_t length = strlen(message), received = 0;
  int ok = 0, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  if (connect(fd, (const struct sockaddr*)&address, sizeof address) == 0 &&
      send(fd, message, length, MSG_NOSIGNAL) == (ssize_t)length) {
    while (received < length) {
      const ssize_t got = recv(fd, reply + received, sizeof reply - 1 - received, 0);
      if (got <= 0) break;
      received += (size_t)got;
    }
    ok = received == length && memcmp(reply, message, length) == 0;
  }
  close(fd);
  return ok ? 0 : -1;
}

/* create -> start -> echo -> stats -> stop -> destroy; 0 when the echo and the counters are right. */
static int run_engine(const plugin_api* api) {
  epoll_echo_config_t config;
  epoll_echo_stats_t stats;
  epoll_echo_engine_t* engine = NULL;
  char detail[256] = "";
  int code, result = -1;
  memset(&config, 0, sizeof config); /* unset fields mean "default"; reserved ones must be 0 */
  config.size = sizeof config;       /* first, always: lets older and newer plugins agree */
  config.port = 0;                   /* the kernel picks a free port */
  config.listeners = 2;
  strcpy(config.bind_address, "127.0.0.1");
  code = api->create(&config, &engine, detail, sizeof detail);
  if (code != EPOLL_ECHO_OK) {
    fprintf(stderr, "embed: create: %s (%s)\n", detail, api->strerror_of(code));
    return -1;
  }
  code = api->start(engine);
  if (code != EPOLL_ECHO_OK) {
    api->last_error(engine, detail, sizeof detail);
    fprintf(stderr, "embed: start: %s (%s)\n", detail, api->strerror_of(code));
  } else {
    memset(&stats, 0, sizeof stats);
    stats.size = sizeof stats;
    if (api->stats(engine, &stats) == EPOLL_ECHO_OK && echo_once((uint16_t)stats.port, "hello, engine\n") == 0 &&
        api->stop(engine) == EPOLL_ECHO_OK && api->stats(engine, &stats) == EPOLL_ECHO_OK) {
      printf("embed: port %u, accepted %llu, bytes in %llu, out %llu\n", (unsigned)stats.port,
             (unsigned long long)stats.total.accepted, (unsigned long long)stats.total.bytes_in,
             (unsigned long long)stats.total.bytes_out);
      result = (stats.total.accepted == 1 && stats.total.bytes_out == stats.total.bytes_in) ? 0 : -1;
    }
  }
  api->destroy(engine); /* stops first if still running */
  return result;
}

int main(int argc, char** argv) {
#ifdef EMBED_DEFAULT_PLUGIN
  const char* path = argc > 1 ? argv[1] : EMBED_DEFAULT_PLUGIN;
#else
  const char* path = argc > 1 ? argv[1] : NULL;
#endif
  plugin_api api;
  void* library;
  int result;
  if (path == NULL) {
    fprintf(stderr, "usage: embed PLUGIN_PATH\n");
    return 2;
  }
  library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (library == NULL) {
    fprintf(stderr, "embed: dlopen %s: %s\n", path, dlerror());
    return 1;
  }
  result = load_api(library, &api) == 0 ? run_engine(&api) : -1;
  dlclose(library);
  /* RTLD_NOLOAD only finds an object that is still mapped: NULL proves the plugin unloaded. */
  library = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
  if (library != NULL) {
    fprintf(stderr, "embed: %s is still loaded after dlclose\n", path);
    dlclose(library);
    return 1;
  }
  if (result == 0) printf("embed: ok, plugin unloaded\n");
  return result == 0 ? 0 : 1;
}
