// The per-worker curl multi handle on the worker's epoll set (see http_client_multi.hpp).
#include "bindings/http_client_multi.hpp"

#include <mutex>
#include <stdexcept>

#include "engine/event_source.hpp"
#include "engine/log.hpp"
#include "engine/worker.hpp"

namespace depot {
namespace {

constexpr size_t kMaxIdleHandles = 16;
// Idle upstream connections kept per worker. curl's default keeps four per transfer still
// running, so a dip in concurrency closed the connections a moment later's burst then opened
// again (one fetch in six of the image cache's under load paid a TCP handshake).
constexpr long kMaxCachedConnections = 64;

void initialize_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      throw std::runtime_error("http: curl_global_init failed");
    }
  });
}

Clock::duration milliseconds(long count) {
  return std::chrono::milliseconds(count);
}

Interest interest_of(int what) {
  switch (what) {
    case CURL_POLL_IN:
      return Interest::read;
    case CURL_POLL_OUT:
      return Interest::write;
    case CURL_POLL_INOUT:
      return Interest::read_write;
    default:
      return Interest::none;
  }
}

const char kExtensionKey = 0;  // its address keys the multi among the worker's extensions

}  // namespace

// One curl socket in the worker's epoll set.
class HttpClientMulti::SocketWatch final : public EventSource {
 public:
  SocketWatch(HttpClientMulti& multi, curl_socket_t socket) : multi_(multi), socket_(socket) {}

  void on_ready(Readiness readiness) override {
    if (retired) return;  // removed earlier in this event batch; freed after it
    int events = (readiness.readable ? CURL_CSELECT_IN : 0) |
                 (readiness.writable ? CURL_CSELECT_OUT : 0) |
                 (readiness.failed ? CURL_CSELECT_ERR : 0);
    multi_.drive(socket_, events);
  }

  int what = CURL_POLL_NONE;
  bool retired = false;

 private:
  HttpClientMulti& multi_;
  curl_socket_t socket_;
};

HttpClientMulti& HttpClientMulti::of_worker(Worker& worker) {
  std::shared_ptr<void>& slot = worker.extension(&kExtensionKey);
  if (!slot) slot = std::make_shared<HttpClientMulti>(worker);
  return *static_cast<HttpClientMulti*>(slot.get());
}

HttpClientMulti::HttpClientMulti(Worker& worker) : worker_(worker) {
  initialize_curl_once();
  multi_ = curl_multi_init();
  if (multi_ == nullptr) throw std::runtime_error("http: curl_multi_init failed");
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &HttpClientMulti::on_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &HttpClientMulti::on_timer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, kMaxCachedConnections);
}

HttpClientMulti::~HttpClientMulti() {
  closing_ = true;  // curl's callbacks during cleanup change nothing
  if (curl_timer_) worker_.cancel_timer(curl_timer_);
  for (auto& [key, wait] : waits_) worker_.cancel_timer(wait.timer);
  waits_.clear();
  for (auto& [easy, completion] : transfers_) {
    curl_multi_remove_handle(multi_, easy);
    curl_easy_cleanup(easy);
  }
  transfers_.clear();
  for (CURL* easy : idle_handles_) curl_easy_cleanup(easy);
  curl_multi_cleanup(multi_);  // closes the cached connections
  watches_.clear();
  held_.clear();  // the requests still pending: their files are removed, their tasks not resumed
}

CURL* HttpClientMulti::start(const std::function<void(CURL*)>& configure, Completion done,
                             std::string& error) {
  CURL* easy = acquire_easy();
  if (easy == nullptr) {
    error = "cannot create a curl handle (out of memory)";
    return nullptr;
  }
  configure(easy);
  transfers_.emplace(easy, std::move(done));
  CURLMcode code = curl_multi_add_handle(multi_, easy);
  if (code != CURLM_OK) {
    transfers_.erase(easy);
    release_easy(easy);
    error = curl_multi_strerror(code);
    return nullptr;
  }
  return easy;
}

void HttpClientMulti::unpause(CURL* easy) {
  if (transfers_.count(easy) > 0) curl_easy_pause(easy, CURLPAUSE_CONT);
}

