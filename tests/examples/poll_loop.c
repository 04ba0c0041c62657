/* poll_loop.c — an application that serves an epoll-echo engine from its own single-threaded
 * poll() loop (threading EXTERNAL, ABI 1.4): the plugin starts no thread.
 *
 *   poll_loop PLUGIN                 self-test: serves one client of its own over loopback, checks
 *                                    the echo, stops; exit 0 on success
 *   poll_loop PLUGIN --serve PORT    serves 127.0.0.1:PORT (0: any free port, printed) until
 *                                    SIGINT or SIGTERM: the benchmark's single-thread host
 *
 * Plain C and libc only: dlopen/dlsym, poll, signalfd. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "epoll_echo.h"

typedef struct api {
  uint32_t (*abi_version)(void);
  int (*create)(const epoll_echo_config_t*, epoll_echo_engine_t**, char*, size_t);
  int (*start)(epoll_echo_engine_t*);
  int (*stop)(epoll_echo_engine_t*);
  void (*destroy)(epoll_echo_engine_t*);
  int (*stats)(const epoll_echo_engine_t*, epoll_echo_stats_t*);
  int (*last_error)(const epoll_echo_engine_t*, char*, size_t);
  int (*loop_fd)(const epoll_echo_engine_t*, int32_t*);
  int (*loop_run)(epoll_echo_engine_t*, int32_t*);
} api_t;

static int load(const char* path, api_t* api) {
  void* library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (library == NULL) {
    fprintf(stderr, "poll_loop: dlopen %s: %s\n", path, dlerror());
    return -1;
  }
#define LOOK_UP(name)                                                                      \
  if ((*(void**)& api->name = dlsym(library, "epoll_echo_" #name)) == NULL) {              \
    fprintf(stderr, "poll_loop: %s has no epoll_echo_" #name " (ABI 1.4 needed)\n", path); \
    return -1;                                                                             \
  }
  LOOK_UP(abi_version)
  LOOK_UP(create) LOOK_UP(start) LOOK_UP(stop) LOOK_UP(destroy) LOOK_UP(stats) LOOK_UP(last_error) LOOK_UP(loop_fd)
      LOOK_UP(loop_run)
#undef LOOK_UP
          uint32_t version = api->abi_version();
  if (EPOLL_ECHO_ABI_MAJOR_OF(version) != EPOLL_ECHO_ABI_MAJOR || EPOLL_ECHO_ABI_MINOR_OF(version) < 4) {
    fprintf(stderr, "poll_loop: %s has ABI %u.%u, this host needs %d.4 or later\n", path,
            EPOLL_ECHO_ABI_MAJOR_OF(version), EPOLL_ECHO_ABI_MINOR_OF(version), EPOLL_ECHO_ABI_MAJOR);
    return -1;
  }
  return 0;
}

static int fail(const api_t* api, epoll_echo_engine_t* engine, const char* call, int code) {
  char detail[256] = "";
  api->last_error(engine, detail, sizeof detail);
  fprintf(stderr, "poll_loop: %s: %d: %s\n", call, code, detail);
  return -1;
}

/* A loopback client of the engine: connected, the message sent (it fits the socket buffer). */
static int connect_client(uint16_t port, const char* message) {
  struct sockaddr_in address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr*)&address, sizeof address) != 0 ||
      send(fd, message, strlen(message), MSG_NOSIGNAL) != (ssize_t)strlen(message)) {
    perror("poll_loop: client");
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

/* The application's loop: poll() watches the engine's fd next to the application's own fds (here
 * a signalfd, or the test client), and calls loop_run() when the fd is readable or the timeout it
 * asked for has passed. Returns 0 when `done` ended it, -1 on an error. */
static int run_loop(const api_t* api, epoll_echo_engine_t* engine, int other_fd, int serving, const char* expected) {
  int32_t loop_fd = -1, timeout_ms = 0;
  int code = api->loop_fd(engine, &loop_fd);
  if (code != EPOLL_ECHO_OK) return fail(api, engine, "loop_fd", code);
  char echoed[256];
  size_t received = 0, wanted = expected != NULL ? strlen(expected) : 0;
  for (int rounds = 0; serving || rounds < 100000; ++rounds) {
    struct pollfd fds[2] = {{loop_fd, POLLIN, 0}, {other_fd, POLLIN, 0}};
    int ready = poll(fds, 2, serving ? timeout_ms : (timeout_ms < 0 || timeout_ms > 1000 ? 1000 : timeout_ms));
    if (ready < 0 && errno != EINTR) {
      perror("poll_loop: poll");
      return -1;
    }
    code = api->loop_run(engine, &timeout_ms);
    if (code != EPOLL_ECHO_OK) return fail(api, engine, "loop_run", code);
    if (fds[1].revents == 0) continue;
    if (serving) return 0; /* the signalfd: SIGINT or SIGTERM */
    ssize_t got = recv(other_fd, echoed + received, sizeof echoed - 1 - received, MSG_DONTWAIT);
    if (got <= 0) {
      fprintf(stderr, "poll_loop: the client saw %s\n", got == 0 ? "EOF" : "an error");
      return -1;
    }
    received += (size_t)got;
    if (received < wanted) continue;
    echoed[received] = '\0';
    if (strcmp(echoed, expected) != 0) {
      fprintf(stderr, "poll_loop: echoed \"%s\", sent \"%s\"\n", echoed, expected);
      return -1;
    }
    return 0;
  }
  fprintf(stderr, "poll_loop: no echo after 100000 rounds\n");
  return -1;
}

static int serve_or_test(const api_t* api, epoll_echo_engine_t* engine, int serving) {
  epoll_echo_stats_t stats;
  memset(&stats, 0, sizeof stats);
  stats.size = sizeof stats;
  api->stats(engine, &stats);
  if (serving) {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigprocmask(SIG_BLOCK, &signals, NULL);
    int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signal_fd < 0) {
      perror("poll_loop: signalfd");
      return -1;
    }
    fprintf(stderr, "poll_loop: listening on 127.0.0.1:%u (one thread, the engine in its poll() loop)\n", stats.port);
    int result = run_loop(api, engine, signal_fd, 1, NULL);
    close(signal_fd);
    return result;
  }
  const char* message = "hello from the application's own poll() loop";
  int client = connect_client((uint16_t)stats.port, message);
  if (client < 0) return -1;
  int result = run_loop(api, engine, client, 0, message);
  close(client);
  if (result == 0) printf("poll_loop: echoed \"%s\" with no engine thread\n", message);
  return result;
}

