// metrics_server.cpp — the /metrics endpoint: an accept loop and one Session per client on a
// single io_context, with Beast parsing every request (no hand-written HTTP).
#include "metrics_server.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "event_sources.h"
#include "log.h"
#include "metrics_text.h"

namespace epoll_echo::host {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr int kBacklog = 64;
// An accept that fails for want of descriptors or memory is retried after this long, not at
// once: the listening socket stays readable, so an immediate retry would spin.
constexpr std::chrono::seconds kAcceptRetryDelay{1};
// What a closing connection reads and throws away at most before it closes anyway.
constexpr std::size_t kMaxDiscardedBytes = 1 << 20;

std::string formatEndpoint(const tcp::endpoint& endpoint) {
  const std::string host = endpoint.address().to_string();
  return (endpoint.address().is_v6() ? "[" + host + "]" : host) + ":" + std::to_string(endpoint.port());
}

std::string errnoText(const char* call) { return std::string(call) + ": " + std::strerror(errno); }

// A listening socket made here rather than by asio, which opens and accepts without
// SOCK_CLOEXEC. SO_REUSEADDR: a restarted host must not wait for the last scrape's TIME_WAIT.
UniqueFd listenOn(const tcp::endpoint& endpoint) {
  const std::string where = "metrics endpoint " + formatEndpoint(endpoint) + ": ";
  UniqueFd socket(::socket(endpoint.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP));
  if (socket.get() < 0) throw std::runtime_error(where + errnoText("socket"));
  const int on = 1;
  if (::setsockopt(socket.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) {
    throw std::runtime_error(where + errnoText("setsockopt SO_REUSEADDR"));
  }
  if (::bind(socket.get(), endpoint.data(), static_cast<socklen_t>(endpoint.size())) != 0) {
    throw std::runtime_error(where + errnoText("bind"));
  }
  if (::listen(socket.get(), kBacklog) != 0) throw std::runtime_error(where + errnoText("listen"));
  return socket;
}

// An inherited socket is served only if it listens where this process was told to: the same
// address, and the same port unless the port was left to the kernel.
void requireListeningAt(int fd, const tcp::endpoint& wanted) {
  const std::string where = "metrics endpoint " + formatEndpoint(wanted) + ": the inherited socket ";
  int listening = 0;
  socklen_t length = sizeof listening;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || listening != 1) {
    throw std::runtime_error(where + "is not listening");
  }
  tcp::endpoint local(wanted.protocol(), 0);
  length = static_cast<socklen_t>(local.capacity());
  if (::getsockname(fd, local.data(), &length) != 0) throw std::runtime_error(where + errnoText("getsockname"));
  local.resize(length);
  if (local.address() != wanted.address() || (wanted.port() != 0 && local.port() != wanted.port())) {
    throw std::runtime_error(where + "listens on " + formatEndpoint(local));
  }
}

class Session;

}  // namespace

// Everything the metrics thread touches; only that thread uses it once start() has run.
struct MetricsServer::State {
  asio::io_context context{1};
  tcp::acceptor acceptor{context};
  tcp protocol = tcp::v4();  // the acceptor's, for the accepted sockets
  asio::steady_timer retryTimer{context};
  Render render;
  std::vector<std::weak_ptr<Session>> sessions;
  bool waiting = false;   // an accept wait is pending
  bool stopping = false;  // stop() has begun: accept nothing more
  bool finishing = false;  // finish() has begun: accept nothing more, answer what has begun
  bool acceptFailing = false;

  void run();
  void waitForConnection();
  void onReadable(const boost::system::error_code& error);
  void onAcceptError(int error);
  std::size_t openSessions();
  void sessionEnded();
  void shutdown();
  void finishSessions();
};

namespace {

// One scrape connection: requests read and answered in turn (keep-alive), each under the
// deadline. Owned by the handlers in flight: it ends when the last one returns.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, MetricsServer::State& server) : stream_(std::move(socket)), server_(server) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() { server_.sessionEnded(); }

  void start() { readRequest(); }
  void close() { stream_.close(); }  // the pending read or write completes with operation_aborted

