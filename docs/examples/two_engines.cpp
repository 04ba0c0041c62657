// two_engines.cpp — two independent engines in one C++ process, each on its own kernel-chosen port,
// with plain dlopen/dlsym (no Boost). Usage: two_engines PLUGIN_PATH; exit 0 when both echo.
#include <dlfcn.h>
#include <epoll_echo.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

namespace {

// The plugin's handle and the functions this example uses; dlclose() when it goes out of scope.
class Plugin {
 public:
  explicit Plugin(const char* path) : library_(dlopen(path, RTLD_NOW | RTLD_LOCAL)) {
    if (library_ == nullptr) throw std::runtime_error(std::string("dlopen: ") + dlerror());
    create = lookup<decltype(&epoll_echo_create)>("epoll_echo_create");
    start = lookup<decltype(&epoll_echo_start)>("epoll_echo_start");
    stats = lookup<decltype(&epoll_echo_stats)>("epoll_echo_stats");
    destroy = lookup<decltype(&epoll_echo_destroy)>("epoll_echo_destroy");
  }
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;
  ~Plugin() { dlclose(library_); }

  decltype(&epoll_echo_create) create = nullptr;
  decltype(&epoll_echo_start) start = nullptr;
  decltype(&epoll_echo_stats) stats = nullptr;
  decltype(&epoll_echo_destroy) destroy = nullptr;

 private:
  template <typename Function>
  Function lookup(const char* name) {
    void* symbol = dlsym(library_, name);
    if (symbol == nullptr) throw std::runtime_error(std::string("dlsym ") + name + ": " + dlerror());
    return reinterpret_cast<Function>(symbol);
  }
  void* library_;
};

// One running engine; destroy() (which stops it first) runs before the Plugin unloads.
class Engine {
 public:
  Engine(const Plugin& plugin, uint32_t listeners) : plugin_(plugin) {
    epoll_echo_config_t config{};
    config.size = sizeof config;
    config.port = 0;  // each engine gets its own free port
    config.listeners = listeners;
    std::strcpy(config.bind_address, "127.0.0.1");
    char detail[256] = "";
    if (plugin.create(&config, &engine_, detail, sizeof detail) != EPOLL_ECHO_OK) {
      throw std::runtime_error(std::string("create: ") + detail);
    }
    if (plugin.start(engine_) != EPOLL_ECHO_OK) {
      plugin.destroy(engine_);
      throw std::runtime_error("start failed");
    }
  }
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  ~Engine() { plugin_.destroy(engine_); }

  epoll_echo_stats_t stats() const {
    epoll_echo_stats_t stats{};
    stats.size = sizeof stats;
    if (plugin_.stats(engine_, &stats) != EPOLL_ECHO_OK) throw std::runtime_error("stats failed");
    return stats;
  }

 private:
  const Plugin& plugin_;
  epoll_echo_engine_t* engine_ = nullptr;
};

// Sends `message` to 127.0.0.1:port and returns what came back (every wait bounded to 5 s).
std::string echo(uint16_t port, const std::string& message) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  const timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0 &&
      send(fd, message.data(), message.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(message.size())) {
    char buffer[256];
    while (reply.size() < message.size()) {
      const ssize_t got = recv(fd, buffer, sizeof buffer, 0);
      if (got <= 0) break;
      reply.append(buffer, static_cast<std::size_t>(got));
    }
  }
  close(fd);
  return reply;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: two_engines PLUGIN_PATH\n");
    return 2;
  }
  try {
    Plugin plugin(argv[1]);
    Engine first(plugin, 1);
    Engine second(plugin, 2);
    const auto firstPort = static_cast<uint16_t>(first.stats().port);
    const auto secondPort = static_cast<uint16_t>(second.stats().port);
    const bool echoed = firstPort != secondPort && echo(firstPort, "to the first\n") == "to the first\n" &&
                        echo(secondPort, "to the second\n") == "to the second\n";
    // Engines share nothing: each counted exactly its own connection.
    const bool counted = first.stats().total.accepted == 1 && second.stats().total.accepted == 1;
    std::printf("two_engines: ports %u and %u, echoed %s, counted %s\n", firstPort, secondPort, echoed ? "yes" : "no",
                counted ? "yes" : "no");
    return echoed && counted ? 0 : 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "two_engines: %s\n", error.what());
    return 1;
  }
}
