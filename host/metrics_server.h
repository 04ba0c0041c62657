// metrics_server.h — the --metrics-listen HTTP endpoint: GET /metrics served with Boost.Beast on a
// thread of the host's own, never on the engine's workers.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "options.h"
#include "unique_fd.h"

namespace epoll_echo::host {

// Serves GET (and HEAD) /metrics with the text `render` returns; other paths get 404, other
// methods 405, a malformed or oversized request 400 or 431. One thread, all I/O asynchronous:
// up to kMaxConnections clients at once (more wait in the kernel's accept queue), each request
// read within kRequestDeadline and at most kMaxRequestBytes, each response written within the
// same deadline. So a slow, half-sent or stuck client holds one slot until its deadline and
// delays no other scrape; the engine's workers never see any of it.
//
// Constructed on the main thread, which binds (a taken port fails the start, before the engine
// serves) or adopts the listening socket of the process it upgrades, then start()ed once with
// signals already blocked: the thread inherits the mask. stop() or the destructor closes every
// connection and joins the thread; finish() lets the requests in progress end first. Every
// descriptor is close-on-exec. `render` runs on the metrics thread and must be safe to call there.
class MetricsServer {
 public:
  using Render = std::function<std::string()>;
  static constexpr std::size_t kMaxConnections = 16;
  static constexpr std::chrono::seconds kRequestDeadline{5};
  static constexpr std::size_t kMaxRequestBytes = 8192;  // request line and headers

  // Binds and listens, or with `inherited` (a listening socket an upgraded predecessor passed on,
  // whose clients wait in its queue) serves that socket instead. Throws std::runtime_error naming
  // the address and the failing call, or why `inherited` does not listen at `address`.
  explicit MetricsServer(const MetricsAddress& address, UniqueFd inherited = {});
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  ~MetricsServer();  // stop()

  std::string boundAddress() const;  // "127.0.0.1:9100", "[::1]:9100": the port the kernel chose for 0
  void start(Render render);         // starts the thread; throws std::system_error if it cannot
  void stop();                       // idempotent
  // For a process that has handed the listening socket on (upgrade.h): accepts no more (new
  // clients queue for the other holder), answers the next request of every open connection with
  // Connection: close, then joins. Bounded: each connection ends within its deadlines
  // (kRequestDeadline to read, to write, and to see the client close), so an idle keep-alive
  // client keeps it at most kRequestDeadline.
  void finish();
  int listeningFd() const;  // borrowed: to pass on

  struct State;  // Boost.Asio and Beast stay inside metrics_server.cpp

 private:
  std::unique_ptr<State> state_;
  std::thread thread_;
};

}  // namespace epoll_echo::host
