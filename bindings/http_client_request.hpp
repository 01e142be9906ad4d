// One outbound HTTP request of the `http` module, from its checked options to its result: it
// configures a pooled curl easy handle, collects the response (headers, a capped string body or
// a file), and retries with doubling backoff on transport errors and retryable statuses. The
// waits between attempts are worker timers; file work goes to the pool (http_client_files.hpp);
// the transfer itself runs on the worker's HttpClientMulti. Plain C++: the Lua side
// (bindings/http_client.cpp) checks arguments, waits, and turns the result into Lua values.
//
// Secrets: nothing here logs; request headers and bodies are never written anywhere but the wire.
//
// Worker thread only.
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace depot {

class Worker;
class HttpClientMulti;
class HttpBodyFile;
class HttpOutputFile;
class HttpBodyStream;

struct HttpClientOptions {
  std::string method = "GET";  // upper-case token
  std::string url;
  std::vector<std::string> header_lines;  // "Name: value" (checked: no CR, LF or NUL)
  bool has_content_type = false;          // the caller set Content-Type
  bool has_expect = false;                // the caller set Expect
  bool has_body = false;
  // Shared, not copied, when it is a `buffer` (bindings/buffer.hpp); null: no body or body_file.
  std::shared_ptr<const std::string> body;
  std::string body_file;                     // absolute path, or "" (then `body`, if has_body)
  std::string output_file;                   // absolute path, or ""
  std::chrono::milliseconds timeout{30000};  // per attempt
  std::chrono::milliseconds connect_timeout{10000};  // per attempt
  long idle_timeout_seconds = 0;                     // 0: no idle limit
  int retries = 0;
  std::vector<long> retry_on = {429, 502, 503, 504};
  double backoff_seconds = 0.5;  // before the first retry; doubles after each
  bool follow_redirects = false;
  bool verify_tls = true;
  size_t max_body = 64 * 1024 * 1024;  // cap of the string body
  // The result comes once the head is in; the body follows through `HttpClientResponse::stream`
  // (not retried once the head was handed over; max_body does not apply).
  bool stream = false;
};

struct HttpClientResponse {
  // Not empty: the call failed ("http.request: <why>"); `error_kind` says how, nothing else is set.
  std::string error;
  const char* error_kind =
      "";  // "timeout", "connect" (refused, unresolvable), "file" or "transport"
  int attempts = 0;
  long status = 0;
  std::vector<std::pair<std::string, std::string>>
      headers;  // lower-case names, repeats joined by ", "
  std::string body;
  bool body_in_file = false;               // the body went to output_file (then `body` is empty)
  std::shared_ptr<HttpBodyStream> stream;  // options.stream: the body, still arriving
  uint64_t file_bytes = 0;
};

class HttpClientRequest : public std::enable_shared_from_this<HttpClientRequest> {
 public:
  using Done = std::function<void(std::shared_ptr<HttpClientResponse>)>;
  // Whether anyone still waits for the result (the calling task still exists): asked before each
  // retry and before committing a download, so an abandoned request stops early.
  using Wanted = std::function<bool()>;

  // Starts the request on `multi`. `done` runs exactly once — never inside this call — unless the
  // request is dropped first (`wanted` said no, or the worker shut down).
  static void start(HttpClientMulti& multi, HttpClientOptions options, Wanted wanted, Done done);

  HttpClientRequest(HttpClientMulti& multi, HttpClientOptions options, Wanted wanted, Done done);
  ~HttpClientRequest();
  HttpClientRequest(const HttpClientRequest&) = delete;
  HttpClientRequest& operator=(const HttpClientRequest&) = delete;

 private:
  // The steps of an attempt, each calling the next once its file work is done.
  void begin_attempt();
  void create_output_file();
  void launch();
  // Opens `path` as a File on the pool into `slot`, then goes on with `next` (or fails).
  template <typename File>
  void open_file(const std::string& path, std::shared_ptr<File> HttpClientRequest::*slot,
                 void (HttpClientRequest::*next)());
  void configure(CURL* easy);
  void on_transfer_done(CURL* easy, CURLcode result);
  void retry_or_fail(const std::string& message, const char* kind);
  void commit_download();
  void succeed();
  void fail(const std::string& message, const char* kind);
  void deliver(std::shared_ptr<HttpClientResponse> response);
  // options.stream: hands the head over (the transfer goes on; see http_client_stream.hpp).
  void deliver_head();
  void end_stream(CURLcode result);
  size_t stream_bytes(const char* data, size_t size);
  void drop();
  void unpause();

  static size_t on_header(char* data, size_t size, size_t count, void* self);
  static size_t on_body(char* data, size_t size, size_t count, void* self);
  static size_t on_read(char* out, size_t size, size_t count, void* self);
  static int on_seek(void* self, curl_off_t offset, int origin);
  void header_line(std::string_view line);
  size_t body_bytes(const char* data, size_t size);

  Worker& worker_;
  HttpClientMulti& multi_;
  HttpClientOptions options_;
  Wanted wanted_;
  Done done_;
  struct HeaderListFree {
    void operator()(curl_slist* list) const { curl_slist_free_all(list); }
  };
  std::unique_ptr<curl_slist, HeaderListFree> header_list_;
  bool starting_ = false;  // inside start(): a result must wait for the caller to suspend
  int attempt_ = 0;
  CURL* easy_ = nullptr;  // while a transfer is in flight
  char error_buffer_[CURL_ERROR_SIZE] = {};
  std::shared_ptr<HttpClientResponse> response_;
  bool body_target_chosen_ = false;  // whether this response's body goes to the file is decided
  bool body_to_file_ = false;
  std::string host_label_;   // "host:port", for metrics
  std::string stop_reason_;  // why a callback stopped the transfer (not retried)
  const char* stop_kind_ = "transport";
  std::shared_ptr<HttpBodyFile> body_file_;
  std::shared_ptr<HttpOutputFile> output_file_;
  std::shared_ptr<HttpBodyStream> stream_;  // once the head of a streamed response is delivered
};

}  // namespace depot
