// One outbound HTTP request: curl configuration, response collection, retries (see
// http_client_request.hpp).
#include "bindings/http_client_request.hpp"

#include <algorithm>
#include <cmath>

#include "bindings/http_client_files.hpp"
#include "bindings/http_client_multi.hpp"
#include "bindings/http_client_stream.hpp"
#include "engine/http_util.hpp"
#include "engine/metrics.hpp"
#include "engine/text.hpp"
#include "engine/worker.hpp"

namespace depot {
namespace {

constexpr long kMaxRedirects = 5;

long response_status(CURL* easy) {
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

bool successful(long status) {
  return status >= 200 && status < 300;
}

const char* error_kind(CURLcode result) {
  switch (result) {
    case CURLE_OPERATION_TIMEDOUT:
      return "timeout";
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return "connect";
    default:
      return "transport";
  }
}

// The upstream's name in metrics: host and port, never the path, query or credentials.
std::string host_label(const std::string& url) {
  std::string label = "invalid";
  CURLU* parsed = curl_url();
  char* host = nullptr;
  char* port = nullptr;
  if (curl_url_set(parsed, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK &&
      curl_url_get(parsed, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
      curl_url_get(parsed, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
    label = std::string(host) + ":" + port;
  }
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(parsed);
  return label;
}

}  // namespace

void HttpClientRequest::start(HttpClientMulti& multi, HttpClientOptions options, Wanted wanted,
                              Done done) {
  auto request = std::make_shared<HttpClientRequest>(multi, std::move(options), std::move(wanted),
                                                     std::move(done));
  multi.hold(request);
  request->starting_ = true;
  request->begin_attempt();
  request->starting_ = false;
}

HttpClientRequest::HttpClientRequest(HttpClientMulti& multi, HttpClientOptions options,
                                     Wanted wanted, Done done)
    : worker_(multi.worker()),
      multi_(multi),
      options_(std::move(options)),
      wanted_(std::move(wanted)),
      done_(std::move(done)),
      host_label_(host_label(options_.url)) {
  curl_slist* list = nullptr;
  auto append = [&list](const char* line) {
    curl_slist* longer = curl_slist_append(list, line);
    if (longer != nullptr) list = longer;
  };
  for (const std::string& line : options_.header_lines) append(line.c_str());
  // A 1 MiB+ body would otherwise wait a second for a "100 Continue" many servers never send.
  if (!options_.has_expect) append("Expect:");
  // curl labels any POST body as a form; a body is sent as what the caller says it is, or
  // unlabelled.
  if (options_.has_body && !options_.has_content_type) append("Content-Type:");
  header_list_.reset(list);
}

HttpClientRequest::~HttpClientRequest() = default;

void HttpClientRequest::begin_attempt() {
  ++attempt_;
  if (!options_.body_file.empty() && !body_file_) {
    return open_file(options_.body_file, &HttpClientRequest::body_file_,
                     &HttpClientRequest::create_output_file);
  }
  create_output_file();
}

void HttpClientRequest::create_output_file() {
  if (options_.output_file.empty()) return launch();
  open_file(options_.output_file, &HttpClientRequest::output_file_, &HttpClientRequest::launch);
}

template <typename File>
void HttpClientRequest::open_file(const std::string& path,
                                  std::shared_ptr<File> HttpClientRequest::*slot,
                                  void (HttpClientRequest::*next)()) {
  std::weak_ptr<HttpClientRequest> weak = weak_from_this();
  auto opened = [weak, slot, next](std::shared_ptr<File> file, std::string error) {
    auto self = weak.lock();
    if (!self) return;
    if (!file) return self->fail(error, "file");
    file->on_ready([weak] {
      if (auto request = weak.lock()) request->unpause();
    });
    (*self).*slot = std::move(file);
    ((*self).*next)();
  };
  if (!File::open(worker_, path, opened))
    fail("too much blocking work queued; try again later", "file");
}

void HttpClientRequest::launch() {
  response_ = std::make_shared<HttpClientResponse>();
  response_->attempts = attempt_;
  body_target_chosen_ = false;
  body_to_file_ = false;
  stop_reason_.clear();
  stop_kind_ = "transport";
  error_buffer_[0] = '\0';
  if (body_file_) body_file_->rewind(0);
  std::weak_ptr<HttpClientRequest> weak = weak_from_this();
  std::string error;
  easy_ = multi_.start([this](CURL* easy) { configure(easy); },
                       [weak](CURL* easy, CURLcode result) {
                         if (auto self = weak.lock()) self->on_transfer_done(easy, result);
                       },
                       error);
  if (easy_ == nullptr) fail(error, "transport");
}

void HttpClientRequest::configure(CURL* easy) {
  curl_easy_setopt(easy, CURLOPT_URL, options_.url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error_buffer_);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "depot");
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, header_list_.get());
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &HttpClientRequest::on_header);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, this);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &HttpClientRequest::on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, this);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count()));
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.connect_timeout.count()));
  if (options_.idle_timeout_seconds > 0) {
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, options_.idle_timeout_seconds);
  }
  if (options_.follow_redirects) {
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(easy, CURLOPT_MAXREDIRS, kMaxRedirects);
  }
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);

  const std::string& method = options_.method;
  if (method == "HEAD") {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else if (options_.has_body) {
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    if (body_file_) {
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(body_file_->size()));
      curl_easy_setopt(easy, CURLOPT_READFUNCTION, &HttpClientRequest::on_read);
      curl_easy_setopt(easy, CURLOPT_READDATA, this);
      curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, &HttpClientRequest::on_seek);
      curl_easy_setopt(easy, CURLOPT_SEEKDATA, this);
    } else {
      // POSTFIELDS sends from the caller's memory, which options_.body keeps alive meanwhile.
      static const std::string kNoBody;
      const std::string& body = options_.body ? *options_.body : kNoBody;
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
      curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.data());
    }
    if (method != "POST") curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method.c_str());
  } else if (method != "GET") {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
}

