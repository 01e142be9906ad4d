// Connection on its own: a real Worker and epoll set driven one turn at a time, a socketpair as
// the client, and a C++ RequestHandler in place of the Lua runtime. The handler answers through
// the Exchange, as the Lua request API does; no Lua state exists here.
#include "engine/connection.hpp"

#include <pistache/reactor.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <functional>

#include "engine/exchange.hpp"
#include "engine/request_handler.hpp"
#include "engine/server_core.hpp"
#include "engine/worker.hpp"

using namespace depot;

namespace {

// Answers every request with `answer` (or keeps it for the test when that is empty), and shapes
// errors recognisably, so a test sees that an error went through render_error.
class TestHandler final : public RequestHandler {
 public:
  std::function<void(const std::shared_ptr<Exchange>&)> answer;
  std::vector<std::shared_ptr<Exchange>> requests;
  int errors_rendered = 0;

  void start_request(const std::shared_ptr<Exchange>& exchange) override {
    requests.push_back(exchange);
    if (answer) answer(exchange);
  }
  ErrorAnswer render_error(const Exchange&, int status, std::string_view message,
                           const char*) override {
    ++errors_rendered;
    return {status, {{"Content-Type", "text/plain"}}, "shaped: " + std::string(message)};
  }
};

Options test_options() {
  Options options;
  options.blocking_threads = 1;
  return options;
}

std::vector<UniqueFd> one_listen_fd() {
  std::vector<UniqueFd> fds;
  fds.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));  // never listened on
  return fds;
}

class Harness {
 public:
  explicit Harness(Options options = test_options())
      : core_(std::move(options), one_listen_fd()), worker_(core_, 0) {
    worker_.registerPoller(poller_);
    worker_.set_request_handler(&handler);
    int pair[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) == 0);
    client_ = UniqueFd(pair[0]);
    sockaddr_storage peer{};
    peer.ss_family = AF_UNIX;
    worker_.add_connection(new Connection(worker_, UniqueFd(pair[1]), peer));
  }

  TestHandler handler;

  void send(std::string_view data) {
    REQUIRE(::send(client_.get(), data.data(), data.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(data.size()));
  }
  // Runs the worker until `done(received)` or a second passes; returns all received so far.
  std::string run_until(const std::function<bool(const std::string&)>& done) {
    for (int i = 0; i < 100 && !done(received_); ++i) turn(10);
    return received_;
  }
  std::string run_until_contains(std::string_view text) {
    return run_until([&](const std::string& got) { return got.find(text) != std::string::npos; });
  }
  // A few turns, for what must not happen.
  std::string settle() {
    for (int i = 0; i < 5; ++i) turn(5);
    return received_;
  }
  // Sends what the socket takes now; returns how much that was.
  size_t send_some(std::string_view data) {
    if (data.empty()) return 0;
    ssize_t n = ::send(client_.get(), data.data(), data.size(), MSG_NOSIGNAL);
    return n > 0 ? static_cast<size_t>(n) : 0;
  }
  void close_client() { client_.reset(); }
  // True once the server side closed (or half-closed) its end.
  bool server_closed() {
    settle();
    char byte;
    return ::recv(client_.get(), &byte, 1, MSG_PEEK) == 0;
  }
  void clear() { received_.clear(); }
  void turn(int milliseconds) {
    std::vector<Pistache::Polling::Event> events;
    poller_.poll(events, std::chrono::milliseconds(milliseconds));
    worker_.onReady(Pistache::Aio::FdSet(std::move(events)));
    char buffer[65536];
    ssize_t n;
    while (client_.valid() && (n = ::recv(client_.get(), buffer, sizeof buffer, 0)) > 0) {
      received_.append(buffer, static_cast<size_t>(n));
    }
  }

 private:
  Pistache::Polling::Epoll poller_;
  ServerCore core_;
  Worker worker_;
  UniqueFd client_;
  std::string received_;
};

void answer_ok(const std::shared_ptr<Exchange>& exchange) {
  exchange->respond(200, {{"Content-Type", "text/plain"}}, "hello " + exchange->head().path);
  exchange->handler_finished();
}

