/* libuv_loop.c — a libuv application that serves an epoll-echo engine from its own uv_loop_t
 * (threading EXTERNAL, ABI 1.4): a uv_poll_t on the engine's loop fd, a uv_timer_t for the timeout
 * loop_run() asks for, and a libuv TCP client of its own that checks the echo. The plugin starts no
 * thread; everything runs in uv_run().
 *
 *   libuv_loop PLUGIN      exit 0 once the client got its echo back */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "epoll_echo.h"

static struct {
  int (*create)(const epoll_echo_config_t*, epoll_echo_engine_t**, char*, size_t);
  int (*start)(epoll_echo_engine_t*);
  int (*stop)(epoll_echo_engine_t*);
  void (*destroy)(epoll_echo_engine_t*);
  int (*stats)(const epoll_echo_engine_t*, epoll_echo_stats_t*);
  int (*loop_fd)(const epoll_echo_engine_t*, int32_t*);
  int (*loop_run)(epoll_echo_engine_t*, int32_t*);
} api;

static const char message[] = "hello from a libuv loop";
static epoll_echo_engine_t* engine;
static uv_poll_t engine_poll;
static uv_timer_t engine_timer;
static uv_tcp_t client;
static uv_connect_t connect_request;
static uv_write_t write_request;
static char echoed[sizeof message];
static size_t received;
static int ok;

static void run_engine(void);

static void on_engine_readable(uv_poll_t* handle, int status, int events) {
  (void)handle;
  (void)events;
  if (status == 0) run_engine();
}

static void on_engine_timer(uv_timer_t* handle) {
  (void)handle;
  run_engine();
}

/* Runs the engine once and re-arms the timer with the timeout it asked for (-1: none). The
 * uv_poll_t stays armed: it fires whenever the loop fd is readable. */
static void run_engine(void) {
  int32_t next = -1;
  int code = api.loop_run(engine, &next);
  if (code != EPOLL_ECHO_OK) {
    fprintf(stderr, "libuv_loop: loop_run: %d\n", code);
    uv_poll_stop(&engine_poll);
    uv_timer_stop(&engine_timer);
    return;
  }
  uv_timer_stop(&engine_timer);
  if (next >= 0) uv_timer_start(&engine_timer, on_engine_timer, (uint64_t)next, 0);
}

static void finish(void) {
  uv_poll_stop(&engine_poll);
  uv_timer_stop(&engine_timer);
  uv_close((uv_handle_t*)&engine_poll, NULL);
  uv_close((uv_handle_t*)&engine_timer, NULL);
  uv_close((uv_handle_t*)&client, NULL);
}

static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buffer) {
  (void)handle;
  (void)suggested;
  *buffer = uv_buf_init(echoed + received, (unsigned)(sizeof echoed - 1 - received));
}

static void on_read(uv_stream_t* stream, ssize_t count, const uv_buf_t* buffer) {
  (void)buffer;
  if (count < 0) {
    fprintf(stderr, "libuv_loop: read: %s\n", uv_strerror((int)count));
    finish();
    return;
  }
  received += (size_t)count;
  if (received < sizeof message - 1) return;
  uv_read_stop(stream);
  ok = memcmp(echoed, message, sizeof message - 1) == 0;
  finish();
}

static void on_written(uv_write_t* request, int status) {
  (void)request;
  if (status != 0) fprintf(stderr, "libuv_loop: write: %s\n", uv_strerror(status));
}

static void on_connected(uv_connect_t* request, int status) {
  (void)request;
  if (status != 0) {
    fprintf(stderr, "libuv_loop: connect: %s\n", uv_strerror(status));
    finish();
    return;
  }
  uv_buf_t buffer = uv_buf_init((char*)message, sizeof message - 1);
  uv_write(&write_request, (uv_stream_t*)&client, &buffer, 1, on_written);
  uv_read_start((uv_stream_t*)&client, on_alloc, on_read);
}

static int serve_one_client(void) {
  int32_t loop_fd = -1;
  if (api.loop_fd(engine, &loop_fd) != EPOLL_ECHO_OK) return 1;
  epoll_echo_stats_t stats;
  memset(&stats, 0, sizeof stats);
  stats.size = sizeof stats;
  api.stats(engine, &stats);

  uv_loop_t* loop = uv_default_loop();
  /* uv_poll_t never reads or closes the fd: it stays the engine's. */
  uv_poll_init(loop, &engine_poll, loop_fd);
  uv_poll_start(&engine_poll, UV_READABLE, on_engine_readable);
  uv_timer_init(loop, &engine_timer);
  run_engine();

  struct sockaddr_in server;
  uv_ip4_addr("127.0.0.1", (int)stats.port, &server);
  uv_tcp_init(loop, &client);
  uv_tcp_connect(&connect_request, &client, (const struct sockaddr*)&server, on_connected);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  if (!ok) {
    fprintf(stderr, "libuv_loop: echoed \"%.*s\", sent \"%s\"\n", (int)received, echoed, message);
    return 1;
  }
  printf("libuv_loop: echoed \"%s\" with no engine thread\n", message);
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: libuv_loop PLUGIN\n");
    return 2;
  }
  void* library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (library == NULL) {
    fprintf(stderr, "libuv_loop: dlopen %s: %s\n", argv[1], dlerror());
    return 1;
  }
#define LOOK_UP(name)                                                                  \
  if ((*(void**)& api.name = dlsym(library, "epoll_echo_" #name)) == NULL) {           \
    fprintf(stderr, "libuv_loop: the plugin has no epoll_echo_" #name " (ABI 1.4)\n"); \
    return 1;                                                                          \
  }
  LOOK_UP(create)
  LOOK_UP(start) LOOK_UP(stop) LOOK_UP(destroy) LOOK_UP(stats) LOOK_UP(loop_fd) LOOK_UP(loop_run)
#undef LOOK_UP
      epoll_echo_config_t config;
  memset(&config, 0, sizeof config);
  config.size = sizeof config;
  config.listeners = 1;
  config.threading = EPOLL_ECHO_THREADING_EXTERNAL;
  strcpy(config.bind_address, "127.0.0.1");
  char detail[256] = "";
  if (api.create(&config, &engine, detail, sizeof detail) != EPOLL_ECHO_OK) {
    fprintf(stderr, "libuv_loop: create: %s\n", detail);
    return 1;
  }
  int result = 1;
  if (api.start(engine) == EPOLL_ECHO_OK) {
    result = serve_one_client();
  } else {
    fprintf(stderr, "libuv_loop: start failed\n");
  }
  api.stop(engine); /* after uv_close() let go of the loop fd */
  api.destroy(engine);
  dlclose(library);
  return result;
}