// ---------------------------------------------------------------------------------------------
// curl callbacks: inside curl_multi_socket_action (or curl_easy_pause). They only move bytes and
// record why they stopped a transfer; what happens next is decided in on_transfer_done.

size_t HttpClientRequest::on_header(char* data, size_t size, size_t count, void* self) {
  static_cast<HttpClientRequest*>(self)->header_line(std::string_view(data, size * count));
  return size * count;
}

size_t HttpClientRequest::on_body(char* data, size_t size, size_t count, void* self) {
  return static_cast<HttpClientRequest*>(self)->body_bytes(data, size * count);
}

size_t HttpClientRequest::on_read(char* out, size_t size, size_t count, void* self_pointer) {
  auto* self = static_cast<HttpClientRequest*>(self_pointer);
  size_t got = self->body_file_->read(out, size * count);
  if (got == HttpBodyFile::kPause) return CURL_READFUNC_PAUSE;
  if (got == HttpBodyFile::kFailed) {
    self->stop_reason_ = self->body_file_->error();
    self->stop_kind_ = "file";
    return CURL_READFUNC_ABORT;
  }
  return got;
}

// curl rewinds the body to send it again (a redirect that keeps the method, an auth round).
int HttpClientRequest::on_seek(void* self, curl_off_t offset, int origin) {
  if (origin != SEEK_SET || offset < 0) return CURL_SEEKFUNC_CANTSEEK;
  static_cast<HttpClientRequest*>(self)->body_file_->rewind(static_cast<uint64_t>(offset));
  return CURL_SEEKFUNC_OK;
}

