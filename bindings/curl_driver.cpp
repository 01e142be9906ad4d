// libcurl multi on a worker's epoll set (see curl_driver.hpp).
#include "bindings/curl_driver.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "engine/http_util.hpp"
#include "engine/log.hpp"
#include "engine/worker.hpp"

namespace depot {
namespace {
const char kDriverKey = 0;

std::string trim(std::string_view text) {
  size_t start = text.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos) return "";
  size_t end = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(start, end - start + 1));
}

std::string kind_of(CURLcode code) {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT: return "timeout";
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return "connect";
    default: return "transport";
  }
}
}  // namespace

struct CurlDriver::Transfer {
  HttpRequest request;
  Done done;
  HttpResponse response;
  CURL* easy = nullptr;
  curl_slist* header_list = nullptr;
  FILE* body_in = nullptr;
  FILE* body_out = nullptr;
  std::string part_path;
  bool too_large = false;
  TimerQueue::Id retry_timer = 0;
  char error[CURL_ERROR_SIZE] = "";

  ~Transfer() {
    if (header_list) curl_slist_free_all(header_list);
    if (body_in) fclose(body_in);
    if (body_out) {
      fclose(body_out);
      unlink(part_path.c_str());  // only a successful transfer renames it away
    }
    if (easy) curl_easy_cleanup(easy);
  }

  static size_t on_body(char* data, size_t size, size_t count, void* self) {
    auto& transfer = *static_cast<Transfer*>(self);
    size_t bytes = size * count;
    if (transfer.body_out) return fwrite(data, 1, bytes, transfer.body_out);
    if (transfer.response.body.size() + bytes > transfer.request.max_body) {
      transfer.too_large = true;
      return 0;  // makes curl fail the transfer
    }
    transfer.response.body.append(data, bytes);
    return bytes;
  }

  static size_t on_header(char* data, size_t size, size_t count, void* self) {
    auto& transfer = *static_cast<Transfer*>(self);
    std::string_view line(data, size * count);
    if (line.rfind("HTTP/", 0) == 0) {
      transfer.response.headers.clear();  // a new response: after a redirect or a 100 Continue
    } else if (size_t colon = line.find(':'); colon != std::string_view::npos) {
      transfer.response.headers.emplace_back(http::lowercase(trim(line.substr(0, colon))),
                                             trim(line.substr(colon + 1)));
    }
    return size * count;
  }

  static size_t on_read(char* buffer, size_t size, size_t count, void* self) {
    return fread(buffer, 1, size * count, static_cast<Transfer*>(self)->body_in);
  }

  // Back to the state of a fresh attempt.
  void rewind() {
    response.status = 0;
    response.headers.clear();
    response.body.clear();
    too_large = false;
    error[0] = '\0';
    if (body_in) ::rewind(body_in);
    if (body_out) {
      fflush(body_out);
      [[maybe_unused]] int ignored = ftruncate(fileno(body_out), 0);
      ::rewind(body_out);
    }
  }
};

// A socket curl asked us to watch.
class CurlDriver::Socket final : public EventSource {
 public:
  Socket(CurlDriver& driver, curl_socket_t fd) : driver_(driver), fd_(fd) {}
  void on_ready(Readiness readiness) override {
    int flags = (readiness.readable ? CURL_CSELECT_IN : 0) | (readiness.writable ? CURL_CSELECT_OUT : 0) |
                (readiness.failed ? CURL_CSELECT_ERR : 0);
    driver_.act(fd_, flags);
  }

 private:
  CurlDriver& driver_;
  curl_socket_t fd_;
};

CurlDriver& CurlDriver::of(Worker& worker) {
  std::shared_ptr<void>& slot = worker.extension(&kDriverKey);
  if (!slot) slot = std::make_shared<CurlDriver>(worker);
  return *static_cast<CurlDriver*>(slot.get());
}

CurlDriver::CurlDriver(Worker& worker) : worker_(worker), multi_(curl_multi_init()) {
  static const CURLcode global = curl_global_init(CURL_GLOBAL_DEFAULT);  // once, thread-safe init
  if (global != CURLE_OK || multi_ == nullptr) throw std::runtime_error("libcurl failed to initialise");
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &CurlDriver::on_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &CurlDriver::on_timer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
}

