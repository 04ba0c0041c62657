// asio_echo_server.cpp — the Boost.Asio echo server a user would write, as the benchmark's peer:
// one io_context per thread, each with its own SO_REUSEPORT acceptor, TCP_NODELAY, a 64 KiB
// buffer per connection, async_read_some then async_write of what was read, repeat.
#include <boost/asio.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace epoll_echo::bench {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

// One client connection; kept alive by the handler that is pending on it.
class EchoSession : public std::enable_shared_from_this<EchoSession> {
 public:
  explicit EchoSession(tcp::socket socket) : socket_(std::move(socket)) {}
  void start() {
    socket_.set_option(tcp::no_delay(true));
    read();
  }

 private:
  void read() {
    auto self = shared_from_this();
    socket_.async_read_some(asio::buffer(buffer_), [self](boost::system::error_code error, size_t count) {
      if (!error) self->write(count);
    });
  }
  void write(size_t count) {
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(buffer_, count), [self](boost::system::error_code error, size_t) {
      if (!error) self->read();
    });
  }

  tcp::socket socket_;
  std::array<char, 64 * 1024> buffer_;
};

// One thread's acceptor, accepting into its own io_context.
class EchoListener {
 public:
  EchoListener(asio::io_context& context, const tcp::endpoint& endpoint) : acceptor_(context) {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.set_option(ReusePort(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(asio::socket_base::max_listen_connections);
  }
  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  void accept() {
    acceptor_.async_accept([this](boost::system::error_code error, tcp::socket socket) {
      if (!error) std::make_shared<EchoSession>(std::move(socket))->start();
      if (error != asio::error::operation_aborted) accept();
    });
  }
  void close() { acceptor_.close(); }

 private:
  tcp::acceptor acceptor_;
};

[[noreturn]] void usage(int code) {
  std::fputs("usage: asio-echo-server [--port PORT (0 = pick)] [--threads N] [--bind ADDRESS]\n",
             code == 0 ? stdout : stderr);
  std::exit(code);
}

int run(unsigned short port, unsigned threads, const std::string& bind) {
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<std::unique_ptr<EchoListener>> listeners;
  tcp::endpoint endpoint(asio::ip::make_address(bind), port);
  for (unsigned i = 0; i < threads; ++i) {
    contexts.push_back(std::make_unique<asio::io_context>(1));
    listeners.push_back(std::make_unique<EchoListener>(*contexts.back(), endpoint));
    endpoint.port(listeners.front()->port());  // port 0: the others join the port the first got
    listeners.back()->accept();
  }
  asio::signal_set signals(*contexts.front(), SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code, int) {
    for (auto& context : contexts) context->stop();
  });
  std::fprintf(stderr, "asio-echo-server: listening on %s:%u (%u threads)\n",
               endpoint.address().is_v6() ? ("[" + bind + "]").c_str() : bind.c_str(), endpoint.port(), threads);
  std::vector<std::thread> running;
  for (unsigned i = 1; i < threads; ++i) running.emplace_back([&context = *contexts[i]] { context.run(); });
  contexts.front()->run();
  for (auto& context : contexts) context->stop();
  for (auto& thread : running) thread.join();
  return 0;
}

}  // namespace
}  // namespace epoll_echo::bench

int main(int argc, char** argv) {
  long port = 0;
  long threads = 1;
  std::string bind = "127.0.0.1";
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") epoll_echo::bench::usage(0);
    if (i + 1 >= argc) epoll_echo::bench::usage(2);
    const char* value = argv[++i];
    char* end = nullptr;
    if (flag == "--port")
      port = std::strtol(value, &end, 10);
    else if (flag == "--threads")
      threads = std::strtol(value, &end, 10);
    else if (flag == "--bind")
      bind = value;
    else
      epoll_echo::bench::usage(2);
    if (end != nullptr && (*end != '\0' || end == value)) epoll_echo::bench::usage(2);
  }
  if (port < 0 || port > 65535 || threads < 1 || threads > 1024) epoll_echo::bench::usage(2);
  try {
    return epoll_echo::bench::run(static_cast<unsigned short>(port), static_cast<unsigned>(threads), bind);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "asio-echo-server: %s\n", error.what());
    return 1;
  }
}
