// asio_loop.cpp — a Boost.Asio application that serves an epoll-echo engine from its own
// io_context (threading EXTERNAL, ABI 1.4): posix::stream_descriptor::async_wait on the engine's
// loop fd, a steady_timer for the timeout loop_run() asks for, and an Asio client of its own that
// checks the echo. The plugin starts no thread; everything runs in io_context::run().
//
//   asio_loop PLUGIN      exit 0 once the client got its echo back
#include <dlfcn.h>

#include <boost/asio.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "epoll_echo.h"

namespace {

namespace asio = boost::asio;

struct Api {
  int (*create)(const epoll_echo_config_t*, epoll_echo_engine_t**, char*, size_t);
  int (*start)(epoll_echo_engine_t*);
  int (*stop)(epoll_echo_engine_t*);
  void (*destroy)(epoll_echo_engine_t*);
  int (*stats)(const epoll_echo_engine_t*, epoll_echo_stats_t*);
  int (*loop_fd)(const epoll_echo_engine_t*, int32_t*);
  int (*loop_run)(epoll_echo_engine_t*, int32_t*);
};

template <class Function>
bool lookUp(void* library, const char* name, Function& out) {
  out = reinterpret_cast<Function>(::dlsym(library, name));
  if (out == nullptr) std::fprintf(stderr, "asio_loop: the plugin has no %s (ABI 1.4 needed)\n", name);
  return out != nullptr;
}

// Watches the engine's loop fd in an io_context: whenever it is readable, or the timeout the last
// loop_run() returned has passed, runs the engine once and re-arms both. The descriptor stays the
// engine's: release() hands it back before the stream_descriptor goes, so Asio never closes it.
class EngineDriver {
 public:
  EngineDriver(asio::io_context& io, const Api& api, epoll_echo_engine_t* engine, int loopFd)
      : api_(api), engine_(engine), descriptor_(io, loopFd), timer_(io) {}
  ~EngineDriver() { descriptor_.release(); }

  void run() {
    int32_t next = -1;
    const int code = api_.loop_run(engine_, &next);
    if (code != EPOLL_ECHO_OK) {
      std::fprintf(stderr, "asio_loop: loop_run: %d\n", code);
      cancel();
      return;
    }
    if (!waiting_) {
      waiting_ = true;
      descriptor_.async_wait(asio::posix::descriptor_base::wait_read, [this](boost::system::error_code error) {
        waiting_ = false;
        if (!error) run();
      });
    }
    timer_.cancel();
    if (next < 0) return;
    timer_.expires_after(std::chrono::milliseconds(next));
    timer_.async_wait([this](boost::system::error_code error) {
      if (!error) run();
    });
  }

  void cancel() {
    descriptor_.cancel();
    timer_.cancel();
  }

 private:
  const Api& api_;
  epoll_echo_engine_t* engine_;
  asio::posix::stream_descriptor descriptor_;
  asio::steady_timer timer_;
  bool waiting_ = false;
};

int serveOneClient(const Api& api, epoll_echo_engine_t* engine) {
  int32_t loopFd = -1;
  if (api.loop_fd(engine, &loopFd) != EPOLL_ECHO_OK) return 1;
  epoll_echo_stats_t stats{};
  stats.size = sizeof stats;
  api.stats(engine, &stats);

  asio::io_context io;
  EngineDriver driver(io, api, engine, loopFd);
  driver.run();

  const std::string message = "hello from a Boost.Asio io_context";
  std::string echoed(message.size(), '\0');
  bool ok = false;
  asio::ip::tcp::socket client(io);
  const asio::ip::tcp::endpoint server(asio::ip::address_v4::loopback(), static_cast<uint16_t>(stats.port));
  client.async_connect(server, [&](boost::system::error_code error) {
    if (error) return driver.cancel();
    asio::async_write(client, asio::buffer(message), [&](boost::system::error_code, size_t) {});
    asio::async_read(client, asio::buffer(echoed), [&](boost::system::error_code readError, size_t) {
      ok = !readError && echoed == message;
      driver.cancel();  // nothing left to wait for: run() returns
    });
  });
  io.run();
  if (!ok) {
    std::fprintf(stderr, "asio_loop: echoed \"%s\", sent \"%s\"\n", echoed.c_str(), message.c_str());
    return 1;
  }
  std::printf("asio_loop: echoed \"%s\" with no engine thread\n", message.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: asio_loop PLUGIN\n");
    return 2;
  }
  void* library = ::dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    std::fprintf(stderr, "asio_loop: dlopen %s: %s\n", argv[1], ::dlerror());
    return 1;
  }
  Api api{};
  if (!lookUp(library, "epoll_echo_create", api.create) || !lookUp(library, "epoll_echo_start", api.start) ||
      !lookUp(library, "epoll_echo_stop", api.stop) || !lookUp(library, "epoll_echo_destroy", api.destroy) ||
      !lookUp(library, "epoll_echo_stats", api.stats) || !lookUp(library, "epoll_echo_loop_fd", api.loop_fd) ||
      !lookUp(library, "epoll_echo_loop_run", api.loop_run)) {
    return 1;
  }
  epoll_echo_config_t config{};
  config.size = sizeof config;
  config.listeners = 1;
  config.threading = EPOLL_ECHO_THREADING_EXTERNAL;
  std::strcpy(config.bind_address, "127.0.0.1");
  epoll_echo_engine_t* engine = nullptr;
  char detail[256] = "";
  if (api.create(&config, &engine, detail, sizeof detail) != EPOLL_ECHO_OK) {
    std::fprintf(stderr, "asio_loop: create: %s\n", detail);
    return 1;
  }
  int result = 1;
  if (api.start(engine) == EPOLL_ECHO_OK) {
    result = serveOneClient(api, engine);
  } else {
    std::fprintf(stderr, "asio_loop: start failed\n");
  }
  api.stop(engine);  // after the io_context let go of the loop fd
  api.destroy(engine);
  ::dlclose(library);
  return result;
}