CurlDriver::~CurlDriver() {
  closing_ = true;  // the worker's epoll set is gone: sockets are just freed
  if (timer_) worker_.cancel_timer(timer_);
  for (auto& [easy, transfer] : transfers_) {
    if (transfer->retry_timer) worker_.cancel_timer(transfer->retry_timer);
    curl_multi_remove_handle(multi_, easy);
  }
  transfers_.clear();
  curl_multi_cleanup(multi_);
}

std::string CurlDriver::start(HttpRequest request, Done done) {
  auto transfer = std::make_unique<Transfer>();
  transfer->request = std::move(request);
  transfer->done = std::move(done);
  const HttpRequest& r = transfer->request;
  CURL* easy = curl_easy_init();
  if (easy == nullptr) return "out of memory";
  transfer->easy = easy;
  if (!r.body_file.empty()) {
    transfer->body_in = fopen(r.body_file.c_str(), "rb");
    if (transfer->body_in == nullptr) return r.body_file + ": cannot open the body file";
  }
  if (!r.output_file.empty()) {
    transfer->part_path = r.output_file + ".part";
    transfer->body_out = fopen(transfer->part_path.c_str(), "wb");
    if (transfer->body_out == nullptr) return transfer->part_path + ": cannot create the output file";
  }
  curl_easy_setopt(easy, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(easy, CURLOPT_PRIVATE, transfer.get());
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transfer->error);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Transfer::on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, transfer.get());
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &Transfer::on_header);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, transfer.get());
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, r.timeout_ms);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, r.connect_timeout_ms);
  if (r.idle_timeout_s > 0) {
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, r.idle_timeout_s);
  }
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, r.follow_redirects ? 1L : 0L);
  curl_easy_setopt(easy, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, r.verify_tls ? 1L : 0L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, r.verify_tls ? 2L : 0L);
  if (r.method == "HEAD") {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else if (r.method != "GET") {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, r.method.c_str());
  }
  if (transfer->body_in) {
    fseek(transfer->body_in, 0, SEEK_END);
    long size = ftell(transfer->body_in);
    ::rewind(transfer->body_in);
    curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(easy, CURLOPT_READFUNCTION, &Transfer::on_read);
    curl_easy_setopt(easy, CURLOPT_READDATA, transfer.get());
    curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(size));
    if (r.method != "PUT") curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, r.method.c_str());
  } else if (!r.body.empty() || r.method == "POST" || r.method == "PUT" || r.method == "PATCH") {
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r.body.data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
  }
  bool has_expect = false;
  for (const auto& [name, value] : r.headers) {
    transfer->header_list = curl_slist_append(transfer->header_list, (name + ": " + value).c_str());
    has_expect = has_expect || http::iequals(name, "expect");
  }
  // curl waits a second for "100 Continue" on larger bodies; local upstreams answer at once.
  if (!has_expect) transfer->header_list = curl_slist_append(transfer->header_list, "Expect:");
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer->header_list);

  Transfer& started = *transfer;
  transfers_.emplace(easy, std::move(transfer));
  std::string error = launch(started);
  if (!error.empty()) transfers_.erase(easy);
  return error;
}

std::string CurlDriver::launch(Transfer& transfer) {
  transfer.response.attempts += 1;
  CURLMcode code = curl_multi_add_handle(multi_, transfer.easy);
  return code == CURLM_OK ? "" : curl_multi_strerror(code);
}

int CurlDriver::on_socket(CURL*, curl_socket_t fd, int what, void* self, void* socket_data) {
  auto& driver = *static_cast<CurlDriver*>(self);
  auto* socket = static_cast<Socket*>(socket_data);
  if (what == CURL_POLL_REMOVE) {
    if (socket == nullptr) return 0;
    curl_multi_assign(driver.multi_, fd, nullptr);
    if (driver.closing_) {
      delete socket;
      return 0;
    }
    try {
      driver.worker_.unwatch(fd);
    } catch (const std::exception&) {
      // curl may already have closed it: epoll forgot it then
    }
    driver.worker_.defer([socket] { delete socket; });  // its events may be in the current batch
    return 0;
  }
  Interest interest = what == CURL_POLL_IN ? Interest::read : what == CURL_POLL_OUT ? Interest::write : Interest::read_write;
  if (socket == nullptr) {
    socket = new Socket(driver, fd);
    curl_multi_assign(driver.multi_, fd, socket);
    driver.worker_.watch(fd, socket, interest);
  } else {
    driver.worker_.rewatch(fd, socket, interest);
  }
  return 0;
}

