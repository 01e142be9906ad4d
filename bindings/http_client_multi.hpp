// One libcurl multi handle per worker, driven by that worker's epoll set and timers: the engine
// side of the `http` module. It knows sockets, timers and easy handles — nothing about Lua, HTTP
// options or files (bindings/http_client_request.hpp configures the transfers).
//
// How it runs: curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to call it
// back (CURLMOPT_TIMERFUNCTION). Each socket becomes an EventSource in the worker's epoll set;
// the timeout becomes a worker timer. Readiness and timer expiry call curl_multi_socket_action
// and then hand finished transfers to their completions. Nothing here blocks, and
// curl_multi_socket_action is only ever called from an epoll event or a timer, never from inside
// a curl callback (curl forbids that re-entrancy): a callback that wants curl to run "now"
// (timeout 0) gets a zero-delay worker timer.
//
// Lifetime: the multi is a worker extension (Worker::extension), created on the first request
// and destroyed with the worker — on the server's thread, after the reactor thread was joined and
// the epoll set is gone. It does not belong to any script generation, so requests in flight across
// a hot reload finish (their tasks in the old generation) and curl's connection cache survives
// the reload.
//
// Ownership of requests: a request registers itself with hold() when it starts and release()s
// itself when it has delivered its result; everything else — completions, timers, file callbacks —
// refers to it weakly. So nothing forms a cycle, and whatever is still pending when the worker
// shuts down goes with the multi.
//
// The destructor removes every transfer without calling its completion, cancels its timers and
// lets curl close its sockets; it never touches the epoll set (gone by then).
//
// Worker thread only, every method (the destructor excepted, as said above).
#pragma once

#include <curl/curl.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/timer_queue.hpp"

namespace depot {

class Worker;

class HttpClientMulti {
 public:
  // Runs once a transfer has ended (the easy handle is already out of the multi; the call may
  // read it with curl_easy_getinfo, but must not keep it: it goes back to the pool afterwards).
  using Completion = std::function<void(CURL* easy, CURLcode result)>;

  // The multi of `worker`, created on first use. Call on that worker's thread.
  static HttpClientMulti& of_worker(Worker& worker);

  explicit HttpClientMulti(Worker& worker);
  ~HttpClientMulti();
  HttpClientMulti(const HttpClientMulti&) = delete;
  HttpClientMulti& operator=(const HttpClientMulti&) = delete;

  Worker& worker() { return worker_; }

  // Starts a transfer on a pooled (reset) easy handle: `configure` sets its options, then the
  // handle joins the multi. Returns the handle, or nullptr with `error` set (nothing started).
  // `done` runs later from an epoll event or timer, never inside this call.
  CURL* start(const std::function<void(CURL*)>& configure, Completion done, std::string& error);

  // Continues a transfer paused by a callback returning CURL_*FUNC_PAUSE. A handle that is no
  // longer in flight is ignored.
  void unpause(CURL* easy);

  // Runs `callback` after `delay` unless the multi is destroyed first (then it is dropped).
  void after(Clock::duration delay, std::function<void()> callback);

  // Keeps `owner` alive until release(owner.get()) or the multi's end (see the top of the file).
  void hold(std::shared_ptr<void> owner) { held_.emplace(owner.get(), std::move(owner)); }
  void release(void* owner) { held_.erase(owner); }

 private:
  class SocketWatch;

  static int on_socket(CURL* easy, curl_socket_t socket, int what, void* self, void* socket_data);
  static int on_timer(CURLM* multi, long timeout_ms, void* self);

  void update_watch(curl_socket_t socket, int what);
  // curl_multi_socket_action, then the completions of the transfers that finished.
  void drive(curl_socket_t socket, int events);
  void complete_finished();
  CURL* acquire_easy();
  void release_easy(CURL* easy);

  Worker& worker_;
  CURLM* multi_;
  bool closing_ = false;
  TimerQueue::Id curl_timer_ = 0;
  std::unordered_map<curl_socket_t, std::unique_ptr<SocketWatch>> watches_;
  std::unordered_map<CURL*, Completion> transfers_;
  std::vector<CURL*> idle_handles_;
  struct Wait {
    TimerQueue::Id timer;
    std::function<void()> callback;
  };
  std::unordered_map<uint64_t, Wait> waits_;
  uint64_t next_wait_ = 1;
  std::unordered_map<void*, std::shared_ptr<void>> held_;
};

}  // namespace depot
