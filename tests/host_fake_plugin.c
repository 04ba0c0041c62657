/* host_fake_plugin.c — stand-ins for libepoll_echo.so that epoll-server must refuse or survive. The
 * tests build it several times: FAKE_ABI_MAJOR picks another major, FAKE_WITHOUT_STATS drops one
 * symbol, FAKE_SLOW_STOP makes stop() outlast any test. It serves nothing. */
#include <epoll_echo.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef FAKE_ABI_MAJOR
#define FAKE_ABI_MAJOR EPOLL_ECHO_ABI_MAJOR
#endif

struct epoll_echo_engine {
  uint32_t port;
  uint32_t listeners;
  uint32_t state;
};

uint32_t epoll_echo_abi_version(void) { return EPOLL_ECHO_ABI_PACK(FAKE_ABI_MAJOR, 0); }
const char* epoll_echo_version(void) { return "0.0.0-fake"; }
const char* epoll_echo_build_id(void) { return "fake"; }
const char* epoll_echo_strerror(int code) { return code == 0 ? "success" : "fake error"; }
const char* epoll_echo_error_name(int code) { return code == 0 ? "EPOLL_ECHO_OK" : "EPOLL_ECHO_UNKNOWN"; }

int epoll_echo_create(const epoll_echo_config_t* config, epoll_echo_engine_t** engine_out, char* detail,
                      size_t detail_size) {
  epoll_echo_engine_t* engine = calloc(1, sizeof *engine);
  if (detail != NULL && detail_size > 0) detail[0] = '\0';
  if (engine == NULL) return EPOLL_ECHO_ENOMEM;
  engine->port = config->port != 0 ? config->port : 9; /* nothing is bound: any non-zero port will do */
  engine->listeners = config->listeners;
  engine->state = EPOLL_ECHO_STATE_CREATED;
  *engine_out = engine;
  return EPOLL_ECHO_OK;
}

int epoll_echo_start(epoll_echo_engine_t* engine) {
  engine->state = EPOLL_ECHO_STATE_RUNNING;
  return EPOLL_ECHO_OK;
}

int epoll_echo_stop(epoll_echo_engine_t* engine) {
#ifdef FAKE_SLOW_STOP
  /* Far longer than the test waits: only the host's forced exit ends the process in time. Bounded
   * so that a host that fails the test still ends by itself. */
  struct timespec delay = {120, 0};
  while (nanosleep(&delay, &delay) != 0) {
  }
#endif
  engine->state = EPOLL_ECHO_STATE_STOPPED;
  return EPOLL_ECHO_OK;
}

void epoll_echo_destroy(epoll_echo_engine_t* engine) { free(engine); }

#ifndef FAKE_WITHOUT_STATS
int epoll_echo_stats(const epoll_echo_engine_t* engine, epoll_echo_stats_t* stats) {
  uint32_t size = stats->size < sizeof *stats ? stats->size : (uint32_t)sizeof *stats;
  memset((char*)stats + sizeof stats->size, 0, size - sizeof stats->size);
  stats->state = engine->state;
  stats->port = engine->port;
  stats->listeners = engine->listeners;
  stats->size = size;
  return EPOLL_ECHO_OK;
}
#endif

int epoll_echo_worker_stats(const epoll_echo_engine_t* engine, uint32_t index, epoll_echo_worker_stats_t* stats) {
  (void)engine;
  (void)index;
  (void)stats;
  return EPOLL_ECHO_ERANGE;
}

int epoll_echo_last_error(const epoll_echo_engine_t* engine, char* buffer, size_t buffer_size) {
  (void)engine;
  if (buffer != NULL && buffer_size > 0) buffer[0] = '\0';
  return 0;
}