int CurlDriver::on_timer(CURLM*, long timeout_ms, void* self) {
  auto& driver = *static_cast<CurlDriver*>(self);
  if (driver.timer_) driver.worker_.cancel_timer(driver.timer_);
  driver.timer_ = 0;
  if (timeout_ms >= 0) {
    driver.timer_ = driver.worker_.add_timer(std::chrono::milliseconds(timeout_ms), [&driver] {
      driver.timer_ = 0;
      driver.act(CURL_SOCKET_TIMEOUT, 0);
    });
  }
  return 0;
}

void CurlDriver::act(curl_socket_t fd, int flags) {
  int running = 0;
  curl_multi_socket_action(multi_, fd, flags, &running);
  collect_finished();
}

void CurlDriver::collect_finished() {
  std::vector<std::pair<CURL*, CURLcode>> finished;
  int left = 0;
  while (CURLMsg* message = curl_multi_info_read(multi_, &left)) {
    if (message->msg == CURLMSG_DONE) finished.emplace_back(message->easy_handle, message->data.result);
  }
  for (auto [easy, code] : finished) {
    auto it = transfers_.find(easy);
    if (it != transfers_.end()) finish(*it->second, code);
  }
}

void CurlDriver::finish(Transfer& transfer, CURLcode code) {
  curl_multi_remove_handle(multi_, transfer.easy);
  HttpResponse& response = transfer.response;
  if (code == CURLE_OK) curl_easy_getinfo(transfer.easy, CURLINFO_RESPONSE_CODE, &response.status);
  bool transport_failed = code != CURLE_OK && !transfer.too_large;
  bool retryable = transport_failed || (code == CURLE_OK && transfer.request.retry_on.count(response.status) > 0);
  if (retryable && response.attempts <= transfer.request.retries) {
    double delay = transfer.request.backoff_s * std::pow(2.0, response.attempts - 1);
    CURL* easy = transfer.easy;
    log::debug("http retry", {{"attempt", response.attempts}, {"status", response.status}, {"delay_s", delay}});
    transfer.retry_timer = worker_.add_timer(
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(delay)), [this, easy] {
          auto it = transfers_.find(easy);
          if (it == transfers_.end()) return;
          it->second->retry_timer = 0;
          it->second->rewind();
          std::string error = launch(*it->second);
          if (!error.empty()) {
            it->second->response.error = error;
            it->second->response.error_kind = "transport";
            Done done = std::move(it->second->done);
            HttpResponse failed = std::move(it->second->response);
            transfers_.erase(it);
            done(failed);
          }
        });
    return;
  }
  if (transfer.too_large) {
    response.error = "response body larger than max_body (" + std::to_string(transfer.request.max_body) + " bytes)";
    response.error_kind = "transport";
  } else if (code != CURLE_OK) {
    response.error = transfer.error[0] ? transfer.error : curl_easy_strerror(code);
    response.error_kind = kind_of(code);
  }
  if (transfer.body_out) {
    bool written = fclose(transfer.body_out) == 0;
    transfer.body_out = nullptr;
    if (response.error.empty() && written && rename(transfer.part_path.c_str(), transfer.request.output_file.c_str()) != 0) {
      response.error = transfer.request.output_file + ": cannot rename the downloaded file into place";
      response.error_kind = "transport";
    }
    if (!response.error.empty() || !written) unlink(transfer.part_path.c_str());
  }
  Done done = std::move(transfer.done);
  HttpResponse result = std::move(response);
  transfers_.erase(transfer.easy);
  done(result);
}

}  // namespace depot
