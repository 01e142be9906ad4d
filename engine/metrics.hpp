// The numbers behind /metrics: what the engine counts per worker (requests by service, route and
// status class, their latency, bytes, upstream calls, Lua memory), what the server counts once
// (reloads), and the families scripts register (engine/metrics_families.hpp).
// engine/metrics_text.cpp turns them into Prometheus' text format.
//
// The hot path never locks and never does a read-modify-write: each worker writes only its own
// WorkerMetrics, with a relaxed load and a relaxed store per count (one writer, so no increment is
// lost). A scrape, on any thread, reads every worker's cells with relaxed loads and adds them up;
// a count is at most a few instructions late. Series that appear while serving (the routes of a
// new generation, a new upstream host, a new label set of a script's counter) are appended to a
// SeriesList that readers walk without a lock; nothing is removed before the server stops, so a
// counter never goes back (Prometheus' rule) and a pointer to a series stays valid.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/metrics_cells.hpp"
#include "engine/metrics_families.hpp"
#include "engine/timer_queue.hpp"

namespace depot {
class Exchange;
}

namespace depot::metrics {

// Status classes of an answer: none (the client left before one was started), 1xx … 5xx.
constexpr size_t kStatusClasses = 6;
extern const char* const kStatusClassLabels[kStatusClasses];

// Latency buckets, in seconds: Depot answers small requests in well under a millisecond.
extern const std::vector<double> kLatencyBounds;

struct RouteSeries {
  RouteSeries(std::string service, std::string route)
      : service(std::move(service)), route(std::move(route)), latency(kLatencyBounds) {}
  std::string service;
  std::string route;  // "GET /v1/cache/:id": the pattern, never the path
  Count answers[kStatusClasses];
  Histogram latency;  // seconds, from the request head to the answer's end
};

// Outcomes of one upstream attempt: a status class, or why no response came (the http
// binding's error kinds).
constexpr const char* kUpstreamOutcomes[] = {"1xx",     "2xx",     "3xx",       "4xx", "5xx",
                                             "timeout", "connect", "transport", "file"};
constexpr size_t kUpstreamOutcomeCount = sizeof kUpstreamOutcomes / sizeof kUpstreamOutcomes[0];
// Hosts counted apart per worker; calls to any further host count under "other".
constexpr size_t kMaxUpstreamHosts = 100;

struct UpstreamSeries {
  explicit UpstreamSeries(std::string host) : host(std::move(host)) {}
  std::string host;  // "host:port", never the path or credentials
  Count outcomes[kUpstreamOutcomeCount];
};

// A script's counter or histogram on one worker, for one label set.
struct ScriptSeries {
  ScriptSeries(const Family& family, std::vector<std::string> labels);
  const Family& family;
  std::vector<std::string> labels;
  Amount value;                          // counters
  std::unique_ptr<Histogram> histogram;  // histograms
};

class WorkerMetrics {
 public:
  WorkerMetrics();
  WorkerMetrics(const WorkerMetrics&) = delete;
  WorkerMetrics& operator=(const WorkerMetrics&) = delete;

  // --- the worker's thread only ---
  // The series of a route ("GET /pattern") of `service`, created on first use.
  RouteSeries& route(const std::string& service, const std::string& route);
  // A request the router gave to a handler, or answered itself (404, 405, /metrics): in flight
  // from here until request_finished. `series` is its route's, kept in the exchange.
  void request_started(Exchange& exchange, RouteSeries& series);
  // Its answer is complete, or its client left. Requests that never reached the router (a
  // malformed head, no scripts loaded) count under service and route "none".
  void request_finished(const Exchange& exchange, Clock::time_point now);
  void received(uint64_t bytes) { bytes_received_.add(bytes); }
  void sent(uint64_t bytes) { bytes_sent_.add(bytes); }
  // One attempt of the `http` binding: `failure` is its error kind (one of kUpstreamOutcomes),
  // or null when a response with `status` came.
  void upstream_attempt(const std::string& host, long status, const char* failure);
  void set_lua_memory(size_t bytes) { lua_memory_.store(bytes, std::memory_order_relaxed); }
  // A script counter's or histogram's series for one label set (`key`: series_key), created on
  // first use. Throws MetricError past kMaxSeriesPerFamily label sets of the family.
  ScriptSeries& script_series(const Family& family, const std::vector<std::string>& values,
                              const std::string& key);

  // --- any thread ---
  const SeriesList<RouteSeries>& routes() const { return routes_; }
  const SeriesList<UpstreamSeries>& upstreams() const { return upstreams_; }
  const SeriesList<ScriptSeries>& scripts() const { return scripts_; }
  uint64_t in_flight() const { return started_.get() - finished_.get(); }
  uint64_t bytes_received() const { return bytes_received_.get(); }
  uint64_t bytes_sent() const { return bytes_sent_.get(); }
  size_t lua_memory() const { return lua_memory_.load(std::memory_order_relaxed); }

 private:
  Count started_;
  Count finished_;
  Count bytes_received_;
  Count bytes_sent_;
  std::atomic<size_t> lua_memory_{0};
  SeriesList<RouteSeries> routes_;
  SeriesList<UpstreamSeries> upstreams_;
  SeriesList<ScriptSeries> scripts_;
  RouteSeries* unrouted_;
  // Lookups of the worker's own thread (the lists above are what other threads read).
  std::unordered_map<std::string, RouteSeries*> route_index_;
  std::unordered_map<std::string, UpstreamSeries*> upstream_index_;
  std::unordered_map<std::string, ScriptSeries*> script_index_;
  std::unordered_map<const Family*, size_t> script_series_count_;
};

// Everything one server counts; ServerCore owns it.
class ServerMetrics {
 public:
  explicit ServerMetrics(size_t workers);
  WorkerMetrics& worker(size_t index) { return *workers_.at(index); }
  const std::vector<std::unique_ptr<WorkerMetrics>>& workers() const { return workers_; }
  Families& families() { return families_; }
  const Families& families() const { return families_; }

  // Server::reload, under its lock.
  void reload_finished(bool loaded, uint64_t generation);
  uint64_t reloads_loaded() const { return reloads_loaded_.get(); }
  uint64_t reloads_refused() const { return reloads_refused_.get(); }
  uint64_t generation() const { return generation_.load(std::memory_order_relaxed); }

 private:
  std::vector<std::unique_ptr<WorkerMetrics>> workers_;
  Families families_;
  Count reloads_loaded_;
  Count reloads_refused_;
  std::atomic<uint64_t> generation_{0};
};

}  // namespace depot::metrics