// Every response of the exchange passes here (1xx, redirects followed): a status line starts a
// fresh set of headers, so the caller sees those of the final response.
void HttpClientRequest::header_line(std::string_view line) {
  if (line.rfind("HTTP/", 0) == 0) {
    response_->headers.clear();
    response_->body.clear();
    body_target_chosen_ = false;
    return;
  }
  auto& headers = response_->headers;
  if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {  // obsolete line folding
    std::string_view more = trim(line, kWhitespace);
    if (!headers.empty() && !more.empty()) headers.back().second.append(" ").append(more);
    return;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return;  // the blank line ending the head
  std::string name = http::lowercase(trim(line.substr(0, colon), kWhitespace));
  std::string_view value = trim(line.substr(colon + 1), kWhitespace);
  for (auto& [existing, existing_value] : headers) {
    if (existing == name) {
      existing_value.append(", ").append(value);
      return;
    }
  }
  headers.emplace_back(std::move(name), std::string(value));
}

size_t HttpClientRequest::body_bytes(const char* data, size_t size) {
  if (options_.stream) return stream_bytes(data, size);
  if (!body_target_chosen_) {
    // Only a successful response is a download; an error page is returned as `body`.
    body_target_chosen_ = true;
    body_to_file_ = output_file_ && successful(response_status(easy_));
  }
  if (body_to_file_) {
    if (!output_file_->accept(data, size)) return CURL_WRITEFUNC_PAUSE;
    if (!output_file_->error().empty()) {
      stop_reason_ = output_file_->error();
      stop_kind_ = "file";
      return 0;
    }
    return size;
  }
  if (response_->body.size() + size > options_.max_body) {
    stop_reason_ =
        "response body larger than max_body (" + std::to_string(options_.max_body) + " bytes)";
    stop_kind_ = "transport";
    return 0;
  }
  response_->body.append(data, size);
  return size;
}

// The first body bytes of a final response hand its head to the caller — unless its status is
// one to retry (the bytes of that error page are dropped; on_transfer_done retries).
size_t HttpClientRequest::stream_bytes(const char* data, size_t size) {
  if (!stream_) {
    long status = response_status(easy_);
    bool retryable = std::find(options_.retry_on.begin(), options_.retry_on.end(), status) !=
                     options_.retry_on.end();
    if (retryable && attempt_ <= options_.retries) return size;
    if (!wanted_()) return 0;
    response_->status = status;
    deliver_head();
  }
  if (stream_->abandoned()) {
    stop_reason_ = "the reader of the body went away";
    return 0;
  }
  return stream_->accept(data, size) ? size : CURL_WRITEFUNC_PAUSE;
}

void HttpClientRequest::deliver_head() {
  std::weak_ptr<HttpClientRequest> weak = weak_from_this();
  stream_ = std::make_shared<HttpBodyStream>([weak] {
    if (auto self = weak.lock()) self->unpause();
  });
  response_->stream = stream_;
  // Later, from the worker loop: this runs inside a curl callback, where no Lua may run.
  worker_.defer([done = std::move(done_), response = response_] { done(response); });
}

void HttpClientRequest::unpause() {
  if (easy_ == nullptr) return;
  multi_.unpause(easy_);
}

// ---------------------------------------------------------------------------------------------
// After a transfer

void HttpClientRequest::on_transfer_done(CURL* easy, CURLcode result) {
  easy_ = nullptr;
  const char* failure = !stop_reason_.empty() ? stop_kind_
                        : result != CURLE_OK  ? error_kind(result)
                                              : nullptr;
  worker_.metrics().upstream_attempt(host_label_, response_status(easy), failure);
  if (stream_) return end_stream(result);
  if (!stop_reason_.empty()) return fail(stop_reason_, stop_kind_);
  if (result != CURLE_OK) {
    return retry_or_fail(
        error_buffer_[0] != '\0' ? std::string(error_buffer_) : curl_easy_strerror(result),
        error_kind(result));
  }
  response_->status = response_status(easy);
  bool retryable = std::find(options_.retry_on.begin(), options_.retry_on.end(),
                             response_->status) != options_.retry_on.end();
  if (retryable && attempt_ <= options_.retries) return retry_or_fail("", "");
  if (output_file_ && successful(response_->status)) return commit_download();
  // A streamed response without body bytes (HEAD, 204, an empty object) ends here, whole.
  if (options_.stream) {
    response_->stream = std::make_shared<HttpBodyStream>([] {});
    response_->stream->finish("");
  }
  succeed();
}

// The head went to the caller already: the rest of the story goes to the body's reader.
void HttpClientRequest::end_stream(CURLcode result) {
  std::shared_ptr<HttpClientRequest> keep_alive = shared_from_this();
  if (!stop_reason_.empty()) {
    stream_->finish("http.request: " + stop_reason_);
  } else if (result != CURLE_OK) {
    stream_->finish("http.request: " + (error_buffer_[0] != '\0' ? std::string(error_buffer_)
                                                                 : curl_easy_strerror(result)));
  } else {
    stream_->finish("");
  }
  drop();
}

// Another attempt after the backoff when one is left (and wanted); otherwise the failure, or the
// last response when it was a retryable status (`message` empty).
void HttpClientRequest::retry_or_fail(const std::string& message, const char* kind) {
  if (output_file_) {
    output_file_->abandon();
    output_file_.reset();
  }
  if (attempt_ > options_.retries) return message.empty() ? succeed() : fail(message, kind);
  if (!wanted_()) return drop();
  double seconds = options_.backoff_seconds * std::pow(2.0, attempt_ - 1);
  auto delay = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::weak_ptr<HttpClientRequest> weak = weak_from_this();
  multi_.after(delay, [weak] {
    if (auto self = weak.lock()) self->begin_attempt();
  });
}

void HttpClientRequest::commit_download() {
  if (!wanted_()) return drop();
  std::weak_ptr<HttpClientRequest> weak = weak_from_this();
  output_file_->commit([weak](std::string error) {
    auto self = weak.lock();
    if (!self) return;
    if (!error.empty()) return self->fail(error, "file");
    self->response_->body_in_file = true;
    self->response_->file_bytes = self->output_file_->bytes();
    self->output_file_.reset();
    self->succeed();
  });
}

void HttpClientRequest::succeed() {
  if (output_file_) {
    output_file_->abandon();
    output_file_.reset();
  }
  deliver(response_);
}

void HttpClientRequest::fail(const std::string& message, const char* kind) {
  if (output_file_) {
    output_file_->abandon();
    output_file_.reset();
  }
  auto failure = std::make_shared<HttpClientResponse>();
  failure->error = "http.request: " + message;
  failure->error_kind = kind;
  failure->attempts = attempt_;
  deliver(std::move(failure));
}

void HttpClientRequest::deliver(std::shared_ptr<HttpClientResponse> response) {
  std::shared_ptr<HttpClientRequest> keep_alive = shared_from_this();
  drop();
  if (starting_) {  // failed inside start(): the caller has not suspended its task yet
    worker_.defer([done = std::move(done_), response] { done(response); });
    return;
  }
  done_(std::move(response));
}

void HttpClientRequest::drop() {
  multi_.release(this);
}

}  // namespace depot