void HttpClientMulti::after(Clock::duration delay, std::function<void()> callback) {
  uint64_t key = next_wait_++;
  TimerQueue::Id timer = worker_.add_timer(delay, [this, key] {
    auto it = waits_.find(key);
    if (it == waits_.end()) return;
    std::function<void()> due = std::move(it->second.callback);
    waits_.erase(it);
    due();
  });
  waits_.emplace(key, Wait{timer, std::move(callback)});
}

int HttpClientMulti::on_socket(CURL*, curl_socket_t socket, int what, void* self, void*) {
  try {
    static_cast<HttpClientMulti*>(self)->update_watch(socket, what);
  } catch (const std::exception& e) {
    log::error("http: cannot watch a socket", {{"error", e.what()}});
  }
  return 0;
}

int HttpClientMulti::on_timer(CURLM*, long timeout_ms, void* self_pointer) {
  auto* self = static_cast<HttpClientMulti*>(self_pointer);
  if (self->closing_) return 0;
  if (self->curl_timer_) self->worker_.cancel_timer(self->curl_timer_);
  self->curl_timer_ = 0;
  if (timeout_ms >= 0) {
    self->curl_timer_ = self->worker_.add_timer(milliseconds(timeout_ms), [self] {
      self->curl_timer_ = 0;
      self->drive(CURL_SOCKET_TIMEOUT, 0);
    });
  }
  return 0;
}

void HttpClientMulti::update_watch(curl_socket_t socket, int what) {
  if (closing_) return;
  auto it = watches_.find(socket);
  if (what == CURL_POLL_REMOVE) {
    if (it == watches_.end()) return;
    worker_.unwatch(socket);  // curl calls this before it closes the socket
    // Events for the socket may still be queued in the current batch: the watch stays allocated
    // (and ignores them) until the batch is over.
    std::shared_ptr<SocketWatch> until_batch_end(std::move(it->second));
    until_batch_end->retired = true;
    watches_.erase(it);
    worker_.defer([until_batch_end] {});
    return;
  }
  if (it == watches_.end()) {
    auto watch = std::make_unique<SocketWatch>(*this, socket);
    watch->what = what;
    SocketWatch* source = watch.get();
    watches_.emplace(socket, std::move(watch));
    worker_.watch(socket, source, interest_of(what));
    return;
  }
  SocketWatch& watch = *it->second;
  if (watch.what == what) return;
  watch.what = what;
  worker_.rewatch(socket, &watch, interest_of(what));
}

void HttpClientMulti::drive(curl_socket_t socket, int events) {
  int running = 0;
  curl_multi_socket_action(multi_, socket, events, &running);
  complete_finished();
}

void HttpClientMulti::complete_finished() {
  // Collected first: a completion may start transfers, which must not disturb this reading.
  std::vector<std::pair<CURL*, CURLcode>> finished;
  int queued = 0;
  while (CURLMsg* message = curl_multi_info_read(multi_, &queued)) {
    if (message->msg == CURLMSG_DONE)
      finished.emplace_back(message->easy_handle, message->data.result);
  }
  for (auto [easy, result] : finished) {
    auto it = transfers_.find(easy);
    if (it == transfers_.end()) continue;
    Completion completion = std::move(it->second);
    transfers_.erase(it);
    curl_multi_remove_handle(multi_, easy);
    try {
      completion(easy, result);
    } catch (const std::exception& e) {
      log::error("http: completing a request failed", {{"error", e.what()}});
    }
    release_easy(easy);
  }
}

CURL* HttpClientMulti::acquire_easy() {
  if (idle_handles_.empty()) return curl_easy_init();
  CURL* easy = idle_handles_.back();
  idle_handles_.pop_back();
  return easy;
}

// curl_easy_reset keeps what makes reuse worth it (DNS and TLS session caches); the connection
// cache belongs to the multi.
void HttpClientMulti::release_easy(CURL* easy) {
  if (idle_handles_.size() >= kMaxIdleHandles) {
    curl_easy_cleanup(easy);
    return;
  }
  curl_easy_reset(easy);
  idle_handles_.push_back(easy);
}

}  // namespace depot