 private:
  void readRequest();
  void onRead(const beast::error_code& error);
  void respond(http::status status, std::string body, bool keepAlive, const char* contentType = "text/plain",
               bool headOnly = false);
  void onWritten(const beast::error_code& error, bool keepAlive);
  void lingerAndClose();
  void discard();
  void answer(const http::request<http::empty_body>& request);

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_{MetricsServer::kMaxRequestBytes};
  std::optional<http::request_parser<http::empty_body>> parser_;
  http::response<http::string_body> response_;
  std::array<char, 4096> scratch_;  // discarded bytes of a client that is not answered further
  std::size_t discarded_ = 0;
  MetricsServer::State& server_;
};

void Session::readRequest() {
  parser_.emplace();
  parser_->header_limit(MetricsServer::kMaxRequestBytes);
  stream_.expires_after(MetricsServer::kRequestDeadline);
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](const beast::error_code& error, std::size_t) { self->onRead(error); });
}

void Session::onRead(const beast::error_code& error) {
  if (!error) return answer(parser_->get());
  // A parse error gets an answer; a client that left, stalled past the deadline or was closed
  // by stop() gets none.
  const bool parseError = error.category() == http::make_error_code(http::error::bad_target).category();
  if (!parseError || error == http::error::end_of_stream) return close();
  const bool tooLarge = error == http::error::header_limit || error == http::error::buffer_overflow;
  if (tooLarge) return respond(http::status::request_header_fields_too_large, "request too large\n", false);
  respond(http::status::bad_request, "malformed request: " + error.message() + "\n", false);
}

void Session::answer(const http::request<http::empty_body>& request) {
  const beast::string_view target = request.target();
  const beast::string_view path = target.substr(0, target.find('?'));
  if (path != "/metrics")
    return respond(http::status::not_found, "not found: only /metrics is served\n", request.keep_alive());
  const bool head = request.method() == http::verb::head;
  if (request.method() != http::verb::get && !head) {
    response_.set(http::field::allow, "GET, HEAD");
    return respond(http::status::method_not_allowed, "method not allowed: use GET\n", request.keep_alive());
  }
  std::string body;
  try {
    body = server_.render();
  } catch (const std::exception& failure) {
    logLine(std::string("metrics: cannot read the stats: ") + failure.what());
    return respond(http::status::internal_server_error, "cannot read the stats\n", false);
  }
  respond(http::status::ok, std::move(body), request.keep_alive(), kMetricsContentType, head);
}

// HEAD (`headOnly`) gets the Content-Length GET would have, and no body.
void Session::respond(http::status status, std::string body, bool keepAlive, const char* contentType, bool headOnly) {
  response_.result(status);
  response_.version(11);
  response_.set(http::field::server, "epoll-server");
  response_.set(http::field::content_type, contentType);
  keepAlive = keepAlive && !server_.finishing;
  response_.keep_alive(keepAlive);
  response_.content_length(body.size());
  if (!headOnly) response_.body() = std::move(body);
  stream_.expires_after(MetricsServer::kRequestDeadline);
  http::async_write(stream_, response_,
                    [self = shared_from_this(), keepAlive](const beast::error_code& error, std::size_t) {
                      self->onWritten(error, keepAlive);
                    });
}

void Session::onWritten(const beast::error_code& error, bool keepAlive) {
  response_ = {};
  if (error || server_.stopping) return close();
  if (!keepAlive) return lingerAndClose();
  readRequest();
}

// Closing a socket with unread bytes sends a reset, which can destroy the answer just sent
// before the client reads it (a 400 or 431 to a client still sending). So: FIN first, then
// discard what still comes until the client closes, kMaxDiscardedBytes or the deadline.
void Session::lingerAndClose() {
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream_.expires_after(MetricsServer::kRequestDeadline);
  discard();
}

void Session::discard() {
  stream_.async_read_some(asio::buffer(scratch_), [self = shared_from_this()](const beast::error_code& error,
                                                                              std::size_t bytes) {
    self->discarded_ += bytes;
    if (error || self->discarded_ > kMaxDiscardedBytes) return self->close();
    self->discard();
  });
}

}  // namespace

void MetricsServer::State::run() {
  // A handler that throws (bad_alloc) ends run() with its exception: log it and go on serving.
  for (;;) {
    try {
      context.run();
      return;
    } catch (const std::exception& error) {
      logLine(std::string("metrics: ") + error.what());
    }
  }
}

std::size_t MetricsServer::State::openSessions() {
  const auto ended = [](const std::weak_ptr<Session>& session) { return session.expired(); };
  sessions.erase(std::remove_if(sessions.begin(), sessions.end(), ended), sessions.end());
  return sessions.size();
}