int main(int argc, char** argv) {
  int serving = argc == 4 && strcmp(argv[2], "--serve") == 0;
  if (argc != 2 && !serving) {
    fprintf(stderr, "usage: poll_loop PLUGIN [--serve PORT]\n");
    return 2;
  }
  long port = serving ? strtol(argv[3], NULL, 10) : 0;
  if (port < 0 || port > 65535) {
    fprintf(stderr, "poll_loop: port %s is outside 0..65535\n", argv[3]);
    return 2;
  }
  api_t api;
  if (load(argv[1], &api) != 0) return 1;

  epoll_echo_config_t config;
  memset(&config, 0, sizeof config);
  config.size = sizeof config;
  config.port = (uint32_t)port;
  config.listeners = 1;
  config.threading = EPOLL_ECHO_THREADING_EXTERNAL;
  strcpy(config.bind_address, "127.0.0.1");
  epoll_echo_engine_t* engine = NULL;
  char detail[256] = "";
  int code = api.create(&config, &engine, detail, sizeof detail);
  if (code != EPOLL_ECHO_OK) {
    fprintf(stderr, "poll_loop: create: %d: %s\n", code, detail);
    return 1;
  }
  int result = 1;
  code = api.start(engine);
  if (code != EPOLL_ECHO_OK) {
    fail(&api, engine, "start", code);
  } else if (serve_or_test(&api, engine, serving) == 0) {
    result = 0;
  }
  api.stop(engine); /* closes the loop fd, which the loop no longer watches */
  api.destroy(engine);
  return result;
}