size_t count(const std::string& text, std::string_view what) {
  size_t found = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
    ++found;
  }
  return found;
}

}  // namespace

TEST_CASE("a request is parsed, handed over and answered with framing and a request id",
          "[connection]") {
  Harness h;
  h.handler.answer = answer_ok;
  h.send("GET /a?x=1 HTTP/1.1\r\nHost: t\r\nX-Request-Id: abc-1\r\n\r\n");
  std::string got = h.run_until_contains("hello /a");
  REQUIRE(h.handler.requests.size() == 1);
  const RequestHead& head = h.handler.requests[0]->head();
  CHECK(head.method == "GET");
  CHECK(head.query == "x=1");
  CHECK(*head.header("host") == "t");
  CHECK(got.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(got.find("\r\nContent-Length: 8\r\n") != std::string::npos);
  CHECK(got.find("\r\nX-Request-Id: abc-1\r\n") != std::string::npos);
  CHECK(got.find("Connection: close") == std::string::npos);
  CHECK_FALSE(h.server_closed());
}

TEST_CASE("pipelined requests are answered one at a time, in order", "[connection]") {
  Harness h;
  h.send("GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n\r\n");
  h.settle();
  // The second request waits while the first has no answer.
  REQUIRE(h.handler.requests.size() == 1);
  answer_ok(h.handler.requests[0]);
  std::string got = h.run_until([&](const std::string&) { return h.handler.requests.size() == 2; });
  REQUIRE(h.handler.requests.size() == 2);
  CHECK(h.handler.requests[1]->head().path == "/2");
  answer_ok(h.handler.requests[1]);
  got = h.run_until_contains("hello /2");
  CHECK(got.find("hello /1") < got.find("hello /2"));
}

TEST_CASE("HEAD gets the head of the answer, with its Content-Length, and no body",
          "[connection]") {
  Harness h;
  h.handler.answer = answer_ok;
  h.send("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\nGET /g HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string got = h.run_until_contains("hello /g");
  CHECK(got.find("hello /h") == std::string::npos);
  CHECK(count(got, "Content-Length: 8") == 2);
}

TEST_CASE("a streamed answer is chunked and ends with the last chunk", "[connection]") {
  Harness h;
  h.send("GET /s HTTP/1.1\r\nHost: t\r\n\r\n");
  h.settle();
  REQUIRE(h.handler.requests.size() == 1);
  std::shared_ptr<Exchange> exchange = h.handler.requests[0];
  exchange->start_stream(200, {});
  CHECK(exchange->write_chunk("abc"));
  CHECK(exchange->write_chunk(""));  // nothing to frame
  CHECK(exchange->write_chunk("defgh"));
  h.settle();
  exchange->handler_finished();  // finishes the stream
  std::string got = h.run_until_contains("0\r\n\r\n");
  CHECK(got.find("Transfer-Encoding: chunked") != std::string::npos);
  CHECK(got.substr(got.find("\r\n\r\n") + 4) == "3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n");
}

TEST_CASE("a body the handler does not read stops the reading at the high-water mark",
          "[connection]") {
  Harness h;
  const size_t size = 4 * 1024 * 1024;
  h.send("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(size) + "\r\n\r\n");
  std::string body(size, 'b');
  size_t sent = 0;
  for (int i = 0; i < 20; ++i) {
    sent += h.send_some(std::string_view(body).substr(sent));
    h.turn(5);
  }
  REQUIRE(h.handler.requests.size() == 1);
  std::shared_ptr<Exchange> exchange = h.handler.requests[0];
  // The connection stopped reading: what is buffered stays near the high-water mark (64 KiB
  // and at most one read more), and the client cannot send it all.
  CHECK(exchange->body_buffered() <= 2 * 64 * 1024);
  CHECK(sent < size);
  CHECK(exchange->body_state() == Exchange::BodyState::receiving);

  // Reading it lets the rest in, chunk by chunk, to the end.
  uint64_t taken = 0;
  std::string chunk;
  for (int i = 0; i < 2000 && exchange->body_state() == Exchange::BodyState::receiving; ++i) {
    while (exchange->take_chunk(chunk)) taken += chunk.size();
    exchange->body_consumed();
    sent += h.send_some(std::string_view(body).substr(sent));
    h.turn(1);
    CHECK(exchange->body_buffered() <= 2 * 64 * 1024);
  }
  while (exchange->take_chunk(chunk)) taken += chunk.size();
  CHECK(exchange->body_state() == Exchange::BodyState::complete);
  CHECK(taken == size);
  answer_ok(exchange);
  CHECK(h.run_until_contains("hello /up").find("200 OK") != std::string::npos);
}

TEST_CASE("100-continue is sent once, when the handler first wants the body", "[connection]") {
  Harness h;
  h.send("POST /c HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  CHECK(h.settle().empty());
  REQUIRE(h.handler.requests.size() == 1);
  std::shared_ptr<Exchange> exchange = h.handler.requests[0];
  exchange->send_continue_if_expected();
  exchange->send_continue_if_expected();
  CHECK(h.settle() == "HTTP/1.1 100 Continue\r\n\r\n");
  h.send("abc");
  h.settle();
  std::string chunk;
  CHECK(exchange->take_chunk(chunk));
  CHECK(chunk == "abc");
  CHECK(exchange->body_state() == Exchange::BodyState::complete);
}

TEST_CASE("the connection's own errors go through the handler's error shape", "[connection]") {
  SECTION("a malformed request line: 400, then close") {
    Harness h;
    h.send("GET /x HTTX/1.1\r\nHost: t\r\n\r\n");
    std::string got = h.run_until_contains("shaped");
    CHECK(got.rfind("HTTP/1.1 400 ", 0) == 0);
    CHECK(got.find("Connection: close") != std::string::npos);
    CHECK(h.handler.requests.empty());
    CHECK(h.handler.errors_rendered == 1);
    CHECK(h.server_closed());
  }
  SECTION("an unsupported Expect: 417 before any handler runs") {
    Harness h;
    h.send("POST /x HTTP/1.1\r\nHost: t\r\nExpect: lunch\r\nContent-Length: 1\r\n\r\nx");
    std::string got = h.run_until_contains("shaped");
    CHECK(got.rfind("HTTP/1.1 417 ", 0) == 0);
    CHECK(h.handler.requests.empty());
  }
  SECTION("a handler that ends without answering: 500") {
    Harness h;
    h.handler.answer = [](const std::shared_ptr<Exchange>& exchange) {
      exchange->handler_finished();
    };
    h.send("GET /quiet HTTP/1.1\r\nHost: t\r\n\r\n");
    std::string got = h.run_until_contains("shaped");
    CHECK(got.rfind("HTTP/1.1 500 ", 0) == 0);
    CHECK(got.find("shaped: the handler finished without a response") != std::string::npos);
    CHECK_FALSE(h.server_closed());
  }
  SECTION("a head not complete within header_timeout: 408") {
    Options options = test_options();
    options.limits.header_timeout = std::chrono::milliseconds(1);
    Harness h(options);
    h.send("GET /slow HTTP/1.1\r\nHo");
    // The worker's sweep checks timeouts about once a second.
    std::string got;
    for (int i = 0; i < 300 && got.find("shaped") == std::string::npos; ++i) {
      h.turn(10);
      got = h.settle();
    }
    CHECK(got.rfind("HTTP/1.1 408 ", 0) == 0);
    CHECK(got.find("shaped: timed out reading the request head") != std::string::npos);
  }
}

TEST_CASE("a client that goes away leaves its exchange detached, its body failed", "[connection]") {
  Harness h;
  h.send("POST /gone HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc");
  h.settle();
  REQUIRE(h.handler.requests.size() == 1);
  std::shared_ptr<Exchange> exchange = h.handler.requests[0];
  CHECK_FALSE(exchange->client_gone());
  h.close_client();
  h.settle();
  CHECK(exchange->client_gone());
  CHECK(exchange->body_state() == Exchange::BodyState::failed);
  CHECK(exchange->body_error() == "client closed the connection");
  // Answering a gone client is harmless: nothing is sent, the exchange is done.
  CHECK_FALSE(exchange->write_chunk("x"));
  exchange->respond(200, {}, "late");
  CHECK(exchange->response_state() == Exchange::ResponseState::done);
  exchange->handler_finished();
}