// At kMaxConnections no wait is pending: clients queue in the kernel until a session ends.
void MetricsServer::State::waitForConnection() {
  if (waiting || stopping || finishing || openSessions() >= kMaxConnections) return;
  waiting = true;
  acceptor.async_wait(tcp::acceptor::wait_read, [this](const boost::system::error_code& error) { onReadable(error); });
}

void MetricsServer::State::onReadable(const boost::system::error_code& error) {
  waiting = false;
  if (stopping || finishing || error) return;
  const int fd = ::accept4(acceptor.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd < 0) return onAcceptError(errno);
  acceptFailing = false;
  tcp::socket socket(context);
  boost::system::error_code assignError;
  socket.assign(protocol, fd, assignError);
  if (assignError) {
    ::close(fd);
  } else {
    auto session = std::make_shared<Session>(std::move(socket), *this);
    sessions.push_back(session);
    session->start();
  }
  waitForConnection();
}

void MetricsServer::State::onAcceptError(int error) {
  // The client gave up, or a signal: nothing is wrong with the endpoint.
  if (error == EAGAIN || error == EWOULDBLOCK || error == EINTR || error == ECONNABORTED || error == EPROTO) {
    return waitForConnection();
  }
  if (!acceptFailing) logLine(std::string("metrics: accept: ") + std::strerror(error) + "; retrying every second");
  acceptFailing = true;
  retryTimer.expires_after(kAcceptRetryDelay);
  retryTimer.async_wait([this](const boost::system::error_code& timerError) {
    if (!timerError) waitForConnection();
  });
}

void MetricsServer::State::sessionEnded() { waitForConnection(); }

// Closes the acceptor and every connection: each pending operation completes with
// operation_aborted, no handler starts another, and run() returns once the last one has.
void MetricsServer::State::shutdown() {
  stopping = true;
  boost::system::error_code ignored;
  acceptor.close(ignored);
  retryTimer.cancel();
  for (const std::weak_ptr<Session>& weak : sessions) {
    if (const std::shared_ptr<Session> session = weak.lock()) session->close();
  }
}

// Lets run() return once the last session has ended; the listening socket closes here, but
// whoever else holds it (the upgraded successor) serves its queue. A session waiting for a
// request is not closed: the request may be on its way already (even in the socket, unread), and
// closing a socket with unread bytes resets the connection. It answers that request with
// Connection: close, or ends when the client closes or at its read deadline.
void MetricsServer::State::finishSessions() {
  finishing = true;
  boost::system::error_code ignored;
  acceptor.close(ignored);
  retryTimer.cancel();
}

MetricsServer::MetricsServer(const MetricsAddress& address, UniqueFd inherited) : state_(std::make_unique<State>()) {
  boost::system::error_code error;
  const asio::ip::address ip = asio::ip::make_address(address.host, error);
  if (error) throw std::runtime_error("metrics endpoint " + address.host + ": not a numeric address");
  const tcp::endpoint endpoint(ip, address.port);
  if (inherited) requireListeningAt(inherited.get(), endpoint);
  UniqueFd socket = inherited ? std::move(inherited) : listenOn(endpoint);
  state_->protocol = endpoint.protocol();
  state_->acceptor.assign(endpoint.protocol(), socket.get(), error);
  if (error) throw std::runtime_error("metrics endpoint " + formatEndpoint(endpoint) + ": " + error.message());
  socket.release();  // the acceptor owns it now
}

MetricsServer::~MetricsServer() { stop(); }

std::string MetricsServer::boundAddress() const { return formatEndpoint(state_->acceptor.local_endpoint()); }

void MetricsServer::start(Render render) {
  state_->render = std::move(render);
  state_->waitForConnection();
  thread_ = std::thread([state = state_.get()] { state->run(); });
}

int MetricsServer::listeningFd() const { return state_->acceptor.native_handle(); }

void MetricsServer::finish() {
  if (!thread_.joinable()) return;
  asio::post(state_->context, [state = state_.get()] { state->finishSessions(); });
  thread_.join();
}

void MetricsServer::stop() {
  if (!thread_.joinable()) return;
  asio::post(state_->context, [state = state_.get()] { state->shutdown(); });
  thread_.join();
}

}  // namespace epoll_echo::host
