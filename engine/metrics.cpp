// Per-worker and per-server counts (see metrics.hpp).
#include "engine/metrics.hpp"

#include "engine/exchange.hpp"

namespace depot::metrics {
namespace {
constexpr size_t kTransportOutcome = 7;
}  // namespace

const char* const kStatusClassLabels[kStatusClasses] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};

const std::vector<double> kLatencyBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                            0.25,   0.5,   1,      2.5,   5,    10,    30,   60};

ScriptSeries::ScriptSeries(const Family& family, std::vector<std::string> labels)
    : family(family), labels(std::move(labels)) {
  if (family.type == Type::histogram) histogram = std::make_unique<Histogram>(family.buckets);
}

WorkerMetrics::WorkerMetrics() {
  unrouted_ = &route("none", "none");
}  // after the index exists

RouteSeries& WorkerMetrics::route(const std::string& service, const std::string& route) {
  std::string key = service + '\n' + route;
  auto found = route_index_.find(key);
  if (found != route_index_.end()) return *found->second;
  RouteSeries& series = routes_.append(service, route);
  route_index_.emplace(std::move(key), &series);
  return series;
}

void WorkerMetrics::request_started(Exchange& exchange, RouteSeries& series) {
  exchange.set_route_series(&series);
  started_.add(1);
}

void WorkerMetrics::request_finished(const Exchange& exchange, Clock::time_point now) {
  RouteSeries& series = exchange.route_series() ? *exchange.route_series() : *unrouted_;
  int status_class = exchange.status() / 100;
  series.answers[status_class >= 1 && status_class <= 5 ? status_class : 0].add(1);
  series.latency.observe(std::chrono::duration<double>(now - exchange.started()).count());
  if (exchange.route_series()) finished_.add(1);
}

void WorkerMetrics::upstream_attempt(const std::string& host, long status, const char* failure) {
  auto found = upstream_index_.find(host);
  UpstreamSeries* series = found == upstream_index_.end() ? nullptr : found->second;
  if (series == nullptr) {
    bool room = upstream_index_.size() < kMaxUpstreamHosts;
    const std::string& label = room ? host : std::string("other");
    auto other = upstream_index_.find(label);
    series = other != upstream_index_.end() ? other->second : &upstreams_.append(label);
    upstream_index_.emplace(label, series);
  }
  size_t outcome = kTransportOutcome;  // also for a status no class fits
  if (failure == nullptr) {
    long status_class = status / 100;
    if (status_class >= 1 && status_class <= 5) outcome = static_cast<size_t>(status_class - 1);
  } else {
    for (size_t i = 0; i < kUpstreamOutcomeCount; ++i) {
      if (std::string_view(kUpstreamOutcomes[i]) == failure) outcome = i;
    }
  }
  series->outcomes[outcome].add(1);
}

ScriptSeries& WorkerMetrics::script_series(const Family& family,
                                           const std::vector<std::string>& values,
                                           const std::string& key) {
  auto found = script_index_.find(key);
  if (found != script_index_.end()) return *found->second;
  size_t& count = script_series_count_[&family];
  if (count >= kMaxSeriesPerFamily) {
    throw MetricError(family.name + " has " + std::to_string(kMaxSeriesPerFamily) +
                      " label sets already (label by something bounded)");
  }
  ++count;
  ScriptSeries& series = scripts_.append(family, values);
  script_index_.emplace(key, &series);
  return series;
}

ServerMetrics::ServerMetrics(size_t workers) {
  for (size_t i = 0; i < workers; ++i) workers_.push_back(std::make_unique<WorkerMetrics>());
}

void ServerMetrics::reload_finished(bool loaded, uint64_t generation) {
  (loaded ? reloads_loaded_ : reloads_refused_).add(1);
  if (loaded) generation_.store(generation, std::memory_order_relaxed);
}

}  // namespace depot::metrics
